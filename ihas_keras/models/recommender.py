"""A CTR recommender: per-field embeddings of any widths -> a backbone -> click probability."""

import keras
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.embedding import FieldEmbedding


def field_embeddings(fields, vocab_sizes, widths, backbone: str):
    """The embedding layer (per-field WIDTHS) and, for backbones with a first-order term, the
    linear one (width 1 for every kept field), else None."""
    embedding = FieldEmbedding(fields, vocab_sizes, widths, name="embedding")
    linear = None
    if backbone in Backbone.LINEAR_KINDS:
        linear = FieldEmbedding(fields, vocab_sizes, [min(w, 1) for w in widths], name="linear")
    return embedding, linear


def dummy_batch(fields) -> dict:
    """One all-zero example, to build a model's weights at construction."""
    return {field: ops.zeros((1,), "int64") for field in fields}


@keras.saving.register_keras_serializable(package="ihas")
class Recommender(keras.Model):
    """{field: int64 ids [B]} -> click probability [B].

    With every width equal to d it is the base model (no selection); with a cluster's per-field
    widths it is that cluster's retrained model (a width of 0 drops the field, from the
    first-order term too).
    """

    def __init__(self, fields, vocab_sizes, widths, backbone=defaults.BACKBONE,
                 hidden_units=defaults.HIDDEN_UNITS, cross_layers=defaults.CROSS_LAYERS,
                 **kwargs):
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
        return ops.sigmoid(logit[:, 0])

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
