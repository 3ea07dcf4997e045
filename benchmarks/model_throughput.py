"""Examples/s of the search model's training step vs the base model's, and of the routed model's
inference vs the base model's, measured side by side on the same generated Criteo rows.

    ./ihas-env python benchmarks/model_throughput.py --out benchmarks/results/model.json

Training: the base model (width 16 everywhere, `compile_recommender`) and the search model
(`build_model`, "stochastic" gates, a gate step every 100 batches) each fit one epoch per
repetition, alternately, after a traced warm-up; only the epoch is timed. Inference: the base
model and the routed model (K clusters from `fit_clusters`, untrained per-cluster models), each
through a `tf.function`, alternately over the same held-out batches; routing alone and the gate's
embedding + Dense alone are timed too, to show where the routed model's time goes.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def batches(x, y, lo, hi, size):
    """(features, label) batches of rows [lo, hi), full batches only (one traced shape)."""
    import tensorflow as tf

    rows = ({f: v[lo:hi] for f, v in x.items()}, y[lo:hi])
    return tf.data.Dataset.from_tensor_slices(rows).batch(size, drop_remainder=True).cache()


def timed_epoch(model, data) -> float:
    """Seconds of one `fit` epoch over DATA, between on_epoch_begin and on_epoch_end."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    model.fit(data, epochs=1, callbacks=[timer], verbose=0, shuffle=False)
    return timer.seconds


def timed_pass(fn, inputs) -> float:
    """Seconds to run FN over every batch of INPUTS (tensors back: the work is done)."""
    start = time.perf_counter()
    for x in inputs:
        fn(x)
    return time.perf_counter() - start


def interleaved(candidates: dict, reps: int, measure) -> dict:
    """{name: [examples/s per repetition]}, the candidates run in turn within each repetition."""
    runs = {name: [] for name in candidates}
    for rep in range(reps):
        for name, subject in candidates.items():
            runs[name].append(measure(subject))
            print(f"rep {rep}: {name} {runs[name][-1]:,.0f} examples/s", flush=True)
    return runs


def summary(runs: dict, a: str, b: str) -> dict:
    """Per-repetition figures, medians, and B/A: the ratio of medians and the paired ratios."""
    medians = {name: round(statistics.median(v)) for name, v in runs.items()}
    return {
        "examples_per_s": {name: [round(v) for v in values] for name, values in runs.items()},
        "median_examples_per_s": medians,
        f"{b}_over_{a}": round(medians[b] / medians[a], 3),
        f"{b}_over_{a}_paired": [round(vb / va, 3) for va, vb in zip(runs[a], runs[b],
                                                                    strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="generated Criteo rows")
    parser.add_argument("--held-out", type=float, default=0.1,
                        help="fraction of rows held out (gate validation and inference)")
    parser.add_argument("--train-batch", type=int, default=2048)
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--gate-every", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--gate-rank", type=int, default=0,
                        help="the search model's gate kernel rank; 0: full")
    parser.add_argument("--train-reps", type=int, default=5)
    parser.add_argument("--infer-reps", type=int, default=11)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))  # for tests.planted
    import keras
    import tensorflow as tf

    import ihas_keras
    from ihas_keras.models.recommender import Recommender
    from ihas_keras.models.routed import RoutedModel
    from ihas_keras.retraining import compile_recommender
    from tests.planted import planted_criteo

    keras.utils.set_random_seed(0)
    load_start = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        x, y, _, sizes = planted_criteo(Path(tmp), args.rows, segments=3, seed=0)
    split = args.rows - int(args.rows * args.held_out)
    train = batches(x, y, 0, split, args.train_batch)
    val = batches(x, y, split, args.rows, args.train_batch)
    print(f"data: {args.rows:,} rows in {time.perf_counter() - start:.0f} s", flush=True)

    fields = list(sizes)
    base = compile_recommender(Recommender(fields, list(sizes.values()), [16] * len(fields)))
    search = ihas_keras.build_model(sizes, seed=0, gate_rank=args.gate_rank)
    search.set_gate_mode("stochastic")
    search.use_validation(val, gate_every=args.gate_every)
    train_rows = (split // args.train_batch) * args.train_batch
    for data in (train, val):  # fill the in-memory caches before any timing
        for _ in data:
            pass
    for model in (base, search):  # trace
        model.fit(train.take(3), epochs=1, verbose=0, shuffle=False)
    training = summary(interleaved(
        {"base": base, "search": search}, args.train_reps,
        lambda model: train_rows / timed_epoch(model, train),
    ), "base", "search")
    training["search_step_time_over_base"] = round(
        training["median_examples_per_s"]["base"] / training["median_examples_per_s"]["search"], 3)
    training["target"] = "search step time <= 1.5x base"
    training["met"] = training["search_step_time_over_base"] <= 1.5
    steps = int(search.optimizer.iterations)  # warm-up included; a gate step every gate_every
    training["search_steps"] = {"base": steps, "gate": steps // args.gate_every}

    start = time.perf_counter()
    plan = ihas_keras.fit_clusters(search, train, args.clusters, progress=False)
    routed = RoutedModel.from_search(search, plan)
    print(f"plan: {args.clusters} clusters in {time.perf_counter() - start:.0f} s, "
          f"sizes {plan.sizes.tolist()}", flush=True)
    held_out = [features for features, _ in batches(x, y, split, args.rows, args.infer_batch)]
    infer_rows = len(held_out) * args.infer_batch
    subjects = {
        "base": tf.function(base.__call__),
        "routed": tf.function(routed.__call__),
        "route": tf.function(routed.route),
        "embed_gate_dense": tf.function(lambda x: routed.gate.logits(routed.embedding(x))),
    }
    for fn in subjects.values():  # trace
        timed_pass(fn, held_out[:3])
    inference = summary(interleaved(
        subjects, args.infer_reps, lambda fn: infer_rows / timed_pass(fn, held_out),
    ), "base", "routed")
    inference["target"] = "routed >= 1.0x base"
    inference["met"] = inference["routed_over_base"] >= 1.0
    seconds = {name: 1 / eps for name, eps in inference["median_examples_per_s"].items()}
    inference["routed_time_share"] = {
        "embedding + gate Dense": round(seconds["embed_gate_dense"] / seconds["routed"], 3),
        "histogram threshold + router": round(
            (seconds["route"] - seconds["embed_gate_dense"]) / seconds["routed"], 3),
        "partition + per-cluster models + stitch": round(
            (seconds["routed"] - seconds["route"]) / seconds["routed"], 3),
    }

    report = {
        "benchmark": "model_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "arch": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in load_start],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "sizes": {
            "rows": args.rows,
            "train_rows_per_epoch": train_rows,
            "held_out_rows_for_inference": infer_rows,
            "fields": len(fields),
            "vocabulary_total": sum(sizes.values()),
            "embedding_dim": 16,
            "train_batch": args.train_batch,
            "infer_batch": args.infer_batch,
            "gate_every": args.gate_every,
            "gate_rank": args.gate_rank,
            "train_reps": args.train_reps,
            "infer_reps": args.infer_reps,
            "clusters": args.clusters,
            "cluster_sizes": plan.sizes.tolist(),
            "cluster_total_widths": plan.widths().sum(axis=1).tolist(),
        },
        "training": training,
        "inference": inference,
    }
    print(json.dumps({k: report[k] for k in ("training", "inference")}, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
