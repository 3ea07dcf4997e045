"""Base-model training with a vocabulary of about a million rows: lazy Adams against dense Adam.

    ./ihas-env python benchmarks/sparse_training.py --out benchmarks/results/sparse-training.json

Generated ids for 39 fields (13 numeric-like with 50-3,000 values, 26 categorical with
log-uniform vocabularies scaled to about 1,000,000 table rows in all), Zipf-distributed, so
most rows of a large table are rare; labels from a logistic model of per-id effects on 12 fields
and one pairwise interaction. The base model (`Recommender`, width 16 everywhere, DNN 16-8) is
compiled by `compile_recommender` with `optimizers.LazyAdam` catching rare rows up (the default,
"catch_up"), `LazyAdam` without catching up ("lazy") or Keras's dense Adam ("dense").

Throughput: the three train in turn, one pass over the same first `--timed-batches` batches of 2048
per repetition after a traced warm-up, the pass alone timed, in wall-clock seconds and in the
process's CPU seconds (all threads; steadier on a shared machine). Quality: per seed, each trains on
80 % of the rows until the validation AUC (10 %) has not improved for `defaults.PATIENCE`
epochs, best weights restored (the library's training rule), then is scored on the last 10 %.
"""

import argparse
import os
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from ihas_keras import defaults, optimizers, schedule
from ihas_keras.models.recommender import Recommender
from ihas_keras.retraining import compile_recommender

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.reference_models import machine, write_report  # noqa: E402


def generate(rows: int, table_rows: int, seed: int = 0) -> tuple[dict, np.ndarray, list[int]]:
    """(ids {field: int64 [rows]}, labels [rows], vocabulary sizes) of the generated data."""
    rng = np.random.default_rng(seed)
    numeric = [int(v) for v in rng.integers(50, 3000, 13)]
    categorical = np.exp(rng.uniform(np.log(10), np.log(300_000), 26))
    categorical *= (table_rows - sum(numeric)) / categorical.sum()
    sizes = numeric + [max(10, int(v)) for v in categorical]
    fields = [f"I{i + 1}" for i in range(13)] + [f"C{i + 1}" for i in range(26)]
    ids, logit = {}, np.full(rows, -1.5)
    for i, (field, size) in enumerate(zip(fields, sizes, strict=True)):
        ranks = rng.zipf(rng.uniform(1.1, 1.4), rows) - 1
        ids[field] = (ranks * 2654435761 % size).astype("int64")  # popular ids spread out
        if i % 3 == 0:  # 13 fields carry signal; rare ids get effects too
            logit += rng.normal(0.0, 0.5, size)[ids[field]]
    pair = (ids["C1"] * 31 + ids["C2"]) % 997
    logit += rng.normal(0.0, 0.8, 997)[pair]
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("float32")
    return ids, labels, sizes


def batches(ids: dict, labels: np.ndarray, lo: int, hi: int, size: int) -> tf.data.Dataset:
    rows = ({f: v[lo:hi] for f, v in ids.items()}, labels[lo:hi])
    return tf.data.Dataset.from_tensor_slices(rows).batch(size).cache()


VARIANTS = {"catch_up": {"lazy": True, "catch_up": True},
            "lazy": {"lazy": True, "catch_up": False},
            "dense": {"lazy": False}}


def model(sizes: list[int], variant: str, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    fields = [f"I{i + 1}" for i in range(13)] + [f"C{i + 1}" for i in range(26)]
    return compile_recommender(Recommender(fields, sizes, [defaults.EMBEDDING_DIM] * 39),
                               optimizers.base_optimizer(**VARIANTS[variant]))


def throughput(sizes, data: tf.data.Dataset, rows: int, reps: int) -> dict:
    models = {name: model(sizes, name, 0) for name in VARIANTS}
    for _ in data:  # fill the in-memory cache before any timing
        pass
    for m in models.values():
        m.fit(data.take(3), verbose=0)
    runs = {name: [] for name in models}
    cpu_runs = {name: [] for name in models}  # per second of the process's CPU time, all threads
    for rep in range(reps):
        for name, m in models.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            m.fit(data, callbacks=schedule.callbacks(validation=False), verbose=0)
            runs[name].append(rows / (time.perf_counter() - start))
            cpu_runs[name].append(rows / (time.process_time() - cpu_start))
            print(f"rep {rep}: {name} {runs[name][-1]:,.0f} examples/s, "
                  f"{cpu_runs[name][-1]:,.0f} per CPU second", flush=True)
    medians = {name: round(statistics.median(v)) for name, v in runs.items()}
    cpu_medians = {name: round(statistics.median(v)) for name, v in cpu_runs.items()}
    return {
        "examples_per_s": {name: [round(v) for v in values] for name, values in runs.items()},
        "median_examples_per_s": medians,
        "examples_per_cpu_s": {name: [round(v) for v in values]
                               for name, values in cpu_runs.items()},
        "median_examples_per_cpu_s": cpu_medians,
        **{f"{name}_over_dense_cpu": round(cpu_medians[name] / cpu_medians["dense"], 2)
           for name in ("catch_up", "lazy")},
        **{f"{name}_over_dense": round(medians[name] / medians["dense"], 2)
           for name in ("catch_up", "lazy")},
        **{f"{name}_over_dense_paired": [round(a / b, 2) for a, b in zip(
            runs[name], runs["dense"], strict=True)] for name in ("catch_up", "lazy")},
    }


def quality(sizes, splits: dict, seed: int) -> dict:
    result = {"seed": seed}
    for name in VARIANTS:
        m = model(sizes, name, seed)
        start = time.perf_counter()
        history = m.fit(splits["train"], validation_data=splits["eval"],
                        epochs=defaults.MAX_EPOCHS, callbacks=schedule.callbacks(validation=True),
                        verbose=0)
        seconds = time.perf_counter() - start
        labels = np.concatenate([y for _, y in splits["test"].as_numpy_iterator()])
        auc = roc_auc_score(labels, m.predict(splits["test"], verbose=0).reshape(-1))
        result[name] = {"test_auc": round(float(auc), 4),
                        "epochs": len(history.history["loss"]),
                        "best_val_auc": round(max(history.history["val_auc"]), 4),
                        "train_seconds": round(seconds)}
        print(f"seed {seed}: {name} {result[name]}", flush=True)
    for name in ("catch_up", "lazy"):
        result[f"{name}_minus_dense"] = round(
            result[name]["test_auc"] - result["dense"]["test_auc"], 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--table-rows", type=int, default=1_000_000)
    parser.add_argument("--timed-batches", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seeds", default="1,2,3", help="quality runs; empty: none")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    ids, labels, sizes = generate(args.rows, args.table_rows)
    batch = defaults.BATCH_SIZE
    timed_rows = min(args.rows, args.timed_batches * batch)
    report = {
        "machine": machine(), "rows": args.rows, "table_rows": sum(sizes), "fields": 39,
        "batch_size": batch, "label_rate": round(float(labels.mean()), 3),
        "throughput": throughput(sizes, batches(ids, labels, 0, timed_rows, batch), timed_rows,
                                 args.reps),
    }
    write_report(report, args.out)
    train, valid = int(args.rows * 0.8), int(args.rows * 0.9)
    splits = {"train": batches(ids, labels, 0, train, batch),
              "eval": batches(ids, labels, train, valid, batch),
              "test": batches(ids, labels, valid, args.rows, batch)}
    report["quality"] = [quality(sizes, splits, int(s)) for s in args.seeds.split(",") if s]
    for name in ("catch_up", "lazy"):
        diffs = [q[f"{name}_minus_dense"] for q in report["quality"]]
        if diffs:
            report[f"{name}_minus_dense_mean"] = round(float(np.mean(diffs)), 4)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
