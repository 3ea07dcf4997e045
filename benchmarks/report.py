"""What every benchmark shares: running a phase in its own process, and writing the report."""

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time


def phase_result(name: str, rows: int, seconds: float) -> dict:
    """A phase's figures: rows/s, and the peak RSS of this process."""
    return {
        "phase": name,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_phase(script: str, args: list[str]) -> dict:
    """Runs SCRIPT with ARGS in a fresh Python (so its peak RSS is its own); the JSON object it
    prints last."""
    out = subprocess.run([sys.executable, script, *args], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_report(name: str, results, path: str | None) -> dict:
    """The report for benchmark NAME (date, machine, RESULTS), written as JSON to PATH if given."""
    report = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "results": results,
    }
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
    return report


class TreeRss(threading.Thread):
    """Samples the RSS of this process and its descendants; `peak` is the largest sum seen."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.peak, self.done = every, 0, threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.wait(self.every):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)


def alternating_rounds(calls: dict, batches: list, rounds: int) -> dict[str, list[float]]:
    """Examples/s of each call over BATCHES, the calls taking turns within each of ROUNDS rounds
    (so a slower or busier stretch of a shared machine falls on all of them alike).

    Args:
        calls: {name: f}, each called as `f(examples=batch)`.
        batches: the batches (tensors of B serialized examples).
        rounds: how many times each call passes over all the batches.

    Returns:
        {name: [examples/s of each round]}.
    """
    examples = sum(len(b) for b in batches)
    runs = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            begin = time.perf_counter()
            for batch in batches:
                call(examples=batch)
            runs[name].append(examples / (time.perf_counter() - begin))
    return runs
