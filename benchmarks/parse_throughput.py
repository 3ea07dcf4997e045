"""Rows/s and peak memory of generating, parsing (tf.data) and validating raw Criteo rows.

    ./ihas-env python benchmarks/parse_throughput.py --out benchmarks/results/parse.json

Each phase runs in its own process, so its peak RSS is its own.
"""

import argparse
import json
import os
import time

from report import phase_result, run_phase, write_report


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
    return phase_result(name, rows, seconds)


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
        cmd = ["--phase", name, "--rows", str(args.rows),
               "--data", args.data]
        results.append(run_phase(__file__, cmd))
        print(results[-1])
    write_report("parse_throughput", results, args.out)


if __name__ == "__main__":
    main()
