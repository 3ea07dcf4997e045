"""Bi-level search and retraining under `tf.distribute.MirroredStrategy` on 2 logical CPUs.

TF fixes its logical devices when it starts, so the runs happen in a fresh process; that
process trains the same models on the same data under the strategy and on one device.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import ihas_keras
    from ihas_keras.models.recommender import Recommender
    from ihas_keras.retraining import fit_recommender

    rng = np.random.default_rng(0)
    ids = {"a": rng.integers(0, 50, 4096), "b": rng.integers(0, 20, 4096)}
    y = ((ids["a"] % 2) ^ (ids["b"] % 3 == 0)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((ids, y)).batch(256)

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            search = ihas_keras.build_model({"a": 50, "b": 20}, embedding_dim=4, seed=0)
            recommender = Recommender(["a", "b"], [50, 20], [4, 4], hidden_units=[8])
            fit_recommender(recommender, data, data.take(4), epochs=6, patience=6, verbose=0)
        search.set_gate_mode("stochastic")
        search.use_validation(data, gate_every=2)
        history = search.fit(data, epochs=4, verbose=0)
        return {"arch_steps": history.history["arch_steps"],
                "search_auc": history.history["auc"][-1],
                "replicas": strategy.num_replicas_in_sync,
                "recommender_auc": recommender.evaluate(data, verbose=0, return_dict=True)["auc"]}

    print("RESULT", json.dumps({
        "mirrored": run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
        "one_device": run(tf.distribute.get_strategy())}))
""")


def test_search_and_retraining_under_mirrored_strategy_match_one_device():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    runs = json.loads(line.removeprefix("RESULT "))
    mirrored, one = runs["mirrored"], runs["one_device"]
    assert mirrored["replicas"] == 2 and one["replicas"] == 1
    assert mirrored["arch_steps"] == one["arch_steps"] == [8.0] * 4  # one every 2nd batch
    for key in ("search_auc", "recommender_auc"):
        assert one[key] > 0.65 and abs(mirrored[key] - one[key]) < 0.05, (key, runs)
