"""Per-cluster towers over one shared embedding: each cluster reads only its kept columns."""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.embedding import FieldEmbedding


def kept_columns(kept: np.ndarray) -> list[list[int]]:
    """Each cluster's kept dimensions as column indices of the concatenated embeddings.

    Args:
        kept: booleans [K, N, embedding_dim] (`ClusterPlan.kept_dimensions`).

    Returns:
        K sorted lists of column indices into [0, N * embedding_dim).
    """
    kept = np.asarray(kept, bool)
    return [np.flatnonzero(k.reshape(-1)).tolist() for k in kept]


@keras.saving.register_keras_serializable(package="ihas")
class SharedTowers(keras.layers.Layer):
    """({field: int64 ids [B]}, cluster int32 [B]) -> click probability [B].

    One trainable embedding of every field at full width, shared by K towers; tower k is a
    `Backbone` over cluster k's kept columns only (and, for backbones with a first-order term,
    the first-order terms of its kept fields). Each example is scored by its cluster's tower.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size (its table's rows).
        embedding_dim: every field's width in the shared embedding.
        columns: K ascending lists of kept column indices into [0, N * embedding_dim)
            (`kept_columns`).
        backbone: the towers' backbone kind (`Backbone.KINDS`).
        hidden_units: the towers' MLP layer sizes.
        cross_layers: DCN-v2 cross layers (backbone "dcn_v2").
        **kwargs: `keras.layers.Layer` arguments (such as `name`).

    Raises:
        ValueError: a column index is outside [0, N * embedding_dim), or a cluster's columns are
            not ascending and unique.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int], embedding_dim: int,
                 columns: Sequence[Sequence[int]], backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.embedding_dim = int(embedding_dim)
        self.columns = [[int(c) for c in row] for row in columns]
        units = self.embedding_dim * len(self.fields)
        for k, row in enumerate(self.columns):
            if any(not 0 <= c < units for c in row):
                raise ValueError(f"SharedTowers: cluster {k} keeps columns outside [0, {units})")
            if any(a >= b for a, b in zip(row[:-1], row[1:], strict=True)):
                # The backbones read each field's columns together, in field order.
                raise ValueError(f"SharedTowers: cluster {k}'s columns must be ascending and "
                                 "unique")
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        self.embedding = FieldEmbedding(self.fields, self.vocab_sizes,
                                        [self.embedding_dim] * len(self.fields), name="embedding")
        self.linear = None
        if backbone in Backbone.LINEAR_KINDS:
            self.linear = FieldEmbedding(self.fields, self.vocab_sizes, [1] * len(self.fields),
                                         name="linear")
        widths = self.widths()
        self.towers = [Backbone(backbone, w.tolist(), self.hidden_units, self.cross_layers,
                                name=f"tower_{k}") for k, w in enumerate(widths)]
        self._column_index = [np.asarray(row, np.int32) for row in self.columns]
        self._field_index = [np.flatnonzero(w).astype(np.int32) for w in widths]

    def widths(self) -> np.ndarray:
        """Per-cluster, per-field widths: the count of each field's kept columns [K, N]."""
        counts = np.zeros((len(self.columns), len(self.fields) * self.embedding_dim), int)
        for k, row in enumerate(self.columns):
            counts[k, row] = 1
        return counts.reshape(len(self.columns), len(self.fields), self.embedding_dim).sum(-1)

    def build(self, input_shape=None):
        self.embedding.build()
        if self.linear is not None:
            self.linear.build()
        for k, tower in enumerate(self.towers):
            linear = None if self.linear is None else (None, len(self._field_index[k]))
            tower.build(((None, len(self.columns[k])), linear))
        self.built = True

    def call(self, inputs):
        features, cluster = inputs
        embedded = self.embedding(features)
        linear = self.linear(features) if self.linear is not None else None
        rows = tf.range(tf.shape(cluster)[0])
        parts = tf.dynamic_partition(rows, cluster, len(self.towers))
        logits = []
        for k, (tower, part) in enumerate(zip(self.towers, parts, strict=True)):
            own = tf.gather(tf.gather(embedded, part), self._column_index[k], axis=1)
            first = None
            if linear is not None:
                first = tf.gather(tf.gather(linear, part), self._field_index[k], axis=1)
            logits.append(tower((own, first))[:, 0])
        return ops.sigmoid(tf.dynamic_stitch(parts, logits))

    def compute_output_spec(self, inputs):
        features, _ = inputs
        return keras.KerasTensor((features[self.fields[0]].shape[0],), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "embedding_dim": self.embedding_dim,
            "columns": self.columns,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
        }
