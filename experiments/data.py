"""The experiment's data: prepared once (ingest + TF Transform), the test split in file order,
and for generated data the planted segments and true probabilities of the test rows."""

import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from ihas_keras import defaults
from ihas_keras.data import splits
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.ingest import ingest
from ihas_keras.data.preprocess import SPLITS, assign_split, raw_feature_spec
from ihas_keras.data.read import read_table
from ihas_keras.data.transform import transform
from ihas_keras.errors import BadInputError

READY = "READY"


def prepare(paths: list[str], fmt: TableFormat, out_dir: str, seed: int = defaults.SPLIT_SEED,
            progress: bool = True) -> tuple[str, dict]:
    """`ihas data prepare` into OUT_DIR (examples/, transformed/), unless a finished one is there.

    A finished preparation is marked by OUT_DIR/READY, which records the paths, format, seed and
    rows per split it was made with.

    Args:
        paths: the raw files.
        fmt: their format.
        out_dir: the folder to prepare into (or to reuse).
        seed: the split seed.
        progress: show progress bars while ingesting.

    Returns:
        (the transformed folder, rows per split).

    Raises:
        BadInputError: OUT_DIR was prepared from other paths, another format or another seed.
    """
    examples, transformed = (os.path.join(out_dir, d) for d in ("examples", "transformed"))
    ready = os.path.join(out_dir, READY)
    if not os.path.exists(ready):
        ingest(paths, fmt, examples, seed, progress=progress)
        rows = transform(examples, fmt, transformed)
        with open(ready, "w") as f:
            json.dump({"paths": paths, "format": fmt.name, "seed": seed, "rows": rows}, f)
    with open(ready) as f:
        made = json.load(f)
    absolute = [os.path.abspath(p) for p in made["paths"]]
    if (absolute, made["format"], made["seed"]) != ([os.path.abspath(p) for p in paths],
                                                    fmt.name, seed):
        raise BadInputError(f"{out_dir}: prepared from {made['paths']} ({made['format']}), not "
                            f"from {paths} ({fmt.name}); use another --out")
    return transformed, made["rows"]


def test_split(out_dir: str, fmt: TableFormat, batch_size: int = 8192) -> tuple[dict, np.ndarray]:
    """The test split as ({field: int64 ids [n]}, labels [n]), in the raw file's row order.

    The ingested raw examples go through the TF Transform graph, as serving does.

    Args:
        out_dir: the prepared folder (`prepare`'s OUT_DIR).
        fmt: the data's format.
        batch_size: examples per batch read.

    Returns:
        ({field: int64 ids [n]}, labels [n]).
    """
    layer = tft.TFTransformOutput(os.path.join(out_dir, "transformed")).transform_features_layer()
    spec = raw_feature_spec(fmt)
    parts = {f: [] for f in fmt.feature_fields}
    labels = []
    for serialized in splits.records(os.path.join(out_dir, "examples"), "test", batch_size):
        raw = tf.io.parse_example(serialized, spec)
        labels.append(raw.pop(fmt.label).numpy())
        ids = layer(raw)
        for f in parts:
            parts[f].append(ids[f].numpy())
    return {f: np.concatenate(v) for f, v in parts.items()}, np.concatenate(labels)


def planted_truth(path: str, fmt: TableFormat, seed: int = defaults.SPLIT_SEED,
                  split: str = "test") -> dict | None:
    """The planted truth of the SPLIT rows of a file written by `ihas data synth`.

    Such a file has PATH.truth.tsv and PATH.meta.json beside it.

    Args:
        path: the raw file.
        fmt: its format.
        seed: the split seed it was prepared with.
        split: the split whose rows are wanted (`SPLITS`).

    Returns:
        {"segments", "probability"} of its accepted SPLIT rows in file order, "marked" (the
        segment their markers show; None for files generated before it was written) and "meta";
        None for a file without the truth and meta files.
    """
    if not (os.path.exists(path + ".truth.tsv") and os.path.exists(path + ".meta.json")):
        return None
    truth = np.loadtxt(path + ".truth.tsv", skiprows=1, ndmin=2)
    first_line = 2 if fmt.header else 1
    rows = []
    for batch in read_table([path], fmt).as_numpy_iterator():
        assigned = assign_split(batch["file"], batch["line"], seed).numpy()
        keep = (batch["reason"] == 0) & (assigned == SPLITS.index(split))
        rows.append(batch["line"][keep] - first_line)
    rows = np.concatenate(rows)
    with open(path + ".meta.json") as f:
        meta = json.load(f)
    marked = truth[rows, 2].astype(int) if truth.shape[1] > 2 else None
    return {"segments": truth[rows, 0].astype(int), "probability": truth[rows, 1],
            "marked": marked, "meta": meta}
