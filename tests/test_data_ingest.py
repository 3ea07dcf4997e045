"""Raw rows -> split tf.Examples: every accepted row lands once, with its values, in one split."""

import json

import numpy as np
import tensorflow as tf

from ihas_keras.data import CRITEO, splits, synthesize
from ihas_keras.data.ingest import ingest
from ihas_keras.data.preprocess import SPLITS, raw_feature_spec
from tests.test_data_parse import CRITEO_ROW


def read_split(out_dir, split):
    files = splits.split_files(str(out_dir), split)
    assert files == [splits.single_file(str(out_dir), split, splits.EXAMPLES_PREFIX)]
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    examples = []
    for serialized in records.batch(1024):
        examples.append(tf.io.parse_example(serialized, raw_feature_spec(CRITEO)))
    return examples


def test_ingest_writes_every_accepted_row_once_by_split(tmp_path):
    data = tmp_path / "criteo.txt"
    synthesize(str(data), rows=3000, format="criteo", segments=2, seed=5)
    with open(data, "a") as f:
        f.write("not a row\n" + CRITEO_ROW + "\n")
    out = tmp_path / "examples"
    report = ingest([str(data)], CRITEO, str(out), seed=1, max_bad_fraction=0.01)
    assert (report.rows_read, report.rows_accepted, report.rows_quarantined) == (3002, 3001, 1)
    assert json.loads((out / "counts.json").read_text())["rows_accepted"] == 3001

    sizes = {}
    found_known_row = False
    for split in SPLITS:
        batches = read_split(out, split)
        sizes[split] = sum(int(b["label"].shape[0]) for b in batches)
        for b in batches:
            c1 = tf.sparse.to_dense(b["C1"], default_value=b"").numpy()[:, 0]
            hit = np.nonzero(c1 == b"68fd1e64")[0]
            if len(hit):
                i = hit[0]
                found_known_row = True
                i5 = tf.sparse.to_dense(b["I5"]).numpy()[i]
                i12_count = tf.sparse.to_dense(tf.sparse.map_values(tf.ones_like, b["I12"]))
                assert i5.tolist() == [1382] and i12_count.numpy()[i].sum() == 0
    assert found_known_row
    assert sum(sizes.values()) == 3001
    assert 0.75 < sizes["train"] / 3001 < 0.85, sizes
