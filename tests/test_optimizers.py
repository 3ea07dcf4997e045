"""LazyAdam on real gradients: Adam where rows are looked up; the rows not looked up left alone,
or caught up with the steps dense Adam takes on them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ihas_keras import optimizers
from ihas_keras.layers.embedding import FieldEmbedding
from ihas_keras.models.recommender import Recommender
from ihas_keras.precision import dtype_policy
from ihas_keras.retraining import compile_recommender, fit_recommender


def _train(optimizer, batches):
    """A 6 x 3 table and a dense 3 x 1 kernel trained on a squared loss over BATCHES of ids,
    then (for a LazyAdam) every row caught up."""
    keras.utils.set_random_seed(0)
    embedding = FieldEmbedding(["a"], [6], [3])
    embedding.build()
    kernel = keras.Variable(np.linspace(0.5, 1.5, 3, dtype="float32")[:, None])
    variables = [embedding.tables["a"], kernel]
    for ids in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum((embedding({"a": tf.constant(ids)}) @ kernel.value - 1.0) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    if isinstance(optimizer, optimizers.LazyAdam):
        optimizer.catch_up()
    return embedding.tables["a"].numpy(), kernel.numpy()


def test_the_lookup_gradient_is_sparse():
    embedding = FieldEmbedding(["a"], [1000], [4])
    embedding.build()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(embedding({"a": tf.constant([3, 3, 7])}))
    grad = tape.gradient(loss, embedding.tables["a"])
    assert isinstance(grad, tf.IndexedSlices)
    assert sorted(grad.indices.numpy().tolist()) == [3, 3, 7]


def test_rows_looked_up_every_step_train_as_with_dense_adam():
    # Every row every step, rows 1 and 4 twice (their gradient parts squared, then summed, as
    # Keras's Adam does with a sparse gradient).
    batches = [np.array([5, 1, 2, 3, 4, 0, 1, 4])] * 6
    lazy = _train(optimizers.LazyAdam(0.1, weight_decay=1e-2), batches)
    dense = _train(keras.optimizers.Adam(0.1, weight_decay=1e-2), batches)
    for a, b in zip(lazy, dense, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    initial = _train(optimizers.LazyAdam(0.1), [])
    assert np.abs(lazy[0] - initial[0]).min() > 1e-3  # every row moved


def test_without_catching_up_rows_not_looked_up_keep_their_weights_and_moments():
    batches = [np.array([0, 1, 2])] + [np.array([0, 0, 1])] * 4
    start = _train(optimizers.LazyAdam(0.1), [])[0]
    after_one = _train(optimizers.LazyAdam(0.1, catch_up=False, weight_decay=1e-2),
                       batches[:1])[0]
    optimizer = optimizers.LazyAdam(0.1, catch_up=False, weight_decay=1e-2)
    lazy = _train(optimizer, batches)[0]
    dense = _train(keras.optimizers.Adam(0.1, weight_decay=1e-2), batches)[0]
    np.testing.assert_array_equal(lazy[2], after_one[2])  # row 2: one step, then never again
    np.testing.assert_array_equal(lazy[3:], start[3:])  # never looked up, no decay either
    assert np.abs(dense[2] - after_one[2]).max() > 1e-3  # dense Adam kept moving row 2
    assert np.abs(dense[3:] - start[3:]).max() > 0  # and decayed the untouched rows
    first_moment = next(v for v in optimizer.variables
                        if "momentum" in v.name and tuple(v.shape) == (6, 3)).numpy()
    assert np.abs(first_moment[2]).max() > 0 and not first_moment[3:].any()


def test_catching_up_takes_the_steps_dense_adam_takes_on_rows_not_looked_up():
    # Row 3 is looked up on steps 1-99, rows 1 and 2 once on step 100, row 0 on every step,
    # rows 4 and 5 never; then 60 steps on row 0 alone.
    batches = [np.array([0, 3])] * 99 + [np.array([0, 1, 2])] + [np.array([0])] * 60
    start = _train(optimizers.LazyAdam(0.01), [])[0]
    dense = _train(keras.optimizers.Adam(0.01, weight_decay=1e-2), batches)[0]
    caught = _train(optimizers.LazyAdam(0.01, weight_decay=1e-2), batches)[0]
    lazy = _train(optimizers.LazyAdam(0.01, catch_up=False, weight_decay=1e-2), batches)[0]
    moved = np.abs(dense - start).max(axis=1)
    assert moved[1:4].min() > 0.05  # dense Adam kept moving rows 1-3 long after their last look
    np.testing.assert_allclose(caught, dense, atol=2e-3 * moved[1:4].min())
    assert np.abs(lazy[1:4] - dense[1:4]).max() > 0.5 * moved[1:4].min()
    assert np.abs(caught[4:] - start[4:]).max() > 0  # weight decay of rows never looked up


def test_the_training_rule_catches_rows_up_before_evaluating(monkeypatch):
    rng = np.random.default_rng(0)
    ids = {"a": rng.integers(0, 500, 2048)}
    data = tf.data.Dataset.from_tensor_slices((ids, (ids["a"] % 2).astype("float32"))).batch(256)
    model = Recommender(["a"], [500], [4], hidden_units=[8])
    seen = []
    original = optimizers.LazyAdam.catch_up
    monkeypatch.setattr(optimizers.LazyAdam, "catch_up",
                        lambda self: seen.append(int(self.iterations)) or original(self))
    fit_recommender(model, data, data.take(2), epochs=2, patience=5, verbose=0)
    assert seen == [8, 16, 16]  # before each epoch's validation, and after training
    last = next(v for v in model.optimizer.variables
                if "last_step" in v.name and tuple(v.shape) == (500, 1))
    assert set(last.numpy().ravel().tolist()) == {16}


def test_a_recommender_learns_with_lazy_adam_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    ids = {"a": rng.integers(0, 50, 4096), "b": rng.integers(0, 20, 4096)}
    y = ((ids["a"] % 2) ^ (ids["b"] % 3 == 0)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((ids, y)).batch(256)
    model = compile_recommender(Recommender(["a", "b"], [50, 20], [4, 4], hidden_units=[8]))
    assert isinstance(model.optimizer, optimizers.LazyAdam)
    model.fit(data, epochs=15, verbose=0)
    assert model.evaluate(data, verbose=0, return_dict=True)["auc"] > 0.95
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, optimizers.LazyAdam)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        optimizers.LazyAdam(amsgrad=True)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_models_train_under_xla_and_mixed_precision(policy):
    """The GPU options build and train on CPU: a recommender with XLA and each mixed policy,
    the search model under the policy; probabilities stay float32."""
    import ihas_keras

    rng = np.random.default_rng(0)
    ids = {"a": rng.integers(0, 50, 2048), "b": rng.integers(0, 20, 2048)}
    y = ((ids["a"] % 2) ^ (ids["b"] % 3 == 0)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((ids, y)).batch(256)
    keras.utils.set_random_seed(0)
    with dtype_policy(policy):
        model = compile_recommender(
            Recommender(["a", "b"], [50, 20], [4, 4], hidden_units=[8]), jit_compile=True)
        assert model.jit_compile and model.embedding.compute_dtype != "float32"
        history = model.fit(data, epochs=12, verbose=0)
        assert history.history["auc"][-1] > 0.75 and model(ids).dtype == tf.float32
        search = ihas_keras.build_model({"a": 50, "b": 20}, embedding_dim=4, seed=0)
        search.fit(data, epochs=1, verbose=0)
        assert search(ids).dtype == tf.float32 and search.routing_points(ids)[0].dtype == tf.float32
        for routing in ("gate", "distilled"):
            routed = ihas_keras.RoutedModel(["a", "b"], [50, 20], 4, [[4, 2], [1, 4]],
                                            columns=[[0, 1, 2, 3, 4, 5], [0, 4, 5, 6, 7]],
                                            routing=routing)
            assert routed(ids)["probability"].dtype == tf.float32
    assert keras.config.dtype_policy().name == "float32"  # restored after the block


def test_a_dtype_policy_keras_does_not_know_is_named():
    with pytest.raises(ValueError, match="dtype policy 'float17'"):
        with dtype_policy("float17"):
            pass
    assert keras.config.dtype_policy().name == "float32"


def test_the_search_model_trains_under_xla():
    """Both steps compiled by XLA: gates leave 0.5 and the model learns."""
    import ihas_keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids = {"a": rng.integers(0, 50, 4096), "b": rng.integers(0, 20, 4096)}
    y = ((ids["a"] % 2) ^ (ids["b"] % 3 == 0)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((ids, y)).batch(256)
    search = ihas_keras.build_model({"a": 50, "b": 20}, embedding_dim=4, seed=0)
    search.compile(jit_compile=True)
    search.set_gate_mode("stochastic")
    search.use_validation(data, gate_every=2)
    history = search.fit(data, epochs=5, verbose=0)
    assert search.jit_compile and history.history["arch_steps"] == [8.0] * 5
    assert history.history["auc"][-1] > 0.65
    probabilities = search.gated(ids)[2]
    assert float(tf.reduce_max(tf.abs(probabilities - 0.5))) > 0.05
