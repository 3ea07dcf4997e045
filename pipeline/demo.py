"""`make demo`: the whole pipeline on generated Criteo rows (or on DATA), then where the pushed
model is and its metrics.

    python -m pipeline.demo --home /tmp/ihas-demo [--rows 100000] [--data PATH --format F]
"""

import argparse
import glob
import json
import os
import shutil

from pipeline import config as pipeline_config
from pipeline import local_runner


def stage_data(home: str, data: str | None, rows: int, seed: int) -> str:
    """The input folder: DATA itself when it is a folder, else HOME/data made anew.

    HOME/data holds DATA (linked) or freshly generated Criteo rows (their truth and meta files
    kept beside it, outside the folder).

    Args:
        home: the demo's folder.
        data: a raw file or a folder of raw files; None to generate rows.
        rows: how many rows to generate.
        seed: the generator's seed.

    Returns:
        The folder to read.
    """
    if data and os.path.isdir(data):
        return data
    folder = os.path.join(home, "data")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    if data:
        os.symlink(os.path.abspath(data), os.path.join(folder, os.path.basename(data)))
        return folder
    from ihas_keras.data import synthesize

    generated = os.path.join(home, "generated", "criteo.txt")
    os.makedirs(os.path.dirname(generated), exist_ok=True)
    print(synthesize(generated, rows, "criteo", segments=3, seed=seed, progress=True).summary())
    os.link(generated, os.path.join(folder, "criteo.txt"))
    return folder


def latest(config: pipeline_config.PipelineConfig, component: str, output: str) -> str:
    """The newest execution's folder of a component's output.

    Args:
        config: the pipeline's settings.
        component: the component's name, such as "Evaluate".
        output: the output's key, such as "blessing".

    Returns:
        The highest-numbered folder PIPELINE_ROOT/COMPONENT/OUTPUT/N.
    """
    return max(glob.glob(os.path.join(config.pipeline_root, component, output, "*")),
               key=lambda path: int(os.path.basename(path)))


def main() -> None:
    """Runs the pipeline locally, then prints the row counts, the metrics and the pushed model."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default="/tmp/ihas-demo")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--data", help="raw file or folder of raw files (default: generated)")
    parser.add_argument("--format", default="criteo")
    parser.add_argument("--schema", default="")
    args = parser.parse_args()
    os.makedirs(args.home, exist_ok=True)
    data_root = stage_data(args.home, args.data, args.rows, seed=0)
    config = pipeline_config.from_env(home=args.home, data_root=data_root, format=args.format,
                                      schema=args.schema)
    local_runner.run(config)

    counts = json.load(open(os.path.join(latest(config, "RawExampleGen", "quarantine"),
                                         "counts.json")))
    blessing = latest(config, "Evaluate", "blessing")
    metrics = json.load(open(os.path.join(blessing, "metrics.json")))
    print(f"\nrows read {counts['rows_read']}, accepted {counts['rows_accepted']}, "
          f"quarantined {counts['rows_quarantined']}")
    for name in ("model", "baseline"):
        print(f"{name:>8}: test AUC {metrics[name]['auc']:.4f}, "
              f"logloss {metrics[name]['logloss']:.4f}")
    versions = sorted(glob.glob(os.path.join(config.serving_model_dir, "*")))
    if metrics["blessed"]:
        print(f"blessed (margin {metrics['margin']}); pushed for TF Serving: {versions[-1]}")
        print(f"serve it: ./ihas-env ihas serve --model_name=ihas "
              f"--model_base_path={config.serving_model_dir}  (or serving/deploy/ on TF Serving)")
    else:
        print(f"not blessed (routed AUC below base AUC - {metrics['margin']}): nothing pushed; "
              f"the candidate is in {latest(config, 'Retrain', 'model')}")
    print(f"pipeline root: {config.pipeline_root}, metadata: {config.metadata_path}")


if __name__ == "__main__":
    main()
