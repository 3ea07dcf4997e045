"""Generated data: real raw formats, truth sidecar, oracle AUC, and segments that matter."""

import json

import numpy as np
import pytest
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ihas_keras.data import AVAZU, CRITEO, synthesize, validate
from ihas_keras.data.synth import histogram_auc


def read_truth(path):
    rows = np.loadtxt(path + ".truth.tsv", skiprows=1, delimiter="\t")
    return rows[:, 0].astype(int), rows[:, 1]


def read_rows(path, fmt):
    with open(path) as f:
        lines = f.read().splitlines()
    if fmt.header:
        lines = lines[1:]
    return [dict(zip(fmt.columns, line.split(fmt.delimiter), strict=True)) for line in lines]


@pytest.mark.parametrize("fmt", [CRITEO, AVAZU], ids=lambda f: f.name)
def test_generated_rows_parse_and_match_their_truth(tmp_path, fmt):
    path = str(tmp_path / "synth.txt")
    report = synthesize(path, rows=5000, format=fmt.name, segments=3, seed=7, chunk_rows=1500)

    parsed = validate([path], fmt, str(tmp_path / "q.jsonl"), max_bad_fraction=0.0)
    assert (parsed.rows_read, parsed.rows_accepted) == (5000, 5000)

    segment, prob = read_truth(path)
    rows = read_rows(path, fmt)
    labels = np.array([int(r[fmt.label]) for r in rows])
    assert len(segment) == len(rows) == 5000
    assert np.bincount(segment, minlength=3).tolist() == report.segment_sizes
    assert 0.15 <= labels.mean() <= 0.30 and abs(labels.mean() - report.label_rate) < 1e-12
    # The reported oracle AUC is the AUC of the true probabilities (binned; 4 decimals).
    assert report.oracle_auc == pytest.approx(roc_auc_score(labels, prob), abs=1e-3)
    meta = json.loads(open(path + ".meta.json").read())
    assert meta["oracle_auc"] == report.oracle_auc and meta["rows"] == 5000
    # Missing values are present; in the field with most distinct values, frequencies are skewed.
    empties = sum(v == "" for r in rows for v in r.values())
    assert empties > 0
    field = max(fmt.categorical, key=lambda f: len({r[f] for r in rows}))
    counts = np.unique([r[field] for r in rows], return_counts=True)[1]
    assert counts.max() > 20 * np.median(counts)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    paths = [str(tmp_path / f"{i}.txt") for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        synthesize(path, rows=300, format="criteo", segments=2, seed=seed)
    data = [open(p, "rb").read() for p in paths]
    assert data[0] == data[1] != data[2]


def test_histogram_auc_counts_ties_as_half():
    pos = np.array([0, 1, 1.0])
    neg = np.array([1, 1, 0.0])
    # pairs (pos, neg): bin1 vs bin0 win, bin1 vs bin1 tie, bin2 vs both win -> 3.5 of 4
    assert histogram_auc(pos, neg) == pytest.approx(3.5 / 4)


def hashed(rows, fields):
    hasher = FeatureHasher(n_features=2**18, input_type="string")
    return hasher.transform([[f"{f}={r[f]}" for f in fields] for r in rows])


def test_a_model_per_true_segment_beats_one_global_model(tmp_path):
    """Checks the generator (segments carry different signal), not the iHAS method."""
    path = str(tmp_path / "synth.txt")
    synthesize(path, rows=60000, format="criteo", segments=3, seed=3)
    rows = read_rows(path, CRITEO)
    segment, _ = read_truth(path)
    labels = np.array([int(r["label"]) for r in rows])
    x = hashed(rows, CRITEO.feature_fields)
    train = np.arange(len(rows)) % 5 != 0
    test = ~train

    def fit_predict(mask):
        model = LogisticRegression(C=0.1, max_iter=500)
        model.fit(x[train & mask], labels[train & mask])
        return model.predict_proba(x[test & mask])[:, 1]

    global_auc = roc_auc_score(labels[test], fit_predict(np.ones(len(rows), bool)))
    per_segment = np.zeros(len(rows))
    for s in range(3):
        per_segment[test & (segment == s)] = fit_predict(segment == s)
    segment_auc = roc_auc_score(labels[test], per_segment[test])
    assert segment_auc > global_auc + 0.01, (segment_auc, global_auc)
