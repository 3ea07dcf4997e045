"""The paper's preprocessing rules on hand-computed examples, through TF Transform; the split."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from ihas_keras.data import CRITEO, TableFormat
from ihas_keras.data.preprocess import (
    MISSING_ID,
    OTHERS_ID,
    assign_split,
    make_preprocessing_fn,
    numeric_token,
    raw_feature_spec,
)


def test_numeric_tokens_follow_the_paper():
    # x > 2 -> floor(ln(x)^2): ln 3^2 = 1.21, ln 10^2 = 5.30, ln 100^2 = 21.2, ln 1382^2 = 52.29
    x = [-3, -1, 0, 1, 2, 3, 10, 100, 1382]
    expected = ["-3", "-1", "0", "1", "2", "1", "5", "21", "52"]
    assert [t.decode() for t in numeric_token(x).numpy()] == expected


def test_raw_feature_spec_is_the_datasets_own_names():
    spec = raw_feature_spec(CRITEO)
    names = {"label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))}
    assert set(spec) == names
    assert spec["I1"].dtype == tf.int64 and spec["C1"].dtype == tf.string


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """A tiny table through tft_beam: categorical c, integer n, label y."""
    fmt = TableFormat(name="tiny", columns=("y", "n", "c"), label="y", numeric=("n",),
                      categorical=("c",))
    rows = (
        [("a", 1)] * 12 + [("b", 3)] * 10 + [("z", 100)] * 9 + [(None, None)] * 3 + [("b", 5)] * 2
    )
    instances = [
        {"y": i % 2, "c": [c] if c else [], "n": [n] if n is not None else []}
        for i, (c, n) in enumerate(rows)
    ]
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(raw_feature_spec(fmt))
    )
    out_dir = str(tmp_path_factory.mktemp("transform"))
    with tft_beam.Context(temp_dir=out_dir + "/tmp"):
        (data, _), transform_fn = (instances, metadata) | tft_beam.AnalyzeAndTransformDataset(
            make_preprocessing_fn(fmt, frequency_threshold=10)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    return rows, data, tft.TFTransformOutput(out_dir)


def test_rare_values_share_the_others_id_and_missing_has_its_own(transformed):
    rows, data, _ = transformed
    ids = {}
    for (c, _), out in zip(rows, data, strict=True):
        ids.setdefault(c, set()).add(int(out["c"]))
    # a: 12 rows, b: 12 rows (10 + 2) -> vocabulary; z: 9 rows < 10 -> others; None -> missing.
    assert ids[None] == {MISSING_ID}
    assert ids["z"] == {OTHERS_ID}
    assert {min(ids["a"]), min(ids["b"])} == {2, 3} and len(ids["a"]) == len(ids["b"]) == 1


def test_numeric_values_are_bucketized_then_counted_as_tokens(transformed):
    rows, data, output = transformed
    by_value = {}
    for (_, n), out in zip(rows, data, strict=True):
        by_value.setdefault(n, set()).add(int(out["n"]))
    # Tokens: 1 -> "1" (12 rows) and 3 -> "1" (10 rows) share a token: 22 rows, the first id.
    # 100 -> "21" (9 rows: others); 5 -> "2" (2 rows: others); missing -> 0.
    assert by_value[1] == by_value[3] == {2}
    assert by_value[100] == by_value[5] == {OTHERS_ID}
    assert by_value[None] == {MISSING_ID}
    assert output.vocabulary_size_by_name("n") == 1
    assert output.vocabulary_size_by_name("c") == 2
    assert [int(out["y"]) for out in data] == [i % 2 for i in range(len(rows))]


def test_split_is_deterministic_and_80_10_10():
    n = 200_000
    files = tf.constant(["/data/day_0.txt"] * n)
    lines = tf.range(1, n + 1, dtype=tf.int64)
    split = assign_split(files, lines, seed=42).numpy()
    fractions = np.bincount(split, minlength=3) / n
    assert np.allclose(fractions, [0.8, 0.1, 0.1], atol=0.01), fractions
    assert (assign_split(files, lines, seed=42).numpy() == split).all()
    moved = assign_split(tf.constant(["/elsewhere/day_0.txt"] * n), lines, seed=42).numpy()
    assert (moved == split).all()
    other_seed = assign_split(files, lines, seed=43).numpy()
    assert 0.2 < (other_seed != split).mean() < 0.5
