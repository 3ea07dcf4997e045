"""Preprocessing as one TF Transform `preprocessing_fn`, following the paper, and the data split.

Every input field becomes an integer id for its embedding table:
  0 = missing, 1 = "others" (values seen fewer than `frequency_threshold` times in the analyzed
  data, and values never seen), 2.. = the field's vocabulary, most frequent first.
Criteo-style integer fields are first turned into tokens: x > 2 -> floor(ln(x)^2), else x.
The vocabulary of field F is written as the TFT vocabulary file named F, so its table size is
`vocabulary_size_by_name(F) + 2`.
"""

from collections.abc import Callable

import tensorflow as tf
import tensorflow_transform as tft

from ihas_keras import defaults
from ihas_keras.data.formats import TableFormat

MISSING_ID = 0
OTHERS_ID = 1
RESERVED_IDS = 2
SPLITS = ("train", "eval", "test")


def raw_feature_spec(fmt: TableFormat) -> dict:
    """The tf.Example layout of parsed rows: every input field optional (absent when empty).

    Args:
        fmt: the rows' format.

    Returns:
        {field: `tf.io.VarLenFeature`} (int64 for numeric fields, string for categorical and
        derived ones), plus the label as a `tf.io.FixedLenFeature([], tf.int64)` when FMT has one.
    """
    spec = {name: tf.io.VarLenFeature(tf.int64) for name in fmt.numeric}
    spec.update({name: tf.io.VarLenFeature(tf.string) for name in fmt.categorical + fmt.derived})
    if fmt.label:
        spec[fmt.label] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def numeric_token(x: tf.Tensor) -> tf.Tensor:
    """The paper's rule for integer fields: x > 2 -> floor(ln(x)^2), else x; as a string token.

    Args:
        x: integer values (converted to int64).

    Returns:
        The tokens, a string tensor of X's shape.
    """
    x = tf.convert_to_tensor(x, tf.int64)
    logged = tf.cast(tf.floor(tf.math.log(tf.cast(tf.maximum(x, 1), tf.float64)) ** 2), tf.int64)
    return tf.strings.as_string(tf.where(x > 2, logged, x))


def _dense_tokens(x, numeric: bool) -> tf.Tensor:
    """A [B] string tensor of tokens, "" where the field is missing."""
    if isinstance(x, tf.SparseTensor):
        if numeric:
            x = tf.SparseTensor(x.indices, numeric_token(x.values), x.dense_shape)
        return tft.sparse_tensor_to_dense_with_shape(x, [None, 1], default_value="")[:, 0]
    return numeric_token(x) if numeric else x


def make_preprocessing_fn(
    fmt: TableFormat, frequency_threshold: int = defaults.FREQUENCY_THRESHOLD
) -> Callable[[dict], dict]:
    """The preprocessing_fn for FMT: {field: int64 id} plus the label, as described above.

    Args:
        fmt: the data's format.
        frequency_threshold: values seen fewer times than this in the analyzed data get the
            "others" id.

    Returns:
        The TF Transform `preprocessing_fn`: raw inputs (`raw_feature_spec`'s layout) ->
        {field: int64 id [B]}, plus the label when FMT has one and it is among the inputs.
    """

    def preprocessing_fn(inputs: dict) -> dict:
        outputs = {}
        for name in fmt.feature_fields:
            tokens = _dense_tokens(inputs[name], numeric=name in fmt.numeric)
            # Empty tokens never enter a TFT vocabulary, so missing values do not count.
            vocab_ids = tft.compute_and_apply_vocabulary(
                tokens,
                default_value=-1,
                frequency_threshold=frequency_threshold,
                vocab_filename=name,
            )
            outputs[name] = tf.where(
                tokens == "",
                tf.constant(MISSING_ID, tf.int64),
                tf.where(vocab_ids < 0, tf.constant(OTHERS_ID, tf.int64), vocab_ids + RESERVED_IDS),
            )
        if fmt.label and fmt.label in inputs:
            label = inputs[fmt.label]
            if isinstance(label, tf.SparseTensor):  # a schema that does not fix its shape
                label = tft.sparse_tensor_to_dense_with_shape(label, [None, 1])[:, 0]
            outputs[fmt.label] = label
        return outputs

    return preprocessing_fn


def assign_split(files: tf.Tensor, lines: tf.Tensor, seed: int = defaults.SPLIT_SEED) -> tf.Tensor:
    """Split index per row (0 train, 1 eval, 2 test: 80/10/10), from its file name and line number.

    Deterministic for a seed: the same row lands in the same split on every run and every reader.
    Only the file's base name counts, so moving the data keeps the split.

    Args:
        files: the rows' file paths [B].
        lines: the rows' line numbers [B].
        seed: the split seed.

    Returns:
        The split indices [B], indices into `SPLITS`.
    """
    base = tf.strings.regex_replace(files, r"^.*/", "")
    keys = tf.strings.join([str(seed), base, tf.strings.as_string(lines)], separator=":")
    bucket = tf.strings.to_hash_bucket_fast(keys, 10)
    return tf.where(bucket < 8, 0, tf.where(bucket < 9, 1, 2))
