"""AdaFS (Lin et al., KDD 2022): a controller network weighs each example's fields."""

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.mlp import MLP
from ihas_keras.models.selection import FieldSelectionModel


@keras.saving.register_keras_serializable(package="ihas")
class AdaFS(FieldSelectionModel):
    """A controller MLP on the concatenated embeddings gives per-example field weights
    N * softmax(...) (scaled by the number of fields N, so that uniform weights equal the all-ones
    of pretraining).

    mode "soft" (AdaFS-soft) multiplies each field's embedding by its weight; "hard" (AdaFS-hard)
    keeps each example's top `k` fields, with their weights, and zeroes the others (`k` defaults
    to half the fields, rounded up). Trained with `ihas_keras.search`: pretraining without
    weights, then the controller on validation batches, the rest on training batches.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size.
        embedding_dim: every field's width.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers.
        mode: "soft" or "hard" (see above).
        k: the fields kept per example in "hard" mode; None: half the fields, rounded up.
        controller_units: the controller MLP's layer sizes.
        **kwargs: `FieldSelectionModel` arguments (such as `selecting`) and `keras.Model` ones
            (such as `name`).

    Raises:
        ValueError: MODE is not one of `MODES`, K is not in [1, N], FIELDS and VOCAB_SIZES differ
            in length, or the backbone kind is unknown.
    """

    MODES = ("soft", "hard")

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int],
                 embedding_dim: int = defaults.EMBEDDING_DIM, backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, mode: str = "soft",
                 k: int | None = None, controller_units: Sequence[int] = (16,),
                 **kwargs) -> None:
        super().__init__(fields, vocab_sizes, embedding_dim, backbone, hidden_units,
                         cross_layers, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"AdaFS: mode {mode!r} is not one of {self.MODES}")
        n = len(self.fields)
        self.mode = mode
        self.k = int(k) if k is not None else (n + 1) // 2
        if not 1 <= self.k <= n:
            raise ValueError(f"AdaFS: k must be in [1, {n}], got {self.k}")
        self.controller_units = [int(u) for u in controller_units]
        self.controller = MLP(self.controller_units, name="controller")
        self.controller_head = keras.layers.Dense(n, name="controller_head")
        self._finish_init()

    @property
    def architecture_variables(self) -> list:
        """The controller's trainable variables."""
        return self.controller.trainable_variables + self.controller_head.trainable_variables

    def field_weights(self, embedded: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Field weights [B, N], N * softmax(...) of the controller on EMBEDDED.

        In "hard" mode only each example's top `k` weights are kept; the others are zeroed.
        """
        n = len(self.fields)
        weights = n * ops.softmax(self.controller_head(self.controller(embedded)), axis=-1)
        if self.mode == "soft":
            return weights
        _, top = ops.top_k(weights, self.k)
        return weights * ops.sum(ops.one_hot(top, n, dtype=weights.dtype), axis=1)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "k": self.k,
                "controller_units": self.controller_units}
