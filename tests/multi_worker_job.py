"""One process of tests/test_multi_worker.py: trains the search model, a recommender and the
routed model on small generated data, under the strategy TF_CONFIG implies, and writes what it
measured.

    TF_CONFIG='{"cluster": {...}, "task": {...}}' python -m tests.multi_worker_job OUT
    python -m tests.multi_worker_job OUT          # no TF_CONFIG: the one-device reference

Writes OUT/result-NAME.json (metrics, and on a worker whether Keras's own code still fails
without each of `ihas_keras.distribute_fixes`) and OUT/weights-NAME.npz (every model's final
weights), NAME being "worker-I" or "one-device". Every step is bounded (a few epochs of 16
batches), so the process ends by itself.
"""

import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import ihas_keras
from ihas_keras import distribute, distribute_fixes
from ihas_keras.models.recommender import Recommender
from ihas_keras.retraining import compile_recommender, fit_recommender, validation_auc

ROWS, BATCH = 4096, 256
SIZES = {"a": 50, "b": 20}


def dataset():
    """(features, label) batches whose label is a function of both fields (AUC ~1 learnable)."""
    rng = np.random.default_rng(0)
    ids = {field: rng.integers(0, size, ROWS) for field, size in SIZES.items()}
    y = ((ids["a"] % 2) ^ (ids["b"] % 3 == 0)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((ids, y)).batch(BATCH)


def keras_failure(strategy, data) -> str | None:
    """How one epoch of a fresh recommender's `fit` fails under STRATEGY; None if it trains."""
    with strategy.scope():
        model = compile_recommender(Recommender(list(SIZES), list(SIZES.values()), [4, 4],
                                                hidden_units=[8]))
    try:
        model.fit(data.take(2), epochs=1, verbose=0)
    except Exception as error:  # the failures are Keras's; any kind is recorded
        text = " ".join(str(error).split())  # its start and end: the middle holds the batch
        return f"{type(error).__name__}: {text[:120]} ... {text[-200:]}"
    return None


def upstream_failures(strategy, data) -> dict:
    """Whether Keras's own code still fails without each fix: {fix: the failure, or None}.

    Each fix is undone alone, the other applied; every fix is applied again at the end.
    """
    failures = {}
    for name in distribute_fixes.FIXES:
        distribute_fixes.apply()
        distribute_fixes.undo((name,))
        failures[name] = keras_failure(strategy, data)
    distribute_fixes.apply()
    return failures


def searched(data, epochs: int):
    """A search model, gates stochastic, trained for EPOCHS with a gate step every 2nd batch
    (under the strategy of the scope it is called in); and its Keras History."""
    keras.utils.set_random_seed(0)
    search = ihas_keras.build_model(SIZES, embedding_dim=4, seed=0)
    search.set_gate_mode("stochastic")
    search.use_validation(data, gate_every=2)
    return search, search.fit(data, epochs=epochs, verbose=0)


def train(strategy, data) -> tuple[dict, dict]:
    """The search model and a recommender under STRATEGY; the routed model retrained under it
    from a search and plan that are the same in every process; their metrics and weights.

    The routed model's starting point is a search trained on this process's own device, outside
    the strategy (the same numbers in every process), copied into a model of the strategy: the
    gate noise differs between one device and 2 replicas, and on this little data the searched
    widths (which fields each cluster keeps) differ with it, so only a shared starting point
    compares the retraining itself. It routes by the gate (no distilled router: cheaper).
    """
    validation = data.take(4)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        recommender = Recommender(list(SIZES), list(SIZES.values()), [4, 4], hidden_units=[8])
        fit_recommender(recommender, data, validation, epochs=6, patience=6, verbose=0)
        search, history = searched(data, epochs=4)
    local, _ = searched(data, epochs=3)
    plan = ihas_keras.fit_clusters(local, data, num_clusters=2, seed=0, progress=False)
    with strategy.scope():
        start = ihas_keras.build_model(SIZES, embedding_dim=4, seed=0)
        start(next(iter(data))[0])
        start.set_weights(local.get_weights())
        routed = ihas_keras.retrain(start, plan, data, validation, epochs=6, patience=6,
                                    verbose=0, seed=0, routing="gate")
    metrics = {
        "replicas": strategy.num_replicas_in_sync,
        "chief": distribute.is_chief(strategy),
        "arch_steps": history.history["arch_steps"],
        "search_auc": history.history["auc"][-1],
        "recommender_auc": recommender.evaluate(data, verbose=0, return_dict=True)["auc"],
        "plan": {"sizes": plan.sizes.tolist(), "widths": plan.widths().tolist()},
        "routed_auc": validation_auc(routed, data),
        "routed_kind": type(routed).__name__,
    }
    weights = {f"{name}/{i}": v.numpy() for name, model in
               (("search", search), ("recommender", recommender), ("routed", routed))
               for i, v in enumerate(model.weights)}
    return metrics, weights


def main(out: str) -> int:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    strategy = distribute.strategy("multi_worker" if config else "default")
    data = dataset()
    name = f"worker-{config['task']['index']}" if config else "one-device"
    result = {"upstream_failures": upstream_failures(strategy, data)} if config else {}
    print("RESULT", json.dumps(result), flush=True)
    metrics, weights = train(strategy, data)
    result.update(metrics, fixes_applied=list(distribute_fixes.applied()))
    np.savez(os.path.join(out, f"weights-{name}.npz"), **weights)
    with open(os.path.join(out, f"result-{name}.json"), "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
