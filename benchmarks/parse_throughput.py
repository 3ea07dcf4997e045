"""Rows/s and peak memory of generating, parsing (tf.data) and validating raw Criteo rows.

    ./ihas-env python benchmarks/parse_throughput.py --out benchmarks/results/parse.json

Each phase runs in its own process, so its peak RSS is its own.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def phase(name: str, path: str, rows: int) -> dict:
    from ihas_keras.data import CRITEO, read_table, synthesize, validate

    start = time.perf_counter()
    if name == "synth":
        synthesize(path, rows, "criteo", segments=3, seed=0)
    elif name == "parse":
        seen = 0
        for batch in read_table([path], CRITEO, batch_size=4096):
            seen += int(batch["reason"].shape[0])
        assert seen == rows, (seen, rows)
    elif name == "validate":
        report = validate([path], CRITEO, path + ".quarantine.jsonl")
        assert report.rows_read == rows
    seconds = time.perf_counter() - start
    return {
        "phase": name,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", default="/tmp/ihas-bench/criteo-1m.txt")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.data, args.rows)))
        return
    os.makedirs(os.path.dirname(args.data), exist_ok=True)
    results = []
    for name in ("synth", "parse", "validate"):
        cmd = [sys.executable, __file__, "--phase", name, "--rows", str(args.rows),
               "--data", args.data]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(results[-1])
    report = {
        "benchmark": "parse_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "results": results,
    }
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
