"""`ihas experiment` on small generated data, the baseline models' selection, bad input.

The format is a generic schema keeping 5 Criteo fields (TF Transform costs about 1 s per field).
"""

import dataclasses
import json
import math
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import ihas_keras
from experiments import runner
from experiments.variants import Settings, expand
from ihas_cli.main import main
from ihas_keras.data import get_format, synthesize
from ihas_keras.errors import BadInputError
from ihas_keras.export import scoring
from ihas_keras.models.adafs import AdaFS
from ihas_keras.models.autofield import AutoField
from tests.planted import KEPT, criteo5_schema

DIM = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    schema = criteo5_schema(root / "criteo5.yaml")
    synthesize(str(root / "criteo.txt"), rows=4000, format="criteo", segments=2, seed=1)
    return root, schema


SETTINGS = Settings(embedding_dim=DIM, batch_size=256, epochs=1, pretrain_epochs=1,
                    search_epochs=1, gate_every=5, regularization_weight=3e-3,
                    gate_learning_rate=1e-2, inference_batch_size=512, progress=False)


@pytest.fixture(scope="module")
def report(data):
    root, schema = data
    return runner.run(str(root / "criteo.txt"), get_format("generic", schema), str(root / "out"),
                      [0], expand(["base", "ihas"], []), SETTINGS)


def test_report_structure_and_ranges(data, report):
    root, _ = data
    on_disk = json.loads((root / "out" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert set(report["variants"]) == {"base", "ihas"}
    test_rows = report["data"]["test_rows"]
    assert test_rows == report["data"]["rows"]["test"] > 0
    for v in report["variants"].values():
        assert 0 <= v["auc"]["mean"] <= 1 and v["logloss"]["mean"] > 0
        assert v["params"]["mean"] > 0 and v["inference_seconds"]["mean"] > 0
        for stats in (v["auc"], v["logloss"], v["inference_seconds"]):
            assert all(math.isfinite(x) for x in (stats["mean"], stats["std"], *stats["runs"]))
    (clusters,) = report["clusters"]["ihas"]
    assert sum(clusters["test_sizes"]) == test_rows and len(clusters["test_sizes"]) == 2
    widths = np.asarray(clusters["widths"])
    assert widths.shape == (2, len(KEPT)) and ((widths >= 0) & (widths <= DIM)).all()
    assert -1 <= clusters["ari"] <= 1
    assert 0.5 < report["data"]["oracle_auc"] <= 1
    assert any(line.startswith("RQ1 ihas vs base: ") for line in report["reading"])
    (rq5,) = [line for line in report["reading"] if line.startswith("RQ5 ihas: ")]
    assert f"by seed {clusters['ari']:.3f} (mean" in rq5
    markdown = (root / "out" / "report.md").read_text()
    assert "| ihas | RQ1 |" in markdown and "## Reading" in markdown
    for name in report["figures"]:
        assert (root / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"gates.png", "widths_ihas.png", "auc.png"} <= set(report["figures"])


def test_numbers_come_from_the_serving_exports(data, report):
    root, _ = data
    y = runner.test_split(str(root / "out" / "prepared"), get_format("generic", data[1]))[1]
    examples = str(root / "out" / "prepared" / "examples")
    for name in ("base", "ihas"):
        signature = scoring.load_signature(
            str(root / "out" / "runs" / name / "seed-0" / "1"))
        scored = scoring.predict_split(signature, examples, "test", "label",
                                       SETTINGS.inference_batch_size)
        prob, clusters = scored.probability, scored.cluster
        assert len(prob) == len(y) == report["data"]["test_rows"]
        np.testing.assert_array_equal(scored.labels, y)
        auc = report["variants"][name]["auc"]["mean"]
        assert roc_auc_score(y, prob) == pytest.approx(auc, abs=1e-9)
        # Other batches give the same scores up to float32 round-off (on these few, often tied
        # values, that round-off alone moves the AUC by up to 1e-3).
        other = scoring.predict_split(signature, examples, "test", "label", 100)
        np.testing.assert_allclose(other.probability, prob, atol=1e-6)
        np.testing.assert_array_equal(other.cluster, clusters)
    (planned,) = report["clusters"]["ihas"]
    assert np.bincount(clusters, minlength=2).tolist() == planned["test_sizes"]


def test_a_new_variant_reuses_the_stored_search(data, report, monkeypatch):
    """The search of seed 0 is kept beside the runs; a variant run later (ihas_2, here) loads it
    instead of searching again, and gets the same gates."""
    root, schema = data
    kept = root / "out" / "runs" / "ihas" / "seed-0.search.keras"
    assert kept.exists()
    monkeypatch.setattr(runner.SeedRun, "_bilevel_fit",
                        lambda self, model: pytest.fail("the search ran again"))
    again = runner.run(str(root / "criteo.txt"), get_format("generic", schema),
                       str(root / "out"), [0], ["ihas_2"], SETTINGS)
    (planned,) = again["clusters"]["ihas_2"]
    assert len(planned["test_sizes"]) == 1  # K = 1: one plain model
    stored = ihas_keras.load_model(str(kept))
    assert stored.gate.get_weights()[0].std() > 0
    other = root / "other-settings"  # the same runs folder, run with another gate learning rate
    shutil.copytree(root / "out" / "runs", other / "runs")
    with pytest.raises(BadInputError, match=r"searched with other settings \(gate_learning_rate\)"):
        runner.run(str(root / "criteo.txt"), get_format("generic", schema), str(other), [0],
                   ["ihas_1"], dataclasses.replace(SETTINGS, gate_learning_rate=3e-2))


def test_a_rerun_reads_finished_runs_and_refuses_other_settings(data, report, monkeypatch):
    root, schema = data
    fmt, out = get_format("generic", schema), str(root / "out")

    def train(self, name):
        raise AssertionError(f"{name} was trained again")

    monkeypatch.setattr(runner.SeedRun, "train", train)
    (root / "out" / "gates.png").unlink()  # redrawn from the search's stored histogram
    again = runner.run(str(root / "criteo.txt"), fmt, out, [0], ["base", "ihas"], SETTINGS)
    for name in ("base", "ihas"):
        assert again["variants"][name]["auc"] == report["variants"][name]["auc"]
    assert "gates.png" in again["figures"]
    assert (root / "out" / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gates = json.loads((root / "out" / "runs" / "ihas" / "seed-0.gates.json").read_text())
    rows = min(runner.GATE_ROWS, report["data"]["test_rows"])
    assert sum(gates["result"]["counts"]) == rows * len(KEPT) * DIM
    assert 0 <= gates["result"]["median_threshold"] <= 1
    with pytest.raises(BadInputError, match=r"seed-0.json: made with other settings \(epochs\)"):
        runner.run(str(root / "criteo.txt"), fmt, out, [0], ["base"],
                   dataclasses.replace(SETTINGS, epochs=2))
    # The clustering settings concern the routed variants only: base is read, ihas refused.
    other_clusters = dataclasses.replace(SETTINGS, clusters=3,
                                         shared_embedding=not SETTINGS.shared_embedding)
    again = runner.run(str(root / "criteo.txt"), fmt, out, [0], ["base"], other_clusters)
    assert again["variants"]["base"]["auc"] == report["variants"]["base"]["auc"]
    refused = r"seed-0.json: made with other settings \(clusters, shared_embedding\)"
    with pytest.raises(BadInputError, match=refused):
        runner.run(str(root / "criteo.txt"), fmt, out, [0], ["ihas"], other_clusters)
    with pytest.raises(AssertionError, match="base was trained again"):  # a new seed trains
        runner.run(str(root / "criteo.txt"), fmt, out, [1], ["base"], SETTINGS)


def test_a_damaged_run_or_other_data_is_named(data, report, tmp_path):
    root, schema = data
    fmt, out = get_format("generic", schema), tmp_path / "out"
    shutil.copytree(root / "out" / "prepared", out / "prepared")
    (out / "runs" / "base").mkdir(parents=True)
    (out / "runs" / "base" / "seed-0.json").write_text('{"made_with": ')
    with pytest.raises(BadInputError, match=r"seed-0.json: not a finished run"):
        runner.run(str(root / "criteo.txt"), fmt, str(out), [0], ["base"], SETTINGS)
    shutil.copy(root / "out" / "runs" / "base" / "seed-0.json", out / "runs" / "base")
    with pytest.raises(BadInputError, match=r"base/seed-0/1: cannot load the serving export"):
        runner.run(str(root / "criteo.txt"), fmt, str(out), [0], ["base"], SETTINGS)
    other = tmp_path / "other.txt"
    shutil.copy(root / "criteo.txt", other)
    with pytest.raises(BadInputError, match=r"prepared from .*criteo.txt.*use another --out"):
        runner.run(str(other), fmt, str(out), [0], ["base"], SETTINGS)


@pytest.mark.parametrize("args", [
    ["--data", "/no/such/file.txt"],
    ["--variants", "base,nope"],
    ["--backbones", "transformer"],
    ["--seeds", "1,x"],
])
def test_bad_input_is_one_line_and_exit_2(data, tmp_path, capsys, args):
    root, schema = data
    base = {"--data": str(root / "criteo.txt"), "--format": "generic", "--schema": schema,
            "--out": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert main(["experiment", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ihas experiment: ")


@pytest.mark.parametrize("name, why", [
    ("mirorred", "unknown tf.distribute strategy 'mirorred'; allowed: default, one_device, "
                 "mirrored, multi_worker"),
    ("multi_worker", "multi_worker is not supported by the experiment runner"),
    ("parameter_server", "'parameter_server' is not supported: ParameterServerStrategy is not "
                         "supported by Keras 3's fit (keras-team/keras#18624)"),
])
def test_a_strategy_the_runner_cannot_take_is_one_line_naming_the_flag(data, tmp_path, capsys,
                                                                       name, why):
    root, schema = data
    assert main(["experiment", "--data", str(root / "criteo.txt"), "--format", "generic",
                 "--schema", str(schema), "--out", str(tmp_path), "--strategy", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ihas experiment: --strategy: {why}"), err


def test_runs_stored_before_the_strategy_setting_count_as_default(data, report, tmp_path,
                                                                  monkeypatch):
    """A run stored without the strategy setting was made with the default strategy: it is read
    under "default" and refused under "mirrored", naming the setting."""
    root, schema = data
    fmt, out = get_format("generic", schema), tmp_path / "out"
    shutil.copytree(root / "out", out)
    stored = out / "runs" / "base" / "seed-0.json"
    run = json.loads(stored.read_text())
    del run["made_with"]["settings"]["strategy"]
    stored.write_text(json.dumps(run))
    monkeypatch.setattr(runner.SeedRun, "train",
                        lambda self, name: pytest.fail(f"{name} was trained again"))
    again = runner.run(str(root / "criteo.txt"), fmt, str(out), [0], ["base"], SETTINGS)
    assert again["variants"]["base"]["auc"] == report["variants"]["base"]["auc"]
    with pytest.raises(BadInputError, match=r"seed-0.json: made with other settings \(strategy\)"):
        runner.run(str(root / "criteo.txt"), fmt, str(out), [0], ["base"],
                   dataclasses.replace(SETTINGS, strategy="mirrored"))


FIELDS = [f"f{i}" for i in range(6)]


def toy(rows=2048, seed=0):
    rng = np.random.default_rng(seed)
    x = {f: rng.integers(0, 20, rows) for f in FIELDS}
    logit = rng.normal(0, 2, 20)[x["f0"]] - 1
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(256)


def test_adafs_hard_keeps_exactly_k_fields_and_soft_weights_all():
    x, _, _ = toy(300)
    hard = AdaFS(FIELDS, [20] * 6, DIM, mode="hard", k=2)
    weights = hard.field_weights(hard.embedding(x)).numpy()
    assert ((weights > 0).sum(axis=1) == 2).all()
    soft = AdaFS(FIELDS, [20] * 6, DIM)
    weights = soft.field_weights(soft.embedding(x)).numpy()
    assert (weights > 0).all() and np.allclose(weights.sum(axis=1), len(FIELDS), rtol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        AdaFS(FIELDS, [20] * 6, DIM, mode="hard", k=7)


def test_adafs_trains_bilevel_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x, _, ds = toy()
    model = AdaFS(FIELDS, [20] * 6, DIM, mode="hard", k=3)
    model.compile()
    controller = [v.numpy().copy() for v in model.architecture_variables]
    _, searched = ihas_keras.search(model, ds, ds, pretrain_epochs=1, epochs=1, gate_every=2,
                                    verbose=0)
    assert searched.history["arch_steps"][-1] == 4  # 8 batches, one step after every 2
    assert any((a != v.numpy()).any() for a, v in zip(controller, model.architecture_variables,
                                                        strict=True))
    model.save(tmp_path / "adafs.keras")
    loaded = keras.models.load_model(tmp_path / "adafs.keras")
    np.testing.assert_allclose(model(x).numpy(), loaded(x).numpy(), rtol=1e-5)


def test_autofield_drops_the_fields_it_is_unlikely_to_keep():
    model = AutoField(FIELDS, [20] * 6, DIM, seed=0)
    alpha = np.zeros((6, 2), "float32")
    alpha[[1, 4], 1] = 2.0  # drop more likely than keep for f1 and f4
    alpha[0, 0] = 1.0
    model.alpha.assign(alpha)
    keep = model.keep_probability()
    assert keep[1] < 0.5 and keep[4] < 0.5 and keep[0] > 0.5
    assert model.retrain_widths() == [DIM, 0, DIM, DIM, 0, DIM]
    everything_dropped = np.tile([[0.0, 1.0]], (6, 1)).astype("float32")
    everything_dropped[2, 0] = 0.5
    model.alpha.assign(everything_dropped)
    assert model.retrain_widths() == [0, 0, DIM, 0, 0, 0]  # the likeliest field stays


def test_autofield_search_learns_keep_probabilities():
    keras.utils.set_random_seed(0)
    _, _, ds = toy()
    model = AutoField(FIELDS, [20] * 6, DIM, seed=0)
    model.compile(architecture_optimizer=keras.optimizers.Adam(0.1))
    ihas_keras.search(model, ds, ds, pretrain_epochs=1, epochs=2, gate_every=1, verbose=0)
    keep = model.keep_probability()
    assert not np.allclose(keep, 0.5)
    assert len(model.retrain_widths()) == len(FIELDS)
