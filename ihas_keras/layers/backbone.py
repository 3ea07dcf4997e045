"""The interaction + MLP part of a CTR recommender, from field embeddings to one logit."""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.interactions import CrossNetV2, FMInteraction
from ihas_keras.layers.mlp import MLP


def field_index(widths: Sequence[int]) -> np.ndarray:
    """Gather index [F_kept, max_w] from concatenated kept fields to zero-padded equal fields.

    Args:
        widths: per-field embedding widths (0 drops the field); at least one must be above 0.

    Returns:
        The index: entry (f, k) is the column of kept field f's k-th dimension, or sum(widths)
        (an appended zero column) where k >= that field's width.
    """
    kept = [w for w in widths if w > 0]
    starts = np.cumsum([0, *kept[:-1]])
    dims = np.arange(max(kept))
    return np.where(dims < np.array(kept)[:, None], starts[:, None] + dims, sum(kept))


@keras.saving.register_keras_serializable(package="ihas")
class Backbone(keras.layers.Layer):
    """Field embeddings (+ first-order terms) -> logit [B, 1], for one of `KINDS`.

    Call on `(embedded, linear)`: embedded [B, sum(widths)] is the kept fields' embeddings
    concatenated in field order; linear [B, F_kept] (one scalar per kept field) or None is summed
    into the logit by fm, wide_deep and deepfm, and ignored by dnn and dcn_v2. FM zero-pads every
    field to max(widths). With every field dropped the logit is the bias (+ sum(linear)).

    Args:
        kind: the backbone, one of `KINDS`.
        widths: per-field embedding widths (0 drops the field).
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers (kind "dcn_v2").
        **kwargs: `keras.layers.Layer` arguments (such as `name`).

    Raises:
        ValueError: KIND is not one of `KINDS`, or a width is not an integer >= 0.
    """

    KINDS = ("dnn", "fm", "wide_deep", "deepfm", "dcn_v2")
    LINEAR_KINDS = ("fm", "wide_deep", "deepfm")

    def __init__(self, kind: str, widths: Sequence[int],
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, **kwargs) -> None:
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            valid = ", ".join(self.KINDS)
            raise ValueError(f"unknown backbone kind {kind!r}; valid kinds: {valid}")
        if any(int(w) != w or w < 0 for w in widths):
            raise ValueError(f"widths must be integers >= 0, got {list(widths)}")
        self.kind = kind
        self.widths = [int(w) for w in widths]
        self.hidden_units = [int(units) for units in hidden_units]
        self.cross_layers = int(cross_layers)
        self.num_kept = sum(w > 0 for w in self.widths)
        kept = self.num_kept > 0
        self.fm = FMInteraction() if kept and kind in ("fm", "deepfm") else None
        self.mlp = MLP(self.hidden_units) if kept and kind != "fm" else None
        self.cross = CrossNetV2(self.cross_layers) if kept and kind == "dcn_v2" else None
        self.head = keras.layers.Dense(1, use_bias=False) if self.mlp is not None else None

    def build(self, input_shape):
        embedded_shape, linear_shape = input_shape
        if embedded_shape[-1] != sum(self.widths):
            raise ValueError(
                f"Backbone: embedded has {embedded_shape[-1]} columns, sum(widths) is "
                f"{sum(self.widths)}"
            )
        if linear_shape is not None and linear_shape[-1] != self.num_kept:
            raise ValueError(
                f"Backbone: linear has {linear_shape[-1]} columns, {self.num_kept} fields are kept"
            )
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")
        if self.mlp is None:
            return
        self.mlp.build(embedded_shape)
        head_input = self.hidden_units[-1] if self.hidden_units else embedded_shape[-1]
        if self.cross is not None:
            self.cross.build(embedded_shape)
            head_input += embedded_shape[-1]
        self.head.build((None, head_input))

    def call(self, inputs, training=None):
        embedded, linear = inputs
        logit = ops.broadcast_to(self.bias, (ops.shape(embedded)[0], 1))
        if linear is not None and self.kind in self.LINEAR_KINDS:
            logit = logit + ops.sum(linear, axis=-1, keepdims=True)
        if self.fm is not None:
            logit = logit + self.fm(self.stack_fields(embedded))
        if self.mlp is not None:
            deep = self.mlp(embedded, training=training)
            if self.cross is not None:
                deep = ops.concatenate([self.cross(embedded), deep], axis=-1)
            logit = logit + self.head(deep)
        return logit

    def stack_fields(self, embedded: tf.Tensor) -> tf.Tensor:
        """[B, sum(widths)] -> [B, F_kept, max(widths)], kept fields zero-padded on the right.

        Args:
            embedded: the kept fields' embeddings concatenated in field order [B, sum(widths)].

        Returns:
            The fields stacked [B, F_kept, max(widths)].
        """
        kept = [w for w in self.widths if w > 0]
        if len(set(kept)) == 1:  # equal widths (the search model): a reshape, no gather
            return ops.reshape(embedded, (-1, len(kept), kept[0]))
        padded = ops.pad(embedded, [[0, 0], [0, 1]])
        return ops.take(padded, field_index(self.widths), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "widths": self.widths,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
        }
