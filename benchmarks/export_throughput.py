"""Throughput of serving exports' `serving_default`, side by side in one process.

    ./ihas-env python benchmarks/export_throughput.py \
        --export routed=/tmp/e1m/p1m/pipeline_root/Retrain/model/N/Format-Serving \
        --export base=/tmp/e1m/p1m/pipeline_root/Retrain/baseline/N/Format-Serving \
        --examples /tmp/e1m/p1m/pipeline_root/RawExampleGen/examples/M \
        --out benchmarks/results/issue16/export-throughput-1m.json

Every export is fed the same serialized raw tf.Examples of split "test" (the raw Examples
artifact's, or `ihas data prepare`'s OUT/examples), `--batch` per call, the exports taking turns
within each of `--rounds` rounds (`report.alternating_rounds`). Reports each round's examples/s,
the medians, and each export's paired ratios to the first `--export` (round by round).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.report import alternating_rounds, write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--export", action="append", required=True, metavar="NAME=DIR",
                        help="a serving export; the first is the reference of the ratios")
    parser.add_argument("--examples", required=True, help="the folder of raw splits")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--out")
    args = parser.parse_args()

    from ihas_keras.export import scoring

    exports = dict(item.split("=", 1) for item in args.export)
    calls = {name: scoring.load_signature(path) for name, path in exports.items()}
    batches = scoring.raw_batches(args.examples, "test", args.batch)
    alternating_rounds(calls, batches, args.warmup)
    runs = alternating_rounds(calls, batches, args.rounds)
    reference = next(iter(runs))
    results = {
        "exports": exports, "batch": args.batch, "examples": sum(len(b) for b in batches),
        "rounds": args.rounds,
        "examples_per_s": {name: [round(v) for v in values] for name, values in runs.items()},
        "median_examples_per_s": {name: round(statistics.median(v)) for name, v in runs.items()},
        "paired_ratio_to_" + reference: {
            name: [round(a / b, 3) for a, b in zip(values, runs[reference], strict=True)]
            for name, values in runs.items() if name != reference},
    }
    print(write_report("export_throughput", results, args.out))


if __name__ == "__main__":
    main()
