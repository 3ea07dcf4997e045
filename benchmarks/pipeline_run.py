"""Wall time and peak memory of the whole TFX pipeline (`make demo`) on generated Criteo rows.

    ./ihas-env python benchmarks/pipeline_run.py --rows 1000000 \
        --out benchmarks/results/pipeline-1m.json
    IHAS_BEAM_ARGS=--direct_num_workers=1 ./ihas-env python benchmarks/pipeline_run.py ...

Runs `python -m pipeline.demo` in a fresh home folder (generation included, as `make demo` does)
and samples the RSS summed over the whole process tree every 0.5 s (Beam workers included). The
Beam options are the pipeline's (IHAS_BEAM_ARGS or its default).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from report import TreeRss, write_report

from pipeline.config import from_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--home", default="/tmp/ihas-bench/pipeline")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    shutil.rmtree(args.home, ignore_errors=True)
    os.makedirs(args.home)
    log = os.path.join(args.home, "pipeline.log")
    tree = TreeRss()
    tree.start()
    start = time.perf_counter()
    demo = subprocess.run(
        [sys.executable, "-m", "pipeline.demo", "--home", args.home, "--rows", str(args.rows)],
        stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
    )
    seconds = time.perf_counter() - start
    tree.done.set()
    summary = demo.stdout.strip().splitlines()[-6:]
    print("\n".join(summary))
    if demo.returncode:
        sys.exit(f"pipeline.demo exited with {demo.returncode}: see {log}")
    result = {
        "rows": args.rows, "seconds": round(seconds, 1),
        "peak_tree_rss_mb": round(tree.peak / 2**20),
        "beam_args": list(from_env().beam_args), "summary": summary,
    }
    print(result)
    write_report("pipeline_run", [result], args.out)


if __name__ == "__main__":
    main()
