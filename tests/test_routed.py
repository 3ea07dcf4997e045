"""From search to clusters to the routed model, on generated data with planted segments."""

import dataclasses
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import adjusted_rand_score

import ihas_keras
from ihas_keras import plots, retraining
from ihas_keras.distill import distill_router
from ihas_keras.layers.router import REPRESENTATIONS
from ihas_keras.layers.threshold import histogram_threshold
from ihas_keras.layers.towers import BlockTowers, SharedTowers
from ihas_keras.warm_start import warm_start, warm_start_towers
from tests.planted import planted_criteo

ROWS, SEGMENTS = 60000, 2


def batches(x, y, lo, hi, size=512):
    return tf.data.Dataset.from_tensor_slices(({f: v[lo:hi] for f, v in x.items()}, y[lo:hi])) \
        .batch(size)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Search (scaled for a test: width 8, a gate step every 3 batches, regularizer weight 3e-3),
    two clusters, and two retrained DNN recommenders of two epochs each (one per cluster, each
    with its own embeddings; the shared towers have their own tests below)."""
    keras.utils.set_random_seed(0)
    x, y, segments, sizes = planted_criteo(tmp_path_factory.mktemp("planted"), ROWS, SEGMENTS, 3)
    train, val = (0, int(ROWS * 0.8)), (int(ROWS * 0.8), int(ROWS * 0.9))
    model = ihas_keras.build_model(sizes, embedding_dim=8, regularization_weight=3e-3, seed=0,
                                   compile=False)
    model.compile(architecture_optimizer=keras.optimizers.Adam(1e-2))
    ihas_keras.search(model, batches(x, y, *train), batches(x, y, *val), pretrain_epochs=2,
                      epochs=8, gate_every=3, verbose=0, patience=None)
    plan = ihas_keras.fit_clusters(model, batches(x, y, *train), SEGMENTS, progress=False)
    routed = ihas_keras.retrain(model, plan, batches(x, y, *train), batches(x, y, *val),
                                epochs=2, batch_size=512, verbose=0, shared=False)
    test = {f: v[val[1]:] for f, v in x.items()}
    return model, plan, routed, test, segments[val[1]:], x, y


def test_clusters_recover_the_planted_segments(stages):
    _, plan, routed, test, segments, *_ = stages
    clusters = routed(test)["cluster"].numpy()
    # Chance level is 0 (+-0.01 for 6,000 examples); measured here: 0.23.
    assert adjusted_rand_score(segments, clusters) > 0.1
    assert plan.sizes.sum() == int(ROWS * 0.8) and (plan.sizes > 0).all()


def test_routed_prediction_is_its_cluster_models_prediction(stages):
    _, _, routed, test, *_ = stages
    out = routed(test)
    probability, clusters = out["probability"].numpy(), out["cluster"].numpy()
    assert probability.shape == clusters.shape == (len(test["C1"]),)
    assert len(routed.recommenders) == SEGMENTS and routed.towers is None
    for k, recommender in enumerate(routed.recommenders):
        rows = clusters == k
        own = recommender({f: v[rows] for f, v in test.items()}).numpy()
        np.testing.assert_allclose(probability[rows], own, rtol=1e-6, atol=1e-7)
        assert recommender.widths == routed.widths[k]


def test_widths_follow_the_majority_of_masks(stages):
    _, plan, *_ = stages
    kept = (plan.keep >= 0.5).reshape(SEGMENTS, len(plan.fields), plan.embedding_dim)
    np.testing.assert_array_equal(plan.widths(), kept.sum(-1))
    assert plan.widths().sum(1).min() > 0 and (plan.widths() <= plan.embedding_dim).all()


def test_every_model_round_trips(stages, tmp_path):
    model, plan, routed, test, *_ = stages
    for name, m in {"search": model, "routed": routed, "cluster": routed.recommenders[0]}.items():
        m.save(tmp_path / f"{name}.keras")
        loaded = keras.models.load_model(tmp_path / f"{name}.keras")
        before, after = m(test), loaded(test)
        for a, b in zip(tf.nest.flatten(before), tf.nest.flatten(after), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    plan.save(str(tmp_path / "plan.json"))
    again = ihas_keras.ClusterPlan.load(str(tmp_path / "plan.json"))
    np.testing.assert_array_equal(again.widths(), plan.widths())
    np.testing.assert_allclose(again.centroids, plan.centroids)
    assert (again.threshold, again.threshold_agreement) == (plan.threshold,
                                                             plan.threshold_agreement)


def test_the_plan_keeps_one_threshold_and_routes_by_it_where_it_agrees(stages):
    """The plan's global threshold is the pooled histogram's valley; its agreement is measured
    against each example's own threshold, and the routed model uses it only above the bar."""
    model, plan, _, test, *_ = stages
    p = tf.sigmoid(model.gate.logits(model.embedding(
        {f: v[:2000] for f, v in test.items()}))).numpy()
    pooled = histogram_threshold(p.reshape(1, -1)).numpy()[0]
    assert 0 < plan.threshold < 1 and 0.5 < plan.threshold_agreement <= 1
    own = histogram_threshold(p).numpy()[:, None]
    # Another sample of the same model: a threshold in the same valley (where the polarized
    # probabilities leave a wide valley, anywhere in it: few probabilities between the two),
    # and a similar agreement.
    low, high = sorted((float(pooled), plan.threshold))
    assert np.mean((p >= low) & (p < high)) < 0.01
    assert abs(np.mean((p > plan.threshold) == (p > own)) - plan.threshold_agreement) < 0.05
    for agreement, expected in ((1.0, plan.threshold), (0.99, None)):
        changed = dataclasses.replace(plan, threshold_agreement=agreement)
        assert changed.serving_threshold() == expected
        routed = ihas_keras.RoutedModel.from_search(model, changed, shared=True)
        assert routed.gate.global_threshold == expected
        again = ihas_keras.RoutedModel.from_config(routed.get_config())
        assert again.gate.global_threshold == expected


def test_plots_are_written(stages, tmp_path):
    model, plan, _, test, *_ = stages
    p = model.gated(test)[2].numpy()
    hist = plots.gate_histograms({"with polarization": p}, str(tmp_path / "gates.png"))
    heat = plots.widths_heatmap(plan.widths(), plan.fields, str(tmp_path / "widths.png"),
                                plan.sizes)
    for path in (hist, heat):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_load_model_registers_the_classes_in_a_fresh_process(stages, tmp_path):
    """`import ihas_keras` is lazy; `ihas_keras.load_model` still finds every class."""
    _, _, routed, test, *_ = stages
    routed.save(tmp_path / "routed.keras")
    code = ("import sys, ihas_keras; m = ihas_keras.load_model(sys.argv[1]); "
            "print(type(m).__name__, m.widths == eval(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "routed.keras"),
                           repr(routed.widths)], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["RoutedModel", "True"]


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_each_representation_is_clustered_and_routed_the_same_way(stages, representation):
    """The plan clusters the chosen points; the routed graph sends every example to the centroid
    nearest its own point of that representation."""
    model, _, _, test, segments, *_ = stages
    x, y = stages[5], stages[6]
    plan = ihas_keras.fit_clusters(model, batches(x, y, 0, 20000), 2, progress=False,
                                   representation=representation, sample=5000, restarts=3)
    assert plan.representation == representation and plan.sizes.sum() == 20000
    routed = ihas_keras.RoutedModel.from_search(model, plan)
    points = model.routing_points(test, representation)[0].numpy()
    if representation == "mask":
        assert set(np.unique(points)) <= {0.0, 1.0}
    elif representation == "probability":
        assert 0 <= points.min() and points.max() <= 1 and len(np.unique(points)) > 2
    distances = ((points[:, None, :] - plan.centroids[None]) ** 2).sum(-1)
    nearest = distances.argmin(1)
    clear = np.abs(distances[:, 0] - distances[:, 1]) > 1e-3 * distances.max()  # no float ties
    np.testing.assert_array_equal(routed.route(test).numpy()[clear], nearest[clear])
    if representation == "probability":  # the one that follows the segments most on small data
        assert adjusted_rand_score(segments, nearest) > 0.05


def test_warm_start_copies_the_kept_columns(stages):
    model, plan, *_ = stages
    kept = plan.kept_dimensions()[0]
    rec = ihas_keras.Recommender(model.fields, model.vocab_sizes, kept.sum(-1).tolist())
    warm_start(rec, model, kept)
    for i, field in enumerate(model.fields):
        if kept[i].any():
            np.testing.assert_array_equal(rec.embedding.tables[field].numpy(),
                                          model.embedding.tables[field].numpy()[:, kept[i]])
        else:
            assert field not in rec.embedding.tables
    rows = kept.reshape(-1)
    first, searched = rec.backbone.mlp.dense_layers[0], model.backbone.mlp.dense_layers[0]
    np.testing.assert_array_equal(first.kernel.numpy(), searched.kernel.numpy()[rows])
    np.testing.assert_array_equal(rec.backbone.head.kernel.numpy(),
                                  model.backbone.head.kernel.numpy())
    with pytest.raises(ValueError, match="kept dimensions"):
        warm_start(ihas_keras.Recommender(model.fields, model.vocab_sizes,
                                          [1] * len(model.fields)), model, kept)


def test_a_recommender_stops_on_a_plateau(monkeypatch):
    """An optimizer that cannot move the weights gives a flat validation AUC: fit_recommender
    stops after the first epoch and PATIENCE more, far below its cap, as every model does."""
    def frozen(model, jit_compile=False):
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc")])
        return model

    monkeypatch.setattr(retraining, "compile_recommender", frozen)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = {f: rng.integers(0, 50, 3000) for f in ("a", "b")}
    y = rng.integers(0, 2, 3000).astype("float32")
    rec = ihas_keras.Recommender(["a", "b"], [50, 50], [4, 4])
    retraining.fit_recommender(rec, batches(x, y, 0, 2000, 256), batches(x, y, 2000, 3000),
                               epochs=50, patience=2, verbose=0)
    assert len(rec.history.history["val_auc"]) == 3


def test_shared_towers_read_only_their_kept_columns(stages):
    """Warm-started towers over the shared embedding score each example as the search backbone
    scores its embeddings with every dimension its cluster drops set to zero."""
    model, plan, _, test, *_ = stages
    routed = ihas_keras.RoutedModel.from_search(model, plan, shared=True)
    warm_start_towers(routed.towers, model)
    kept = plan.kept_dimensions().reshape(plan.num_clusters, -1)
    out = routed(test)
    clusters = out["cluster"].numpy()
    embedded = model.embedding(test).numpy()
    for k in range(plan.num_clusters):
        rows = clusters == k
        logit = model.backbone((embedded[rows] * kept[k], None)).numpy()[:, 0]
        np.testing.assert_allclose(out["probability"].numpy()[rows], 1 / (1 + np.exp(-logit)),
                                   rtol=1e-5, atol=1e-6)
    assert routed.towers.widths().tolist() == plan.widths().tolist()
    for bad, message in (([[3, 1]], "ascending"), ([[0, 10**6]], "outside")):
        with pytest.raises(ValueError, match=message):
            SharedTowers(model.fields, model.vocab_sizes, model.embedding_dim, bad)


def test_shared_towers_train_as_one_model_and_round_trip(stages, tmp_path):
    model, plan, _, test, _, x, y = stages
    routed = ihas_keras.retrain(model, plan, batches(x, y, 0, 20000), batches(x, y, 48000, 54000),
                                epochs=1, batch_size=512, verbose=0, shared=True, routing="gate")
    searched = model.embedding.tables["C1"].numpy()
    assert not np.allclose(routed.towers.embedding.tables["C1"].numpy(), searched)
    np.testing.assert_array_equal(routed.embedding.tables["C1"].numpy(), searched)  # the router
    routed.save(tmp_path / "shared.keras")
    loaded = keras.models.load_model(tmp_path / "shared.keras")
    for key in ("probability", "cluster"):
        np.testing.assert_array_equal(routed(test)[key].numpy(), loaded(test)[key].numpy())


def test_block_towers_compute_each_tower_on_its_own_columns():
    """All towers in one block-structured MLP give each example its own tower's logit, as a
    plain numpy MLP over that tower's columns does; entries outside the blocks play no part."""
    rng = np.random.default_rng(0)
    columns = [[0, 3, 4, 9], [1, 2, 3, 5, 6, 7, 8, 10, 11], []]
    block = BlockTowers(12, columns, hidden_units=[4, 2])
    block.build()
    towers = []
    for k, cols in enumerate(columns):
        weights = [rng.normal(size=s).astype("float32") for s in
                   [(len(cols), 4), (4,), (4, 2), (2,), (2, 1), (1,)]]
        block.set_tower_weights(k, weights)
        towers.append(weights)
    for k, weights in enumerate(towers):
        for got, want in zip(block.tower_weights(k), weights, strict=True):
            np.testing.assert_array_equal(got.reshape(want.shape), want)
    x = rng.normal(size=(50, 12)).astype("float32")
    cluster = rng.integers(0, 3, 50).astype("int32")

    def mlp(rows, w):
        h = np.maximum(rows @ w[0] + w[1], 0)
        h = np.maximum(h @ w[2] + w[3], 0)
        return (h @ w[4] + w[5])[:, 0]

    want = np.array([mlp(x[i:i + 1, columns[c]], towers[c])[0] for i, c in enumerate(cluster)])
    np.testing.assert_allclose(block((x, cluster)).numpy(), want, rtol=1e-5, atol=1e-5)
    for kernel, mask in zip(block.kernels, block._masks, strict=True):
        kernel.assign(kernel.numpy() + (1 - mask) * 100.0)
    np.testing.assert_allclose(block((x, cluster)).numpy(), want, rtol=1e-5, atol=1e-5)


def test_the_distilled_router_reproduces_the_gate_from_the_towers_lookup(stages, tmp_path):
    """retrain's default: the shared towers' model routes by a linear router over the towers'
    own embedding, trained to send each example where the gate does; nothing of the search
    model is left in it, and where both route alike they score alike (the same towers)."""
    model, plan, _, test, _, x, y = stages
    train, val = batches(x, y, 0, 20000), batches(x, y, 48000, 54000)
    gate = ihas_keras.retrain(model, plan, train, val, epochs=1, batch_size=512, verbose=0,
                              shared=True, routing="gate", seed=0)
    served = ihas_keras.retrain(model, plan, train, val, epochs=1, batch_size=512, verbose=0,
                                shared=True, seed=0)
    assert served.routing == "distilled" and served.gate is None and served.embedding is None
    assert not any("gate" in w.path or "centroids" in w.path for w in served.weights)
    distilled, agreement = distill_router(gate, train, val, verbose=0)
    expected, got = gate(test), distilled(test)
    same = expected["cluster"].numpy() == got["cluster"].numpy()
    assert same.mean() > 0.9 and agreement > 0.9  # measured: 0.99 and 0.99
    np.testing.assert_allclose(got["probability"].numpy()[same],
                               expected["probability"].numpy()[same], rtol=1e-5, atol=1e-6)
    distilled.save(tmp_path / "distilled.keras")
    loaded = keras.models.load_model(tmp_path / "distilled.keras")
    for key in ("probability", "cluster"):
        np.testing.assert_array_equal(distilled(test)[key].numpy(), loaded(test)[key].numpy())
    with pytest.raises(ValueError, match="shared towers"):
        ihas_keras.RoutedModel(model.fields, model.vocab_sizes, model.embedding_dim,
                               plan.widths().tolist(), routing="distilled")
    with pytest.raises(ValueError, match="routing"):
        ihas_keras.retrain(model, plan, train, routing="nearest")


def test_a_low_rank_search_gate_round_trips_and_routes(tmp_path):
    sizes = {"a": 30, "b": 20, "c": 10}
    search = ihas_keras.build_model(sizes, embedding_dim=4, gate_rank=2, seed=0)
    assert search.gate.rank == 2 and search.get_config()["gate_rank"] == 2
    search.save(tmp_path / "search.keras")
    loaded = ihas_keras.load_model(str(tmp_path / "search.keras"))
    x = {f: np.arange(8) % v for f, v in sizes.items()}
    np.testing.assert_array_equal(loaded.routing_points(x)[0].numpy(),
                                  search.routing_points(x)[0].numpy())
    keep = np.ones((2, 12), "float32")
    plan = ihas_keras.ClusterPlan(list(sizes), 4, np.random.default_rng(0).normal(
        size=(2, 12)).astype("float32"), keep, np.array([4, 4]))
    routed = ihas_keras.RoutedModel.from_search(search, plan, shared=True)
    assert routed.gate.rank == 2
    expected = routed.router(search.routing_points(x, plan.representation)[0]).numpy()
    np.testing.assert_array_equal(routed.route(x).numpy(), expected)
