"""Reading TFX splits: `{uri}/Split-{name}/*` gzipped TFRecords of tf.Examples, streamed.

Transform writes `transformed_examples-*.gz` there and ExampleGen its own file names; both are
read by globbing the split folder. Shared by the Search, Cluster, Retrain and Evaluate executors.
"""

import os

import tensorflow as tf

from ihas_keras.data import BadInputError
from ihas_keras.data.transform import example_batches


def split_files(examples_uri: str, split: str) -> list[str]:
    """The files of SPLIT under an Examples artifact's URI; a clear error if there are none."""
    folder = os.path.join(examples_uri, f"Split-{split}")
    if not tf.io.gfile.isdir(folder):
        raise BadInputError(f"{folder}: no such split folder (expected split {split!r})")
    files = sorted(tf.io.gfile.glob(os.path.join(folder, "*")))
    if not files:
        raise BadInputError(f"{folder}: split {split!r} holds no files")
    return files


def records(examples_uri: str, split: str, batch_size: int) -> tf.data.Dataset:
    """Batches of serialized tf.Examples [B] of SPLIT, read from disk (gzipped TFRecords)."""
    files = split_files(examples_uri, split)
    return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)


def transformed_spec(fields, label: str) -> dict:
    """The transformed tf.Example layout: one int64 id per field, and the 0/1 label."""
    return {name: tf.io.FixedLenFeature([], tf.int64) for name in (*fields, label)}


def dataset(examples_uri: str, split: str, spec: dict, label: str, batch_size: int,
            shuffle: bool = False, seed: int | None = None):
    """Batches of ({field: int64 ids [B]}, label [B]) of a transformed split, streamed (SHUFFLE:
    through a 10,000-example buffer, anew each epoch); SPEC is the transformed feature spec
    (`TFTransformOutput.transformed_feature_spec()`)."""
    if not label or label not in spec:
        raise BadInputError(
            f"training needs labeled examples; label {label!r} is not among {sorted(spec)}"
        )
    files = split_files(examples_uri, split)
    return example_batches(files, spec, label, batch_size, shuffle, seed)
