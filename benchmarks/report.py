"""What every benchmark shares: running a phase in its own process, and writing the report."""

import json
import os
import platform
import resource
import subprocess
import sys
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
