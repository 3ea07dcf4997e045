"""Every number of a trained variant comes from its serving export (serving/export.py: the TF
Transform graph and the model in one SavedModel, as TF Serving loads it), scored on the raw test
examples through `serving_default`; RQ4 times that signature."""

import os
import time

import numpy as np
import tensorflow as tf

from ihas_keras.data.read import BadInputError
from ihas_keras.data.transform import EXAMPLES_FILE
from serving.export import export_serving_model

SIGNATURE = "serving_default"


def raw_test_batches(prepared: str, batch_size: int) -> list[tf.Tensor]:
    """The test split's serialized raw tf.Examples, in file order, in batches of BATCH_SIZE."""
    path = os.path.join(prepared, "examples", "Split-test", EXAMPLES_FILE)
    return list(tf.data.TFRecordDataset(path, "GZIP").batch(batch_size))


def export(model, prepared: str, fmt, export_dir: str) -> str:
    return export_serving_model(model, os.path.join(prepared, "transformed"), fmt, export_dir)


def load(export_dir: str):
    """The `serving_default` signature of EXPORT_DIR; BadInputError naming the folder if it is
    missing or damaged."""
    try:
        return tf.saved_model.load(export_dir).signatures[SIGNATURE]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{export_dir}: cannot load the serving export ({reason}); delete "
                            "its run to train it again") from None


def score(signature, batches: list, passes: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """(probabilities, clusters, seconds) of SIGNATURE over BATCHES. The time is the fastest of
    PASSES passes, after a warm-up on the first and last batch (the machine is shared: the
    fastest pass is the least disturbed)."""
    signature(examples=batches[0])
    signature(examples=batches[-1])
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        outputs = [signature(examples=b) for b in batches]
        seconds.append(time.perf_counter() - start)
    return (np.concatenate([o["probability"].numpy() for o in outputs]),
            np.concatenate([o["cluster"].numpy() for o in outputs]), min(seconds))
