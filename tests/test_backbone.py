"""Backbone layers: numeric references, training on a learnable problem, saving and configs."""

import json

import keras
import numpy as np
import pytest

from ihas_keras.layers import MLP, Backbone, CrossNetV2, FMInteraction

WIDTHS = [4, 0, 3, 4]  # unequal, with a dropped field: 11 embedded columns, 3 kept fields


def pairwise_fm(fields):
    """sum_{f<g} <e_f, e_g> over [B, F, d], one pair at a time."""
    num_fields = fields.shape[1]
    pairs = [(f, g) for f in range(num_fields) for g in range(f + 1, num_fields)]
    return sum(np.sum(fields[:, f] * fields[:, g], axis=-1, keepdims=True) for f, g in pairs)


def pad_fields(embedded, widths):
    """[B, sum(widths)] -> [B, F_kept, max(widths)]: kept fields, zero-padded on the right."""
    kept = [w for w in widths if w > 0]
    starts = np.cumsum([0, *kept[:-1]])
    padded = np.zeros((len(embedded), len(kept), max(kept)), dtype=embedded.dtype)
    for f, (start, width) in enumerate(zip(starts, kept, strict=True)):
        padded[:, f, :width] = embedded[:, start : start + width]
    return padded


def dense_stack(dense_layers, x):
    """ReLU(x W + b) through the given Dense layers' weights."""
    for dense in dense_layers:
        x = np.maximum(x @ dense.kernel.numpy() + dense.bias.numpy(), 0)
    return x


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_fm_interaction_equals_explicit_pairwise_sum():
    fields = random(5, 4, 3)
    out = keras.ops.convert_to_numpy(FMInteraction()(fields))
    assert out.shape == (5, 1)
    np.testing.assert_allclose(out, pairwise_fm(fields), rtol=1e-5, atol=1e-5)


def test_cross_net_v2_matches_formula():
    x0 = random(6, 4)
    layer = CrossNetV2(num_layers=2)
    layer.build(x0.shape)
    kernels, biases = [random(4, 4, seed=s) for s in (1, 2)], [random(4, seed=s) for s in (3, 4)]
    layer.set_weights([*kernels, *biases])
    expected = x0
    for kernel, bias in zip(kernels, biases, strict=True):
        expected = x0 * (expected @ kernel + bias) + expected
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x0)), expected, rtol=1e-5)


def test_mlp_is_a_relu_dense_stack_with_dropout_only_in_training():
    x = random(8, 5)
    mlp = MLP(hidden_units=(4, 3), dropout=0.5)
    out = keras.ops.convert_to_numpy(mlp(x))
    np.testing.assert_allclose(out, dense_stack(mlp.dense_layers, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(mlp(x, training=True)), out)


def learnable_problem(rows=512):
    """Raw inputs and labels that depend only on products of dimensions of different fields."""
    x, raw_linear = random(rows, sum(WIDTHS), seed=1), random(rows, 3, seed=2)
    labels = (x[:, 0] * x[:, 4] + x[:, 5] * x[:, 9] > 0).astype("float32")
    return x, raw_linear, labels


@pytest.mark.parametrize("kind", Backbone.KINDS)
def test_every_kind_learns_feature_interactions(kind):
    keras.utils.set_random_seed(0)
    x, raw_linear, labels = learnable_problem()
    embedded_in, linear_in = keras.Input((sum(WIDTHS),)), keras.Input((3,))
    # Learnable projections stand in for the embedding tables, so gradients must reach them.
    embedded = keras.layers.Dense(sum(WIDTHS), use_bias=False)(embedded_in)
    if kind in Backbone.LINEAR_KINDS:
        linear = keras.layers.Dense(3, use_bias=False)(linear_in)
        model = keras.Model([embedded_in, linear_in], Backbone(kind, WIDTHS)((embedded, linear)))
        inputs = [x, raw_linear]
    else:
        model = keras.Model(embedded_in, Backbone(kind, WIDTHS)((embedded, None)))
        inputs = x
    model.compile(keras.optimizers.Adam(0.05), keras.losses.BinaryCrossentropy(from_logits=True))
    loss = model.fit(inputs, labels, batch_size=512, epochs=30, verbose=0).history["loss"]
    # Labels are balanced (a bias alone stays near ln 2 = 0.69) and need the interactions.
    assert abs(labels.mean() - 0.5) < 0.05
    assert loss[-1] < 0.2 < loss[0], loss


@pytest.mark.parametrize("widths", [[3, 0, 2, 4], [2, 2, 2]], ids=["unequal", "equal"])
@pytest.mark.parametrize("kind", Backbone.KINDS)
def test_logit_matches_numpy_reference(kind, widths):
    """Each kind's parts, summed as documented; FM sees kept fields zero-padded to max(widths)."""
    embedded, linear = random(7, sum(widths), seed=1), random(7, 3, seed=2)
    layer = Backbone(kind, widths)
    layer((embedded, linear))
    layer.bias.assign([0.25])
    out = keras.ops.convert_to_numpy(layer((embedded, linear)))

    expected = np.full((7, 1), 0.25, "float32")
    if kind in ("fm", "wide_deep", "deepfm"):
        expected += linear.sum(axis=1, keepdims=True)
    if kind in ("fm", "deepfm"):
        expected += pairwise_fm(pad_fields(embedded, widths))
    if kind != "fm":
        deep = dense_stack(layer.mlp.dense_layers, embedded)
        if kind == "dcn_v2":
            crossed = embedded
            for kernel, bias in zip(layer.cross.kernels, layer.cross.biases, strict=True):
                crossed = embedded * (crossed @ kernel.numpy() + bias.numpy()) + crossed
            deep = np.concatenate([crossed, deep], axis=1)
        expected += deep @ layer.head.kernel.numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", Backbone.KINDS)
def test_all_fields_dropped_gives_the_bias(kind):
    embedded_in, linear_in = keras.Input((0,)), keras.Input((0,))
    layer = Backbone(kind, [0, 0, 0])
    model = keras.Model([embedded_in, linear_in], layer((embedded_in, linear_in)))
    layer.bias.assign([0.3])
    out = model.predict([np.zeros((4, 0)), np.zeros((4, 0))], verbose=0)
    np.testing.assert_allclose(out, np.full((4, 1), 0.3))
    assert [w.name for w in layer.weights] == ["bias"]


def functional(name):
    """A small functional model around one layer, and inputs for it."""
    embedded_in, linear_in = keras.Input((sum(WIDTHS),)), keras.Input((3,))
    inputs = [random(6, sum(WIDTHS), seed=1), random(6, 3, seed=2)]
    if name == "mlp":
        return keras.Model(embedded_in, MLP((5, 3))(embedded_in)), inputs[0]
    if name == "fm_interaction":
        fields = keras.Input((3, 4))
        return keras.Model(fields, FMInteraction()(fields)), random(6, 3, 4)
    if name == "cross_net_v2":
        return keras.Model(embedded_in, CrossNetV2(3)(embedded_in)), inputs[0]
    if name == "all_dropped":
        empty = keras.Input((0,))
        model = keras.Model(empty, Backbone("deepfm", [0, 0])((empty, None)))
        return model, np.zeros((6, 0), "float32")
    logit = Backbone(name, WIDTHS, hidden_units=(6, 4))((embedded_in, linear_in))
    return keras.Model([embedded_in, linear_in], logit), inputs


@pytest.mark.parametrize(
    "name", ["mlp", "fm_interaction", "cross_net_v2", "all_dropped", *Backbone.KINDS]
)
def test_keras_saving_round_trip(tmp_path, name):
    keras.utils.set_random_seed(0)
    model, inputs = functional(name)
    expected = model.predict(inputs, verbose=0)
    assert np.abs(expected).sum() > 0 or name == "all_dropped"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), expected)


@pytest.mark.parametrize(
    "layer",
    [
        MLP((7, 5), activation="tanh", dropout=0.1),
        FMInteraction(),
        CrossNetV2(num_layers=3),
        Backbone("dcn_v2", (np.int64(4), 0, 3), hidden_units=(6,), cross_layers=1),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert type(layer).from_config(config).get_config() == config
    if isinstance(layer, Backbone):
        assert config["widths"] == [4, 0, 3] and config["hidden_units"] == [6]
        assert all(type(w) is int for w in config["widths"])


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backbone kind 'xdeepfm'") as error:
        Backbone("xdeepfm", WIDTHS)
    assert all(kind in str(error.value) for kind in Backbone.KINDS)


def test_bad_widths_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="widths must be integers >= 0"):
        Backbone("dnn", [4, -1])
    with pytest.raises(ValueError, match="embedded has 10 columns, sum\\(widths\\) is 11"):
        Backbone("dnn", WIDTHS)((random(2, 10), None))
    with pytest.raises(ValueError, match="linear has 4 columns, 3 fields are kept"):
        Backbone("fm", WIDTHS)((random(2, 11), random(2, 4)))
