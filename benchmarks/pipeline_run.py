"""Wall time and peak memory of the whole TFX pipeline (`make demo`) on generated Criteo rows.

    ./ihas-env python benchmarks/pipeline_run.py --rows 1000000 \
        --out benchmarks/results/pipeline-1m.json
    ./ihas-env python benchmarks/pipeline_run.py --data /tmp/h16/criteo1m.txt --home /tmp/h16/p1m \
        --out benchmarks/results/issue16/pipeline-1m.json
    IHAS_BEAM_ARGS=--direct_num_workers=1 ./ihas-env python benchmarks/pipeline_run.py ...

Runs `python -m pipeline.demo` in a fresh home folder (generation included, as `make demo` does,
unless --data names rows generated beforehand) and samples the RSS summed over the whole process
tree every 0.5 s (Beam workers included; this process holds no TensorFlow meanwhile). The Beam
options are the pipeline's (IHAS_BEAM_ARGS or its default). Each component's wall time is read
from the run's ML Metadata afterwards: from the creation of its execution to its last update.
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time

from report import TreeRss, write_report


def component_seconds(metadata_path: str) -> dict[str, float]:
    """Each component's wall time in a LocalDagRunner run, from its ML Metadata.

    Args:
        metadata_path: the run's ML Metadata SQLite file.

    Returns:
        Seconds from the creation to the last update of each component's execution, by component
        name, in the order they ran (summed if a component ran more than once).
    """
    rows = sqlite3.connect(metadata_path).execute(
        "SELECT c.name, e.create_time_since_epoch, e.last_update_time_since_epoch"
        " FROM Execution e JOIN Association a ON a.execution_id = e.id"
        " JOIN Context c ON c.id = a.context_id JOIN Type t ON t.id = c.type_id"
        " WHERE t.name = 'node' ORDER BY e.create_time_since_epoch").fetchall()
    seconds: dict[str, float] = {}
    for name, created, updated in rows:
        component = name.rsplit(".", 1)[-1]
        seconds[component] = round(seconds.get(component, 0) + (updated - created) / 1000, 1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", help="a raw file to read instead of generating --rows rows")
    parser.add_argument("--format", default="criteo", help="the format of --data")
    parser.add_argument("--home", default="/tmp/ihas-bench/pipeline")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    shutil.rmtree(args.home, ignore_errors=True)
    os.makedirs(args.home)
    log = os.path.join(args.home, "pipeline.log")
    tree = TreeRss()
    tree.start()
    start = time.perf_counter()
    command = [sys.executable, "-m", "pipeline.demo", "--home", args.home, "--rows", str(args.rows)]
    if args.data:
        command += ["--data", args.data, "--format", args.format]
    demo = subprocess.run(
        command,
        stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
    )
    seconds = time.perf_counter() - start
    tree.done.set()
    summary = demo.stdout.strip().splitlines()[-6:]
    print("\n".join(summary))
    if demo.returncode:
        sys.exit(f"pipeline.demo exited with {demo.returncode}: see {log}")
    # Imported only now: it imports TensorFlow, whose 0.9 GB would count in the tree's RSS.
    from pipeline.config import from_env

    result = {
        "rows": args.rows, "data": args.data, "seconds": round(seconds, 1),
        "peak_tree_rss_mb": round(tree.peak / 2**20),
        "component_seconds": component_seconds(os.path.join(args.home, "metadata.sqlite")),
        "beam_args": list(from_env().beam_args), "summary": summary,
    }
    print(result)
    write_report("pipeline_run", [result], args.out)


if __name__ == "__main__":
    main()
