"""Splits on disk: one layout for every writer and reader, the library's and the TFX components'.

A split SPLIT of a folder ROOT (an Examples artifact's URI, or `ihas data prepare`'s
OUT/examples and OUT/transformed) is the folder `ROOT/Split-SPLIT`, holding gzipped TFRecord
files of tf.Examples named as TFX names them: `data_tfrecord-00000-of-00001.gz` for raw examples
(ExampleGen's prefix), `transformed_examples-00000-of-00001.gz` for transformed ones (Transform's).
Readers take every file of the split folder, in name order, so shards written by Beam are read
alike.
"""

import os

import tensorflow as tf

from ihas_keras import defaults
from ihas_keras.errors import BadInputError

EXAMPLES_PREFIX = "data_tfrecord"  # TFX ExampleGen's `write_split.DEFAULT_TF_RECORD_FILE_NAME`
TRANSFORMED_PREFIX = "transformed_examples"  # TFX Transform's
SUFFIX = ".gz"
SINGLE_SHARD = "-00000-of-00001"


def split_dir(root: str, split: str) -> str:
    """The folder of SPLIT under ROOT.

    Args:
        root: the folder holding the splits (an Examples artifact's URI).
        split: the split's name, such as "train".

    Returns:
        `ROOT/Split-SPLIT`.
    """
    return os.path.join(root, f"Split-{split}")


def shard_prefix(root: str, split: str, prefix: str) -> str:
    """The path prefix of SPLIT's shards, for Beam's `WriteToTFRecord(prefix, SUFFIX)`.

    Args:
        root: the folder holding the splits.
        split: the split's name.
        prefix: `EXAMPLES_PREFIX` or `TRANSFORMED_PREFIX`.

    Returns:
        `ROOT/Split-SPLIT/PREFIX`.
    """
    return os.path.join(split_dir(root, split), prefix)


def single_file(root: str, split: str, prefix: str) -> str:
    """The path of a split written as one shard (the library's ingest, the tests).

    Args:
        root: the folder holding the splits.
        split: the split's name.
        prefix: `EXAMPLES_PREFIX` or `TRANSFORMED_PREFIX`.

    Returns:
        `ROOT/Split-SPLIT/PREFIX-00000-of-00001.gz`.
    """
    return shard_prefix(root, split, prefix) + SINGLE_SHARD + SUFFIX


def split_files(root: str, split: str) -> list[str]:
    """The files of SPLIT under ROOT, in name order.

    Args:
        root: the folder holding the splits.
        split: the split's name.

    Returns:
        The paths of the split folder's files.

    Raises:
        BadInputError: the split folder is missing or holds no files.
    """
    folder = split_dir(root, split)
    if not tf.io.gfile.isdir(folder):
        raise BadInputError(f"{folder}: no such split folder (expected split {split!r})")
    files = sorted(f for f in tf.io.gfile.glob(os.path.join(folder, "*"))
                   if not tf.io.gfile.isdir(f))
    if not files:
        raise BadInputError(f"{folder}: split {split!r} holds no files")
    return files


def records(root: str, split: str, batch_size: int) -> tf.data.Dataset:
    """Batches of serialized tf.Examples of SPLIT, streamed from disk in file order.

    Args:
        root: the folder holding the splits.
        split: the split's name.
        batch_size: examples per batch (the last batch may be smaller).

    Returns:
        A dataset of string tensors [B].

    Raises:
        BadInputError: the split has no files.
    """
    return tf.data.TFRecordDataset(split_files(root, split), compression_type="GZIP").batch(
        batch_size)


def count_records(folder: str, split: str) -> int:
    """The number of records in SPLIT's files under FOLDER, read but not parsed.

    One pass over the split's gzipped TFRecord files (`split_files`; decompressed, not parsed
    as tf.Examples), for example to choose the batch size by the training rows
    (`schedule.batch_size`).

    Args:
        folder: the folder holding the splits (an Examples artifact's URI).
        split: the split's name, such as "train".

    Returns:
        The split's record count.

    Raises:
        BadInputError: the split folder is missing or holds no files.
    """
    batches = records(folder, split, 65_536)  # counted a batch at a time, not a record
    return int(batches.reduce(tf.constant(0, tf.int64),
                              lambda count, batch: count + tf.size(batch, tf.int64)))


def transformed_spec(fields, label: str) -> dict:
    """The transformed tf.Example layout: one int64 id per field, and the 0/1 label.

    Args:
        fields: the feature fields, in order.
        label: the label's name.

    Returns:
        {name: `tf.io.FixedLenFeature([], tf.int64)`} for every field and the label.
    """
    return {name: tf.io.FixedLenFeature([], tf.int64) for name in (*fields, label)}


def example_batches(files, spec: dict, label: str | None, batch_size: int, shuffle: bool = False,
                    seed: int | None = None,
                    shuffle_buffer: int = defaults.SHUFFLE_BUFFER) -> tf.data.Dataset:
    """Batches parsed with SPEC from gzipped tf.Example TFRecord FILES, streamed from disk.

    Args:
        files: a path or a list of paths.
        spec: the feature spec to parse with (`tf.io.parse_example`).
        label: the label's name; None for unlabeled examples.
        batch_size: examples per batch.
        shuffle: shuffle through a buffer, anew each epoch.
        seed: the shuffle's seed.
        shuffle_buffer: the shuffle buffer's size, in examples.

    Returns:
        A dataset of ({field: tensor [B]}, label [B]), or of the features alone without LABEL.
    """
    records_ = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if shuffle:
        records_ = records_.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def parse(serialized):
        features = tf.io.parse_example(serialized, spec)
        return (features, features.pop(label)) if label else features

    return (
        records_.batch(batch_size)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def dataset(root: str, split: str, spec: dict, label: str, batch_size: int,
            shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Labeled batches of a transformed split, streamed from disk.

    Args:
        root: the folder holding the splits (a Transform output or `transform`'s folder).
        split: the split's name.
        spec: the transformed feature spec (`TFTransformOutput.transformed_feature_spec()`).
        label: the label's name.
        batch_size: examples per batch.
        shuffle: shuffle through a buffer of `defaults.SHUFFLE_BUFFER` examples, anew each epoch.
        seed: the shuffle's seed.

    Returns:
        A dataset of ({field: int64 ids [B]}, label [B]).

    Raises:
        BadInputError: the label is not in SPEC, or the split has no files.
    """
    if not label or label not in spec:
        raise BadInputError(
            f"training needs labeled examples; label {label!r} is not among {sorted(spec)}"
        )
    return example_batches(split_files(root, split), spec, label, batch_size, shuffle, seed)
