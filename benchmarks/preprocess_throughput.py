"""Rows/s and peak memory of ingesting raw Criteo rows and of TF Transform over them.

    ./ihas-env python benchmarks/preprocess_throughput.py --out benchmarks/results/preprocess.json
    ... --phases transform --beam-arg=--OPTION   (the transform again, with Beam options)

Phases, each in its own process: synth (the raw file), ingest (raw -> split tf.Examples,
`ingest`), transform (tft_beam: analyze on train, transform every split, `transform`). Peak RSS:
the phase process's own, and its process tree's (Beam worker processes included), sampled every
0.5 s.
"""

import argparse
import json
import os
import time

from report import TreeRss, phase_result, run_phase, write_report

PHASES = ("synth", "ingest", "transform")


def phase(name: str, data: str, work: str, rows: int, beam_args: list[str]) -> dict:
    from ihas_keras.data import CRITEO, synthesize
    from ihas_keras.data.ingest import ingest
    from ihas_keras.data.transform import transform

    examples = os.path.join(work, "examples")
    tree = TreeRss()
    tree.start()
    start = time.perf_counter()
    if name == "synth":
        synthesize(data, rows, "criteo", segments=3, seed=0)
    elif name == "ingest":
        assert ingest([data], CRITEO, examples).rows_read == rows
    elif name == "transform":
        counts = transform(examples, CRITEO, os.path.join(work, "transformed"), beam_args=beam_args)
        with open(os.path.join(examples, "counts.json")) as f:
            assert sum(counts.values()) == json.load(f)["rows_accepted"], counts
    seconds = time.perf_counter() - start
    tree.done.set()
    return {
        **phase_result(name, rows, seconds),
        "peak_tree_rss_mb": round(tree.peak / 2**20),
        **({"beam_args": beam_args} if name == "transform" else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", default="/tmp/ihas-bench/criteo-1m.txt")
    parser.add_argument("--work", default="/tmp/ihas-bench/prepare",
                        help="folder for the examples and the transform output")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="comma-separated phases to run, in order (later ones reuse the files "
                        "of earlier runs)")
    parser.add_argument("--beam-arg", action="append", default=[], metavar="OPTION",
                        help="Beam pipeline option for the transform phase, repeatable")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.data, args.work, args.rows, args.beam_arg)))
        return
    os.makedirs(os.path.dirname(args.data), exist_ok=True)
    results = []
    for name in args.phases.split(","):
        cmd = ["--phase", name, "--rows", str(args.rows),
               "--data", args.data, "--work", args.work,
               *(f"--beam-arg={a}" for a in args.beam_arg)]
        results.append(run_phase(__file__, cmd))
        print(results[-1])
    write_report("preprocess_throughput", results, args.out)


if __name__ == "__main__":
    main()
