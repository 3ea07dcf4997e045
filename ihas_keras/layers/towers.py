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
class BlockTowers(keras.layers.Layer):
    """K DNN towers over column subsets of one input, computed as one block-structured MLP.

    (embedded [B, D], cluster int32 [B]) -> logit [B] of each example's own tower. Tower k is a
    DNN backbone (`Backbone("dnn")`: Dense + ReLU for each of `hidden_units`, a Dense(1) head
    without bias, one bias) over columns `columns[k]` of EMBEDDED. The K towers' layers are
    stored side by side: layer 0's kernel [D, K * h0] holds tower k's kernel in the rows of its
    columns and block k of the output, every later kernel is block-diagonal, and masks keep
    every entry outside the blocks at zero. So all towers run as one MLP of a few matrix
    products, and each example's logit is picked from its tower's column: the same numbers as
    running each tower on its own rows, without partitioning the batch.

    Args:
        dim: D, the input's columns.
        columns: K ascending lists of column indices into [0, D).
        hidden_units: every tower's layer sizes.
        **kwargs: `keras.layers.Layer` arguments (such as `name`).
    """

    def __init__(self, dim: int, columns: Sequence[Sequence[int]],
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.columns = [[int(c) for c in row] for row in columns]
        self.hidden_units = [int(u) for u in hidden_units]
        sizes = [*self.hidden_units, 1]  # the head is a layer of one unit per tower
        self._masks = []
        for layer, units in enumerate(sizes):
            inputs = self.dim if layer == 0 else len(self.columns) * sizes[layer - 1]
            mask = np.zeros((inputs, len(self.columns) * units), np.float32)
            for tower in range(len(self.columns)):
                rows, cols = self._block(tower, 2 * layer)
                mask[np.ix_(rows, cols)] = 1
            self._masks.append(mask)

    def build(self, input_shape=None):
        self.kernels, self.biases = [], []
        for i, mask in enumerate(self._masks):
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=mask.shape,
                                                initializer=_block_glorot(mask)))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(mask.shape[1],),
                                               initializer="zeros"))
        self.built = True

    def call(self, inputs):
        embedded, cluster = inputs
        x = embedded
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            x = ops.matmul(x, kernel * ops.cast(self._masks[i], x.dtype)) + bias
            if i < len(self.hidden_units):
                x = ops.relu(x)
        return tf.gather(x, cluster, axis=1, batch_dims=1)

    def tower_weights(self, tower: int) -> list[np.ndarray]:
        """Tower TOWER's weights as its own DNN backbone has them.

        Args:
            tower: k, in [0, K).

        Returns:
            [kernel_0 [len(columns[k]), h0], bias_0, ..., head kernel [h_last, 1], bias [1]].
        """
        return [part.numpy() for part in self._tower_parts(tower)]

    def set_tower_weights(self, tower: int, weights: Sequence[np.ndarray]) -> None:
        """Sets tower TOWER's weights, in the order `tower_weights` gives them.

        Args:
            tower: k, in [0, K).
            weights: its kernels and biases, shaped as `tower_weights` returns them.
        """
        for i, value in enumerate(weights):
            variable = (self.kernels + self.biases)[self._order(i)]
            rows, cols = self._block(tower, i)
            full = variable.numpy()
            if full.ndim == 1:
                full[cols] = np.reshape(value, -1)
            else:
                full[np.ix_(rows, cols)] = value
            variable.assign(full)

    def _order(self, i: int) -> int:
        """Index into kernels + biases of the I-th of a tower's weights (kernel, bias, ...)."""
        layer, is_bias = divmod(i, 2)
        return layer + len(self.kernels) * is_bias

    def _block(self, tower: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of tower TOWER's block in its I-th weight (rows unused for biases)."""
        layer = i // 2
        sizes = [*self.hidden_units, 1]
        cols = np.arange(tower * sizes[layer], (tower + 1) * sizes[layer])
        if layer == 0:
            return np.asarray(self.columns[tower], int), cols
        return np.arange(tower * sizes[layer - 1], (tower + 1) * sizes[layer - 1]), cols

    def _tower_parts(self, tower: int) -> list[tf.Tensor]:
        parts = []
        for i in range(2 * len(self.kernels)):
            variable = (self.kernels + self.biases)[self._order(i)]
            rows, cols = self._block(tower, i)
            if i % 2:
                parts.append(tf.gather(variable, cols))
            else:
                parts.append(tf.gather(tf.gather(variable, rows), cols, axis=1))
        return parts

    def compute_output_spec(self, inputs):
        embedded, _ = inputs
        return keras.KerasTensor((embedded.shape[0],), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "columns": self.columns,
                "hidden_units": self.hidden_units}


def _block_glorot(mask: np.ndarray):
    """An initializer: Glorot-uniform in each block of MASK for that block's fan-in and fan-out
    (as each tower's own `keras.layers.Dense` starts), zero outside the blocks.

    A block's fan-in is its column's count of ones, its fan-out its row's count of ones.
    """
    fan_in = mask.sum(axis=0, keepdims=True)
    fan_out = mask.sum(axis=1, keepdims=True)
    limit = mask * np.sqrt(6.0 / np.maximum(fan_in + fan_out, 1.0))

    uniform = keras.initializers.RandomUniform(-1.0, 1.0)

    def initializer(shape, dtype=None):
        values = uniform(shape, dtype=dtype)
        return values * ops.convert_to_tensor(limit, dtype=values.dtype)

    return initializer


@keras.saving.register_keras_serializable(package="ihas")
class SharedTowers(keras.layers.Layer):
    """({field: int64 ids [B]}, cluster int32 [B]) -> click probability [B].

    One trainable embedding, shared by K towers: every field some cluster keeps, at full width
    (fields no cluster keeps are not looked up at all); tower k is a `Backbone` over cluster k's
    kept columns only (and, for backbones with a first-order term, the first-order terms of its
    kept fields). Each example is scored by its cluster's tower. DNN towers run together as one
    `BlockTowers`; other backbones partition the batch by cluster.

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
        widths = self.widths()
        used = widths.sum(axis=0) > 0  # fields some cluster keeps
        self.embedding = FieldEmbedding(self.fields, self.vocab_sizes,
                                        (used * self.embedding_dim).tolist(), name="embedding")
        self.linear = None
        if backbone in Backbone.LINEAR_KINDS:
            self.linear = FieldEmbedding(self.fields, self.vocab_sizes, used.astype(int).tolist(),
                                         name="linear")
        # Kept columns and fields as positions in the looked-up (used fields only) outputs.
        position = np.cumsum(used) - 1
        self._column_index = [
            (position[np.asarray(row, int) // self.embedding_dim] * self.embedding_dim
             + np.asarray(row, int) % self.embedding_dim).astype(np.int32)
            for row in self.columns
        ]
        self._field_index = [position[np.flatnonzero(w)].astype(np.int32) for w in widths]
        self.block, self.towers = None, []
        if backbone == "dnn":
            self.block = BlockTowers(self.embedding.output_dim,
                                     [c.tolist() for c in self._column_index], self.hidden_units,
                                     name="block")
        else:
            self.towers = [Backbone(backbone, w.tolist(), self.hidden_units, self.cross_layers,
                                    name=f"tower_{k}") for k, w in enumerate(widths)]

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
        if self.block is not None:
            self.block.build()
        for k, tower in enumerate(self.towers):
            linear = None if self.linear is None else (None, len(self._field_index[k]))
            tower.build(((None, len(self.columns[k])), linear))
        self.built = True

    def embed(self, features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The one lookup every tower reads (and a router may read too).

        Args:
            features: {field: int64 ids [B]}.

        Returns:
            (the used fields' embeddings [B, used * embedding_dim], their first-order terms
            [B, used] or None when the backbone has none).
        """
        linear = self.linear(features) if self.linear is not None else None
        return self.embedding(features), linear

    def score(self, embedded: tf.Tensor, linear: tf.Tensor | None,
              cluster: tf.Tensor) -> tf.Tensor:
        """Each example's click probability from its cluster's tower.

        Args:
            embedded: `embed`'s embeddings.
            linear: `embed`'s first-order terms.
            cluster: each example's cluster, int32 [B].

        Returns:
            The click probabilities [B].
        """
        if self.block is not None:
            return ops.sigmoid(ops.cast(self.block((embedded, cluster)), "float32"))
        rows = tf.range(tf.shape(cluster)[0])
        parts = tf.dynamic_partition(rows, cluster, len(self.towers))
        logits = []
        for k, (tower, part) in enumerate(zip(self.towers, parts, strict=True)):
            own = tf.gather(tf.gather(embedded, part), self._column_index[k], axis=1)
            first = None
            if linear is not None:
                first = tf.gather(tf.gather(linear, part), self._field_index[k], axis=1)
            logits.append(tower((own, first))[:, 0])
        return ops.sigmoid(ops.cast(tf.dynamic_stitch(parts, logits), "float32"))

    def call(self, inputs):
        features, cluster = inputs
        return self.score(*self.embed(features), cluster)

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
