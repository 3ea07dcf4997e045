"""What routing costs at serving, and what the distilled router gives up, on a trained search.

    ./ihas-env python benchmarks/routing_cost.py --out-dir OUT --seed 1 \
        --base-export OUT/runs/base/seed-1/1 --data criteo.txt --format criteo \
        --json benchmarks/results/issue16/routing-cost.json

On an `ihas experiment` OUT (its prepared split and the stored search of seed N): clusters at the
defaults, retrains the shared towers routed by the gate (the paper's routing), distils the
router (`distill.distill_router`), exports both with `export_serving_model`, and reports: the
distilled router's agreement with the gate on the test split, both exports' test AUC, and the
throughput of `serving_default` at `--batch` raw tf.Examples per call for the base model's
export, the gate-routed and the distilled export, called in turn in one process (`--rounds`
rounds over the test split, medians).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.reference_models import machine, write_report  # noqa: E402
from benchmarks.report import alternating_rounds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", required=True, help="an `ihas experiment` OUT")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-export", required=True, help="the base model's serving export")
    parser.add_argument("--data", required=True, help="the experiment's raw data file")
    parser.add_argument("--format", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()

    import keras
    from sklearn.metrics import adjusted_rand_score

    import ihas_keras
    from experiments.data import planted_truth
    from ihas_keras import schedule
    from ihas_keras.data import get_format
    from ihas_keras.data.transform import transformed_dataset, vocabulary_sizes
    from ihas_keras.distill import distill_router
    from ihas_keras.export import export_serving_model, scoring

    fmt = get_format(args.format)
    prepared = os.path.join(args.out_dir, "prepared")
    transformed = os.path.join(prepared, "transformed")
    search = ihas_keras.load_model(os.path.join(args.out_dir, "runs", "ihas",
                                                f"seed-{args.seed}.search.keras"))
    rows = schedule.steps_per_epoch(transformed_dataset(transformed, "train", fmt, 8192)) * 8192
    batch = schedule.batch_size(rows)
    train, validation = (transformed_dataset(transformed, split, fmt, batch)
                         for split in ("train", "eval"))
    assert list(vocabulary_sizes(transformed, fmt).values()) == search.vocab_sizes
    report = {"machine": machine(), "out_dir": args.out_dir, "seed": args.seed,
              "batch": args.batch}
    start = time.perf_counter()
    plan = ihas_keras.fit_clusters(search, train, seed=args.seed)
    gate = ihas_keras.retrain(search, plan, train, validation, seed=args.seed, verbose=2,
                              routing="gate")
    report["retrain_seconds"] = round(time.perf_counter() - start)
    start = time.perf_counter()
    distilled, report["validation_agreement"] = distill_router(gate, train, validation,
                                                               verbose=2)
    report["distill_seconds"] = round(time.perf_counter() - start)
    report["widths"] = plan.widths().tolist()
    test = scoring.raw_batches(os.path.join(prepared, "examples"), "test", args.batch)
    truth = planted_truth(args.data, fmt)
    signatures = {"base": scoring.load_signature(args.base_export)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("gate", gate), ("distilled", distilled)):
            path = export_serving_model(model, transformed, fmt, os.path.join(tmp, name))
            signatures[name] = scoring.load_signature(path)
        predictions = {name: scoring.predict(fn, test, fmt.label)
                       for name, fn in signatures.items()}
        for name, p in predictions.items():
            entry = {"test_auc": round(scoring.binary_metrics(p.labels, p.probability)["auc"],
                                       4)}
            if p.cluster is not None and name != "base":
                entry["ari"] = round(float(adjusted_rand_score(truth["segments"], p.cluster)),
                                     3)
            report[name] = entry
        report["test_agreement"] = round(float(np.mean(
            predictions["gate"].cluster == predictions["distilled"].cluster)), 4)
        runs = alternating_rounds(signatures, test, args.rounds)
        medians = {name: round(statistics.median(v)) for name, v in runs.items()}
        report["examples_per_s"] = {name: [round(v) for v in values]
                                    for name, values in runs.items()}
        report["median_examples_per_s"] = medians
        for name in ("gate", "distilled"):
            report[f"{name}_over_base"] = round(medians[name] / medians["base"], 3)
    keras.backend.clear_session()
    write_report(report, args.json)


if __name__ == "__main__":
    main()
