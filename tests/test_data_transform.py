"""Ingested splits -> TF Transform output: every row in its own split, vocabularies from train.

The tables are Criteo files read with five of their fields kept: TF Transform's cost here grows with
the number of fields (about 1 s each, whatever the row count), so the full 39 fields are left to
benchmarks/preprocess_throughput.py.
"""

import json
import os
import re
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from ihas_cli.main import main
from ihas_keras.data import CRITEO, TableFormat, splits, synthesize
from ihas_keras.data.ingest import ingest
from ihas_keras.data.preprocess import OTHERS_ID, SPLITS, assign_split, raw_feature_spec
from ihas_keras.data.transform import transform, transformed_dataset, vocabulary_sizes
from ihas_keras.errors import BadInputError
from tests.test_data_parse import CRITEO_ROW

KEPT = ("I1", "I2", "C1", "C2", "C3")
FEW = TableFormat(
    name="criteo-few",
    columns=CRITEO.columns,
    label="label",
    numeric=KEPT[:2],
    categorical=KEPT[2:],
    dropped=tuple(c for c in CRITEO.columns[1:] if c not in KEPT),
)
SEED = 1
THRESHOLD = 10
TRAIN_ONLY, HELD_OUT_ONLY = "cafef00d", "deadbeef"
MARKED_ROWS = 300


def write_marked_rows(path) -> int:
    """Known rows whose C3 is TRAIN_ONLY in train rows, HELD_OUT_ONLY in the others; their count."""
    lines = tf.range(1, MARKED_ROWS + 1, dtype=tf.int64)
    split = assign_split(tf.constant([str(path)] * MARKED_ROWS), lines, SEED).numpy()
    cells, c3 = CRITEO_ROW.split("\t"), CRITEO.columns.index("C3")
    with open(path, "w") as f:
        for s in split:
            cells[c3] = TRAIN_ONLY if s == 0 else HELD_OUT_ONLY
            f.write("\t".join(cells) + "\n")
    return int((split != 0).sum())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """3000 generated rows plus the marked rows, ingested then transformed, with a temporary
    folder of its own (so that what the run leaves there is its own)."""
    root = tmp_path_factory.mktemp("prepare")
    synthesize(str(root / "criteo.txt"), rows=3000, format="criteo", segments=2, seed=7)
    # Frequent enough for a vocabulary, if the vocabularies saw eval and test rows.
    assert write_marked_rows(root / "marked.txt") >= 2 * THRESHOLD
    examples, out = root / "examples", root / "transformed"
    ingest([str(root / "criteo.txt"), str(root / "marked.txt")], FEW, str(examples), seed=SEED)
    temp = root / "tmp"
    temp.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        rows = transform(str(examples), FEW, str(out), frequency_threshold=THRESHOLD)
    return examples, out, rows, temp


def read_all(path, spec) -> dict:
    serialized = tf.data.TFRecordDataset(str(path), compression_type="GZIP").batch(1 << 20)
    return tf.io.parse_example(serialized.get_single_element(), spec)


def read_raw(examples, split) -> dict:
    return read_all(splits.single_file(str(examples), split, splits.EXAMPLES_PREFIX),
                    raw_feature_spec(FEW))


def read_transformed(out, split) -> dict:
    spec = tft.TFTransformOutput(str(out)).transformed_feature_spec()
    return read_all(splits.single_file(str(out), split, splits.TRANSFORMED_PREFIX), spec)


def sorted_rows(features: dict) -> np.ndarray:
    rows = np.stack([np.asarray(features[c]) for c in (*FEW.feature_fields, "label")], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_every_ingested_row_is_transformed_in_its_own_split(prepared):
    examples, out, rows, _ = prepared
    output = tft.TFTransformOutput(str(out))
    for split in SPLITS:
        raw = read_raw(examples, split)
        written = read_transformed(out, split)
        assert rows[split] == len(raw["label"]) == len(written["label"]) > 0
        expected = output.transform_raw_features(raw)
        np.testing.assert_array_equal(sorted_rows(written), sorted_rows(expected), err_msg=split)
    assert sum(rows.values()) == 3000 + MARKED_ROWS


def test_ids_index_tables_of_the_vocabulary_sizes(prepared):
    _, out, _, _ = prepared
    sizes = vocabulary_sizes(str(out), FEW)
    assert list(sizes) == list(FEW.feature_fields)
    for split in SPLITS:
        written = read_transformed(out, split)
        for field, size in sizes.items():
            ids = written[field].numpy()
            assert ids.min() >= 0 and ids.max() < size, (split, field, size)
            if split == "train":  # each vocabulary value is frequent in train: the last id is used
                assert ids.max() == size - 1, (field, size)


def test_vocabularies_see_the_train_split_only(prepared):
    examples, out, _, _ = prepared
    output = tft.TFTransformOutput(str(out))
    vocabulary = output.vocabulary_by_name("C3")
    assert TRAIN_ONLY.encode() in vocabulary
    assert HELD_OUT_ONLY.encode() not in vocabulary
    for split in ("eval", "test"):
        raw = read_raw(examples, split)
        held_out = tf.sparse.to_dense(raw["C3"], b"").numpy()[:, 0] == HELD_OUT_ONLY.encode()
        ids = output.transform_raw_features(raw)["C3"].numpy()
        assert held_out.any() and (ids[held_out] == OTHERS_ID).all(), split


def test_transformed_dataset_streams_batches_of_ids_and_labels(prepared):
    _, out, rows, _ = prepared
    batches = list(transformed_dataset(str(out), "train", FEW, batch_size=256))
    features, label = batches[0]
    assert set(features) == set(FEW.feature_fields)
    assert all(v.shape == (256,) and v.dtype == tf.int64 for v in features.values())
    assert label.shape == (256,) and label.dtype == tf.int64
    assert sum(int(b[1].shape[0]) for b in batches) == rows["train"]

    def first_batch(**shuffle):
        features, _ = next(iter(transformed_dataset(str(out), "train", FEW, 256, **shuffle)))
        return np.stack([features[f].numpy() for f in FEW.feature_fields])

    shuffled = first_batch(shuffle=True, seed=3)
    np.testing.assert_array_equal(shuffled, first_batch(shuffle=True, seed=3))
    assert (shuffled != first_batch()).any()


def test_transform_leaves_no_beam_temp_folders(prepared):
    """Beam's DirectRunner first tries PrismRunner, whose offline download fails after it made
    a beam-temp* folder, left there on every run; transform runs FnApiRunner itself."""
    *_, temp = prepared
    assert not [p.name for p in temp.iterdir() if p.name.startswith("beam-")]


def test_missing_inputs_are_named(tmp_path):
    absent = tmp_path / "absent"
    with pytest.raises(BadInputError, match=re.escape(str(absent))):
        transform(str(absent), FEW, str(tmp_path / "out"))
    with pytest.raises(BadInputError, match=re.escape(str(absent / "Split-eval"))):
        transformed_dataset(str(absent), "eval", FEW, 16)
    for split in ("train", "test"):
        (tmp_path / "examples" / f"Split-{split}").mkdir(parents=True)
        (tmp_path / "examples" / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz").touch()
    missing = tmp_path / "examples" / "Split-eval"
    with pytest.raises(BadInputError, match=re.escape(str(missing))):
        transform(str(tmp_path / "examples"), FEW, str(tmp_path / "out"))


def test_cli_prepare_writes_examples_and_transform_output(tmp_path, capsys):
    data = tmp_path / "criteo.txt"
    synthesize(str(data), rows=500, format="criteo", segments=2, seed=9)
    schema = tmp_path / "few.json"
    schema.write_text(json.dumps({
        "columns": CRITEO.columns, "label": "label", "numeric": FEW.numeric,
        "categorical": FEW.categorical, "dropped": FEW.dropped, "delimiter": "\t", "header": False,
    }))  # fmt: skip
    out = tmp_path / "prepared"
    code = main([
        "data", "prepare", "--format", "generic", "--schema", str(schema), "--out", str(out),
        "--frequency-threshold", "2", "--beam-arg=--direct_num_workers=1", "--quiet", str(data),
    ])  # fmt: skip
    assert code == 0
    for split in SPLITS:
        assert os.path.isfile(splits.single_file(str(out / "examples"), split,
                                                 splits.EXAMPLES_PREFIX))
        assert os.path.isfile(splits.single_file(str(out / "transformed"), split,
                                                 splits.TRANSFORMED_PREFIX))
    assert set(vocabulary_sizes(str(out / "transformed"), FEW)) == set(FEW.feature_fields)
    printed = capsys.readouterr().out
    assert "rows read 500, accepted 500" in printed and str(out / "transformed") in printed

    # A rerun that fails (too many bad rows) leaves the finished preparation as it was.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with open(data, "a") as f:
        f.write("short row\n" * 10)
    assert main(["data", "prepare", "--format", "generic", "--schema", str(schema), "--out",
                 str(out), "--quiet", str(data)]) == 1
    assert "too many bad rows" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "prepared.partial").exists()


def test_cli_prepare_names_a_missing_input(tmp_path, capsys):
    missing = tmp_path / "nowhere.txt"
    code = main(["data", "prepare", "--format", "criteo", "--out", str(tmp_path), str(missing)])
    assert code == 1
    assert f"ihas data prepare: {missing}: no such file" in capsys.readouterr().err
