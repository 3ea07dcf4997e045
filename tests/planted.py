"""Generated Criteo rows for tests: with planted segments, as id features in memory; and the
5-field schema that the TF Transform tests read them through.

`planted_criteo` is a test-sized stand-in for the TF Transform path (which has its own tests):
values seen fewer than 10 times share id 1, missing values get 0, others 2.. by first appearance.
"""

import numpy as np
import yaml

from ihas_keras.data import CRITEO, read_table, synthesize

KEPT = ("I1", "I2", "C1", "C2", "C3")


def criteo5_schema(path) -> str:
    """Writes, at PATH, a generic schema reading Criteo rows with 5 of their fields (KEPT), and
    returns PATH: TF Transform costs about 1 s per field, whatever the row count."""
    with open(path, "w") as f:
        yaml.safe_dump({
            "columns": list(CRITEO.columns), "label": "label", "numeric": list(KEPT[:2]),
            "categorical": list(KEPT[2:]),
            "dropped": [c for c in CRITEO.columns[1:] if c not in KEPT],
            "delimiter": "\t", "header": False,
        }, f)
    return str(path)


def planted_criteo(tmp_path, rows: int, segments: int, seed: int):
    """Returns (features {field: int64 [rows]}, labels [rows], segments [rows], vocab sizes)."""
    path = str(tmp_path / "planted.txt")
    synthesize(path, rows, "criteo", segments, seed)
    truth = np.loadtxt(path + ".truth.tsv", dtype=str, skiprows=1)[:, 0].astype(int)
    batches = list(read_table([path], CRITEO, batch_size=rows).as_numpy_iterator())
    assert len(batches) == 1 and (batches[0]["reason"] == 0).all()
    batch = batches[0]
    features, sizes = {}, {}
    for field in CRITEO.feature_fields:
        tokens = np.where(batch["present"][field], batch["values"][field].astype(str), "")
        _, first, inverse, counts = np.unique(tokens, return_index=True, return_inverse=True,
                                              return_counts=True)
        frequent = counts >= 10
        ids = np.full(len(counts), 1)
        ids[frequent] = 2 + np.argsort(np.argsort(first[frequent]))
        ids[_ == ""] = 0
        features[field] = ids[inverse].astype("int64")
        sizes[field] = int(ids.max()) + 1
    return features, batch["label"].astype("int64"), truth, sizes
