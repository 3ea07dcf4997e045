"""The search model on a toy problem: gates learn which fields matter; bi-level reads; saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ihas_keras
from ihas_keras.layers.regularizer import polarization
from ihas_keras.layers.threshold import histogram_threshold

SIGNAL, NOISE, VOCAB, DIM = 3, 5, 30, 8
FIELDS = [f"s{i}" for i in range(SIGNAL)] + [f"n{i}" for i in range(NOISE)]


def toy_data(rows=40000, seed=0):
    """Clicks driven by the three s-fields only; the n-fields are pure noise."""
    rng = np.random.default_rng(seed)
    ids = {f: rng.integers(0, VOCAB, rows) for f in FIELDS}
    logit = sum(rng.normal(0, 1.5, VOCAB)[ids[f]] for f in FIELDS[:SIGNAL]) - 1.0
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return ids, labels


def batches(ids, labels, lo, hi, size=256):
    data = ({f: v[lo:hi] for f, v in ids.items()}, labels[lo:hi])
    return tf.data.Dataset.from_tensor_slices(data).batch(size)


def searched(polarization: bool):
    """A search run scaled for a toy: 2 pretraining epochs, 6 search epochs, a gate step every 5
    batches, and a regularizer weight of 1e-3 (1e-4 moves the gates too little in 150 steps)."""
    keras.utils.set_random_seed(0)
    ids, labels = toy_data()
    model = ihas_keras.build_model(
        {f: VOCAB for f in FIELDS}, embedding_dim=DIM, regularization_weight=1e-3,
        polarization=polarization, seed=0, compile=False,
    )
    model.compile(architecture_optimizer=keras.optimizers.Adam(1e-2))
    ihas_keras.search(model, batches(ids, labels, 0, 32000), batches(ids, labels, 32000, 36000),
                      pretrain_epochs=2, epochs=6, gate_every=5, verbose=0, patience=None)
    test = {f: v[36000:] for f, v in ids.items()}
    _, mask = model.routing_points(test)
    p = model.gated(test)[2].numpy()
    open_by_field = mask.numpy().reshape(len(test["s0"]), len(FIELDS), DIM).mean(axis=(0, 2))
    return model, test, p, open_by_field


@pytest.fixture(scope="module")
def polarized():
    return searched(polarization=True)


@pytest.fixture(scope="module")
def unpolarized():
    return searched(polarization=False)


def test_gates_keep_signal_and_close_noise(polarized):
    _, _, _, open_by_field = polarized
    # Measured: signal fields ~1.0 open, noise 0.15-0.4. The bounds leave room for noise in
    # training while failing if gates stay open (1.0) or close everything.
    assert open_by_field[:SIGNAL].min() >= 0.9, open_by_field
    assert open_by_field[SIGNAL:].mean() <= 0.5, open_by_field


def test_polarization_makes_probabilities_bimodal(polarized, unpolarized):
    _, _, p_pol, _ = polarized
    _, _, p_flat, _ = unpolarized
    gap = lambda p: ((p > 0.1) & (p < 0.5)).mean()  # noqa: E731
    # Measured: 4 % of probabilities in the gap with polarization, 25 % without; mean distance
    # from the example's mean 0.38 vs 0.31.
    assert gap(p_pol) < 0.5 * gap(p_flat), (gap(p_pol), gap(p_flat))
    assert float(polarization(p_pol)) > 1.1 * float(polarization(p_flat))
    # The searcher's threshold sits in the valley: little mass just above it, the modes apart.
    t = histogram_threshold(p_pol).numpy()[:, None]
    assert ((p_pol >= t) & (p_pol < t + 0.05)).mean() < 0.05
    assert 0.01 <= np.median(t) <= 0.3


def test_validation_is_read_only_on_gate_steps():
    keras.utils.set_random_seed(1)
    ids, labels = toy_data(rows=6000)
    reads = tf.Variable(0, dtype=tf.int64)

    def count(x, y):  # runs once for every validation batch taken
        reads.assign_add(1)
        return x, y

    validation = batches(ids, labels, 5000, 6000).map(count)
    model = ihas_keras.build_model({f: VOCAB for f in FIELDS}, embedding_dim=4)
    model.use_validation(validation, gate_every=4)
    # A filter hides the length from Keras, which then reads until the data runs out.
    train = batches(ids, labels, 0, 5000).filter(lambda x, y: True)
    history = model.fit(train, epochs=2, verbose=0)
    # 20 training batches an epoch -> 5 gate steps an epoch; 10 validation batches read in all.
    assert history.history["arch_steps"] == [5.0, 5.0]
    assert history.history["open_fraction"][0] < 1.0  # stochastic gates at p = 0.5
    assert int(reads.numpy()) == 10


def test_no_gate_steps_while_the_gates_are_open():
    ids, labels = toy_data(rows=600)
    model = ihas_keras.build_model({f: VOCAB for f in FIELDS}, embedding_dim=4)
    model.set_gate_mode("open")
    model.use_validation(batches(ids, labels, 500, 600), gate_every=1)
    unknown_length = batches(ids, labels, 0, 500).filter(lambda x, y: True)
    history = model.fit(unknown_length, epochs=1, verbose=0)
    assert history.history["arch_steps"] == [0.0] and history.history["open_fraction"] == [1.0]
    with pytest.raises(ValueError, match="gate_every"):
        model.use_validation(batches(ids, labels, 500, 600), gate_every=0)


def test_search_model_round_trip(polarized, tmp_path):
    model, test, _, _ = polarized
    model.save(tmp_path / "search.keras")
    loaded = keras.models.load_model(tmp_path / "search.keras")
    np.testing.assert_array_equal(loaded(test).numpy(), model(test).numpy())
    assert loaded.get_config() == model.get_config()


def test_build_model_rejects_bad_feature_specs():
    with pytest.raises(ValueError, match="empty"):
        ihas_keras.build_model({})
    with pytest.raises(ValueError, match="C7"):
        ihas_keras.build_model({"C1": 10, "C7": 0})


def test_stage_functions_stay_functions_after_their_modules_load():
    import ihas_keras.cluster  # noqa: F401
    import ihas_keras.retraining  # noqa: F401
    import ihas_keras.training  # noqa: F401

    for name in ("build_model", "search", "fit_clusters", "retrain"):
        assert callable(getattr(ihas_keras, name)) and not isinstance(
            getattr(ihas_keras, name), type(ihas_keras)
        ), name


def test_search_with_patience_stops_on_a_plateau():
    """Optimizers that cannot move the weights give a flat validation AUC: each phase stops
    after its first epoch and PATIENCE more, well before its cap, and keeps its best weights."""
    keras.utils.set_random_seed(0)
    ids, labels = toy_data(rows=3000)
    model = ihas_keras.build_model({f: VOCAB for f in FIELDS}, embedding_dim=DIM, seed=0,
                                   compile=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  architecture_optimizer=keras.optimizers.SGD(0.0))
    pretrain, search = ihas_keras.search(
        model, batches(ids, labels, 0, 2000), batches(ids, labels, 2000, 3000),
        pretrain_epochs=50, epochs=50, gate_every=2, verbose=0, patience=2)
    assert len(pretrain.history["val_auc"]) == len(search.history["val_auc"]) == 3
    assert search.history["arch_steps"][-1] > 0  # gate steps ran while searching


def test_search_with_patience_runs_to_the_cap_while_improving():
    keras.utils.set_random_seed(0)
    ids, labels = toy_data(rows=6000)
    model = ihas_keras.build_model({f: VOCAB for f in FIELDS}, embedding_dim=DIM, seed=0)
    pretrain, _ = ihas_keras.search(
        model, batches(ids, labels, 0, 5000), batches(ids, labels, 5000, 6000),
        pretrain_epochs=3, epochs=1, gate_every=2, verbose=0, patience=5)
    aucs = pretrain.history["val_auc"]
    assert len(aucs) == 3 and aucs[-1] > aucs[0]  # still learning: no early stop at the cap
