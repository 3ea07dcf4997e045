"""Per-field embedding tables with per-field widths."""

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="ihas")
class FieldEmbedding(keras.layers.Layer):
    """One table per field; `widths[i]` is field i's width, and a width of 0 drops the field.

    Input: {field: int ids [B]}; output: [B, sum(widths)], the kept fields' embeddings
    concatenated in field order. Ids come from the TF Transform graph (0 = missing, 1 = others),
    so they lie in [0, vocab_size).

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size (its table's rows).
        widths: each field's embedding width; 0 drops the field.
        embeddings_initializer: the tables' initializer (anything `keras.initializers.get`
            takes).
        **kwargs: `keras.layers.Layer` arguments (such as `name`).

    Raises:
        ValueError: FIELDS, VOCAB_SIZES and WIDTHS differ in length.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int], widths: Sequence[int],
                 embeddings_initializer: str | keras.initializers.Initializer = "uniform",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not len(fields) == len(vocab_sizes) == len(widths):
            raise ValueError(
                f"FieldEmbedding: {len(fields)} fields, {len(vocab_sizes)} vocabulary sizes and "
                f"{len(widths)} widths; they must match"
            )
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.widths = [int(w) for w in widths]
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.tables = {}

    @property
    def output_dim(self) -> int:
        """The output's width, sum(widths)."""
        return sum(self.widths)

    def build(self, input_shape=None):
        for field, size, width in zip(self.fields, self.vocab_sizes, self.widths, strict=True):
            if width > 0:
                self.tables[field] = self.add_weight(
                    name=f"table_{field}", shape=(size, width),
                    initializer=self.embeddings_initializer, autocast=False,
                )
        self.built = True

    def call(self, inputs):
        parts = []
        for field in self.fields:
            if field in self.tables:
                ids = ops.reshape(ops.cast(inputs[field], "int32"), (-1,))
                # A gather of the variable reads the looked-up rows only, and its gradient is
                # sparse (`tf.IndexedSlices`), which `optimizers.LazyAdam` updates row by row.
                rows = tf.gather(self.tables[field].value, ids)
                parts.append(ops.cast(rows, self.compute_dtype))
        if not parts:
            batch = ops.shape(inputs[self.fields[0]])[0]
            return ops.zeros((batch, 0))
        return ops.concatenate(parts, axis=-1)

    def compute_output_spec(self, inputs):
        first = inputs[self.fields[0]]
        return keras.KerasTensor((first.shape[0], self.output_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "widths": self.widths,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
