"""Common ground of the field-selection baselines (AdaFS, AutoField): per-example field weights
over full-width embeddings, trained bi-level with the same schedule as the iHAS search."""

from collections.abc import Sequence

import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.backbone import Backbone
from ihas_keras.models.bilevel import BilevelModel
from ihas_keras.models.recommender import dummy_batch, field_embeddings


class FieldSelectionModel(BilevelModel):
    """{field: int64 ids [B]} -> click probability [B], each field's embedding (and first-order
    term) multiplied by a per-example weight from `field_weights` (subclasses).

    Trained bi-level like the iHAS search (`BilevelModel`), so `ihas_keras.search` drives it:
    gate mode "open" (all weights 1: pretraining), "stochastic" or "deterministic" (selecting);
    while selecting, after `use_validation(val, gate_every)`, one architecture step (the
    `architecture_variables` only, on a validation batch's loss) after every `gate_every` base
    steps.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size.
        embedding_dim: every field's width.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers.
        selecting: start selecting (else open, as for pretraining).
        **kwargs: `keras.Model` arguments (such as `name`).

    Raises:
        ValueError: FIELDS and VOCAB_SIZES differ in length, or the backbone kind is unknown.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int],
                 embedding_dim: int = defaults.EMBEDDING_DIM, backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, selecting: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.embedding_dim = int(embedding_dim)
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        widths = [self.embedding_dim] * len(self.fields)
        self.embedding, self.linear = field_embeddings(self.fields, self.vocab_sizes, widths,
                                                       backbone)
        self.backbone = Backbone(backbone, widths, self.hidden_units, self.cross_layers,
                                 name="backbone")
        self.selecting = bool(selecting)

    def _finish_init(self):
        """Builds every weight (the selector's too); subclasses call it once it exists."""
        batch = dummy_batch(self.fields)
        self.field_weights(self.embedding(batch))
        self(batch)

    def field_weights(self, embedded: tf.Tensor, training: bool = False) -> tf.Tensor:
        """[B, N] weight of each field for each example (while `selecting`).

        Args:
            embedded: the concatenated full-width embeddings [B, N * embedding_dim].
            training: whether this is a training step.

        Returns:
            The field weights [B, N].

        Raises:
            NotImplementedError: always; subclasses give it.
        """
        raise NotImplementedError

    def forward(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple:
        """(click probability [B], {}), the fields weighted while `selecting`."""
        embedded = self.embedding(inputs)
        linear = self.linear(inputs) if self.linear is not None else None
        if self.selecting:
            weights = self.field_weights(embedded, training=training)
            embedded = embedded * ops.repeat(weights, self.embedding_dim, axis=1)
            linear = None if linear is None else linear * weights
        logit = self.backbone((embedded, linear))[:, 0]
        return ops.sigmoid(ops.cast(logit, "float32")), {}

    @property
    def architecture_active(self) -> bool:
        """Whether the model is selecting (gate mode "stochastic" or "deterministic")."""
        return self.selecting

    def set_gate_mode(self, mode: str) -> None:
        """Switches selection on or off and drops the traced functions.

        Args:
            mode: "open": no selection (pretraining); "stochastic" or "deterministic":
                selecting.

        Raises:
            ValueError: MODE is none of these.
        """
        if mode not in ("open", "stochastic", "deterministic"):
            raise ValueError(f"unknown gate mode {mode!r}")
        self.selecting = mode != "open"
        self.drop_traced_functions()

    def get_config(self):
        return {
            "name": self.name,
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "embedding_dim": self.embedding_dim,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
            "selecting": self.selecting,
        }
