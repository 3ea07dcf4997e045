"""Scoring a serving export on raw examples, as TF Serving would: serialized raw tf.Examples
through the export's `serving_default` signature (the TF Transform graph, then the model).

The pipeline's Evaluate component and the experiment runner both measure models this way.
"""

import dataclasses
import time
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score

from ihas_keras.data import splits
from ihas_keras.errors import BadInputError

SIGNATURE = "serving_default"
EVALUATION_BATCH_SIZE = 4096
EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] for the log loss


@dataclasses.dataclass
class Predictions:
    """What an export answered for a split's examples, in file order.

    Attributes:
        labels: the examples' 0/1 labels [n].
        probability: click probabilities [n].
        cluster: the cluster of each example [n] (0 for a model without clusters).
    """

    labels: np.ndarray
    probability: np.ndarray
    cluster: np.ndarray


def load_signature(export_dir: str):
    """The `serving_default` signature of a serving export.

    Args:
        export_dir: a SavedModel folder written by `export_serving_model`.

    Returns:
        The concrete function: `signature(examples=[B] strings)` -> {"probability", "cluster"}.

    Raises:
        BadInputError: the folder is missing or damaged, or has no `serving_default`.
    """
    try:
        return tf.saved_model.load(export_dir).signatures[SIGNATURE]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{export_dir}: cannot load the serving export ({reason})") from None


def predict_split(signature, root: str, split: str, label: str,
                  batch_size: int = EVALUATION_BATCH_SIZE) -> Predictions:
    """Streams a split's serialized raw tf.Examples through SIGNATURE.

    Args:
        signature: a `serving_default` signature (`load_signature`).
        root: the folder of raw splits (an ExampleGen artifact, or OUT/examples of `prepare`).
        split: the split's name.
        label: the label's feature name (the signature ignores it).
        batch_size: examples per call.

    Returns:
        The labels, probabilities and clusters, in file order.

    Raises:
        BadInputError: the split has no files.
    """
    return predict(signature, splits.records(root, split, batch_size), label)


def predict(signature, batches: Iterable[tf.Tensor], label: str) -> Predictions:
    """Runs batches of serialized raw labeled tf.Examples through SIGNATURE.

    Args:
        signature: a `serving_default` signature (`load_signature`).
        batches: string tensors [B] (a split streamed by `predict_split`, or `raw_batches`).
        label: the label's feature name (the signature ignores it).

    Returns:
        The labels, probabilities and clusters, in input order.
    """
    spec = {label: tf.io.FixedLenFeature([], tf.int64)}
    parts = {"labels": [], "probability": [], "cluster": []}
    for batch in batches:
        outputs = signature(examples=batch)
        parts["labels"].append(tf.io.parse_example(batch, spec)[label].numpy())
        parts["probability"].append(outputs["probability"].numpy())
        parts["cluster"].append(outputs["cluster"].numpy())
    return Predictions(**{k: np.concatenate(v) for k, v in parts.items()})


def evaluate_export(export_dir: str, root: str, split: str, label: str,
                    batch_size: int = EVALUATION_BATCH_SIZE) -> tuple[dict, Predictions]:
    """AUC and log loss of a serving export on a split of raw examples.

    Args:
        export_dir: a SavedModel folder written by `export_serving_model`.
        root: the folder of raw splits.
        split: the split's name.
        label: the label's feature name.
        batch_size: examples per call.

    Returns:
        ({"auc", "logloss", "examples"}, the predictions).

    Raises:
        BadInputError: the export cannot be loaded, the split is missing, or its labels are all
            equal.
    """
    predictions = predict_split(load_signature(export_dir), root, split, label, batch_size)
    try:
        return binary_metrics(predictions.labels, predictions.probability), predictions
    except BadInputError as e:
        raise BadInputError(f"split {split!r} of {root}: {e}") from None


def time_passes(signature, batches: list[tf.Tensor], passes: int = 3) -> float:
    """Seconds of the fastest of PASSES passes of SIGNATURE over BATCHES.

    A warm-up call on the first and the last batch comes first; the machine is shared, so the
    fastest pass is the least disturbed.

    Args:
        signature: a `serving_default` signature (`load_signature`).
        batches: string tensors [B] of serialized raw tf.Examples (`raw_batches`).
        passes: how many timed passes to make.

    Returns:
        The fastest pass's wall time in seconds.
    """
    signature(examples=batches[0])
    signature(examples=batches[-1])
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        for batch in batches:
            signature(examples=batch)
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def raw_batches(root: str, split: str, batch_size: int) -> list[tf.Tensor]:
    """A split's serialized raw tf.Examples, in file order, held in memory for repeated passes.

    Args:
        root: the folder of raw splits (an ExampleGen artifact, or OUT/examples of `prepare`).
        split: the split's name.
        batch_size: examples per batch.

    Returns:
        The string tensors [B], one per batch.

    Raises:
        BadInputError: the split has no files.
    """
    return list(splits.records(root, split, batch_size))


def binary_metrics(y: np.ndarray, probability: np.ndarray) -> dict:
    """AUC and log loss of click probabilities.

    Args:
        y: 0/1 labels [n].
        probability: predicted probabilities [n].

    Returns:
        {"auc", "logloss", "examples"}.

    Raises:
        BadInputError: the labels are all 0 or all 1 (AUC is undefined).
    """
    if len(np.unique(y)) < 2:
        raise BadInputError("the examples have a single label: AUC is undefined")
    p = np.clip(np.asarray(probability, "float64"), EPSILON, 1 - EPSILON)
    return {"auc": float(roc_auc_score(y, p)), "logloss": float(log_loss(y, p, labels=[0, 1])),
            "examples": int(len(y))}
