"""A CTR recommender: per-field embeddings of any widths -> a backbone -> click probability."""

from collections.abc import Sequence

import keras
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.embedding import FieldEmbedding


def field_embeddings(fields: Sequence[str], vocab_sizes: Sequence[int], widths: Sequence[int],
                     backbone: str) -> tuple[FieldEmbedding, FieldEmbedding | None]:
    """The embedding layer and, for backbones with a first-order term, the linear one.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size.
        widths: each field's embedding width (0 drops the field).
        backbone: the backbone kind (`Backbone.KINDS`).

    Returns:
        (the embedding layer, with per-field WIDTHS; the linear one, width 1 for every kept
        field, for a backbone in `Backbone.LINEAR_KINDS`, else None).
    """
    embedding = FieldEmbedding(fields, vocab_sizes, widths, name="embedding")
    linear = None
    if backbone in Backbone.LINEAR_KINDS:
        linear = FieldEmbedding(fields, vocab_sizes, [min(w, 1) for w in widths], name="linear")
    return embedding, linear


def dummy_batch(fields: Sequence[str]) -> dict:
    """One all-zero example, to build a model's weights at construction.

    Args:
        fields: the field names.

    Returns:
        {field: int64 zeros [1]}.
    """
    return {field: ops.zeros((1,), "int64") for field in fields}


@keras.saving.register_keras_serializable(package="ihas")
class Recommender(keras.Model):
    """{field: int64 ids [B]} -> click probability [B].

    With every width equal to d it is the base model (no selection); with a cluster's per-field
    widths it is that cluster's retrained model (a width of 0 drops the field, from the
    first-order term too).

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size (its table's rows).
        widths: each field's embedding width; 0 drops the field.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers (backbone "dcn_v2").
        **kwargs: `keras.Model` arguments (such as `name`).

    Raises:
        ValueError: FIELDS, VOCAB_SIZES and WIDTHS differ in length, the backbone kind is
            unknown, or a width is below 0.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int], widths: Sequence[int],
                 backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.widths = [int(w) for w in widths]
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        self.embedding, self.linear = field_embeddings(self.fields, self.vocab_sizes,
                                                       self.widths, backbone)
        self.backbone = Backbone(backbone, self.widths, self.hidden_units, self.cross_layers,
                                 name="backbone")
        self(dummy_batch(self.fields))

    def call(self, inputs):
        linear = self.linear(inputs) if self.linear is not None else None
        logit = self.backbone((self.embedding(inputs), linear))
        return ops.sigmoid(ops.cast(logit[:, 0], "float32"))  # float32 under mixed precision

    def get_config(self):
        return {
            "name": self.name,
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "widths": self.widths,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
        }
