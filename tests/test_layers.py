"""The iHAS layers on real computations: gates, threshold searcher, regularizer, router."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ihas_keras.layers.embedding import FieldEmbedding
from ihas_keras.layers.gate import BernoulliGate, _straight_through_sample
from ihas_keras.layers.regularizer import GateRegularizer, polarization
from ihas_keras.layers.router import CentroidRouter
from ihas_keras.layers.threshold import ThresholdSearcher, histogram_threshold


def test_straight_through_is_hard_forward_and_soft_backward():
    keras.utils.set_random_seed(1)
    gate = BernoulliGate(12, mode="stochastic", seed=3)
    e = tf.random.normal([64, 12])
    with tf.GradientTape() as tape:
        mask, p = gate(e, training=True)
        loss = tf.reduce_sum(mask * tf.range(12, dtype=tf.float32))
    values = np.unique(mask.numpy())
    assert set(values.tolist()) <= {0.0, 1.0} and len(values) == 2
    kernel_grad, bias_grad = tape.gradient(loss, [gate.kernel, gate.bias])
    assert np.abs(kernel_grad.numpy()).sum() > 0 and np.abs(bias_grad.numpy()).sum() > 0
    # Keep rate follows p: with the bias at logit(0.5) and small logits, about half are kept.
    assert 0.3 < mask.numpy().mean() < 0.7


def test_the_sample_is_the_tempered_gumbel_softmax_forward_and_backward():
    """The cheap form (a Bernoulli comparison forward, the soft sample's gradient computed in
    the backward pass) equals the straight-through Gumbel-Softmax written out."""
    logits = tf.random.stateless_normal([512, 8], seed=[1, 2]) * 3
    u = tf.random.stateless_uniform([512, 8], seed=[3, 4], minval=1e-6, maxval=1 - 1e-6)
    weights, temperature = tf.range(1.0, 9.0), 0.4
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        hard = _straight_through_sample(logits, tf.sigmoid(logits), u, temperature)
        soft = tf.sigmoid((logits + tf.math.log(u) - tf.math.log(1 - u)) / temperature)
        loss, reference = tf.reduce_sum(hard * weights), tf.reduce_sum(soft * weights)
    clear = np.abs(soft.numpy() - 0.5) > 1e-5  # away from float ties at the boundary
    np.testing.assert_array_equal(hard.numpy()[clear], (soft.numpy() > 0.5)[clear])
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(),
                               tape.gradient(reference, logits).numpy(), rtol=1e-4, atol=1e-6)


def test_stochastic_samples_follow_the_probabilities():
    gate = BernoulliGate(4, instance_wise=False, seed=0)
    gate.build()
    gate.bias.assign(np.log(np.array([0.1, 0.5, 0.9, 0.99]) / (1 - np.array([0.1, .5, .9, .99]))))
    mask, _ = gate(tf.zeros([20000, 4]), training=True)
    np.testing.assert_allclose(mask.numpy().mean(0), [0.1, 0.5, 0.9, 0.99], atol=0.015)


def test_modes_open_and_deterministic():
    gate = BernoulliGate(6, mode="open")
    e = tf.random.normal([5, 6])
    mask, p = gate(e, training=True)
    assert (mask.numpy() == 1).all() and ((0 < p.numpy()) & (p.numpy() < 1)).all()
    gate.mode = "deterministic"
    m1, p1 = gate(e, training=True)
    m2, _ = gate(e, training=True)
    np.testing.assert_array_equal(m1.numpy(), m2.numpy())
    t = histogram_threshold(p1).numpy()
    np.testing.assert_array_equal(m1.numpy(), (p1.numpy() > t[:, None]).astype("float32"))
    with pytest.raises(ValueError, match="not one of"):
        gate.mode = "sometimes"
    fixed = BernoulliGate.from_config({**gate.get_config(), "global_threshold": 0.4})
    fixed.build()
    fixed.set_weights(gate.get_weights())
    m3, p3 = fixed(e)
    np.testing.assert_array_equal(m3.numpy(), (p3.numpy() > 0.4).astype("float32"))


def test_not_instance_wise_gives_every_example_the_same_probabilities():
    gate = BernoulliGate(8, instance_wise=False)
    _, p = gate(tf.random.normal([3, 8]))
    np.testing.assert_array_equal(p.numpy()[0], p.numpy()[2])
    assert not hasattr(gate, "kernel")


def test_threshold_finds_the_valley_of_bimodal_rows():
    rng = np.random.default_rng(0)
    low = rng.beta(2, 30, size=(50, 400))  # closed dimensions, near 0.06
    high = rng.beta(30, 4, size=(50, 224))  # open dimensions, near 0.88
    t = histogram_threshold(np.concatenate([low, high], 1)).numpy()[:, None]
    # The first valley comes right after the low mode's bulk: only its sparse tail can lie above.
    assert (t < high.min(1, keepdims=True)).all(), t.ravel()
    assert (low > t).mean() < 0.03 and ((0.07 < t) & (t < 0.5)).all(), t.ravel()
    # A row without a valley falls back to the edge of bin 1.
    assert histogram_threshold(np.full((1, 50), 0.7)).numpy()[0] == pytest.approx(0.01)


def test_threshold_on_hand_made_histogram():
    # 10 bins: counts 5, 3, 1, 0, 0, 2, 6: the dip to 3 is not below half of 5; bin 3 is the valley.
    values = [0.05] * 5 + [0.15] * 3 + [0.25] + [0.55] * 2 + [0.65] * 6
    layer = ThresholdSearcher(bins=10, smoothing=1)
    assert layer(np.array([values], "float32")).numpy()[0] == pytest.approx(0.3)
    assert ThresholdSearcher.from_config(layer.get_config()).bins == 10


def test_regularizer_matches_eq5_by_hand():
    p = np.array([[0.2, 0.4, 0.9], [0.5, 0.5, 0.5]], "float32")
    # row 1: mean 0.5; sum(1.2 p) = 1.8; sum |p - 0.5| = 0.3 + 0.1 + 0.4 = 0.8 -> 1.0
    # row 2: sum(1.2 p) = 1.8; no spread -> 1.8. Mean over rows 1.4, times weight 0.5 = 0.7.
    assert float(GateRegularizer(1.2, 0.5)(p)) == pytest.approx(0.7)
    assert float(GateRegularizer(1.2, 0.5, polarization=False)(p)) == pytest.approx(0.9)
    assert float(polarization(p)) == pytest.approx((0.8 / 3) / 2)
    config = GateRegularizer(2.0, 1e-3, False).get_config()
    assert GateRegularizer.from_config(config).get_config() == config


def test_field_embedding_widths_and_dropped_fields():
    layer = FieldEmbedding(["a", "b", "c"], [5, 7, 3], [4, 0, 2])
    out = layer({"a": np.array([1, 4]), "b": np.array([0, 6]), "c": np.array([2, 0])})
    assert out.shape == (2, 6) and layer.output_dim == 6 and "b" not in layer.tables
    np.testing.assert_array_equal(out.numpy()[1, 4:], layer.tables["c"].numpy()[0])
    with pytest.raises(ValueError, match="must match"):
        FieldEmbedding(["a"], [5, 6], [1])


def test_router_picks_the_nearest_centroid():
    router = CentroidRouter(3, 2)
    router.build()
    router.set_centroids([[0, 0], [10, 0], [0, 10]])
    points = np.array([[1, 1], [9, -1], [-1, 12], [4, 6.5]], "float32")
    assert router(points).numpy().tolist() == [0, 1, 2, 2]


@pytest.mark.parametrize("layer", [
    BernoulliGate(6, mode="deterministic", instance_wise=True, temperature=0.2, seed=4),
    FieldEmbedding(["a", "b"], [4, 5], [3, 0]),
    CentroidRouter(2, 6),
    ThresholdSearcher(50, 3),
])
def test_layers_serialize_with_get_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()



def test_a_low_rank_gate_factors_its_kernel():
    gate = BernoulliGate(10, mode="deterministic", rank=3)
    e = tf.random.normal([7, 10])
    _, p = gate(e)
    assert gate.kernel_in.shape == (10, 3) and gate.kernel_out.shape == (3, 10)
    logits = e.numpy() @ gate.kernel_in.numpy() @ gate.kernel_out.numpy() + gate.bias.numpy()
    np.testing.assert_allclose(p.numpy(), 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    again = BernoulliGate.from_config(gate.get_config())
    again.build()
    again.set_weights(gate.get_weights())
    np.testing.assert_array_equal(again(e)[1].numpy(), p.numpy())
    with pytest.raises(ValueError, match="rank"):
        BernoulliGate(10, rank=-1)
