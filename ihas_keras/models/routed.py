"""The routed model: one graph that gates, routes each example to its cluster and scores it."""

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.embedding import FieldEmbedding
from ihas_keras.layers.gate import BernoulliGate
from ihas_keras.layers.router import CentroidRouter
from ihas_keras.models.recommender import Recommender, dummy_batch


@keras.saving.register_keras_serializable(package="ihas")
class RoutedModel(keras.Model):
    """{field: int64 ids [B]} -> {"probability": [B], "cluster": int32 [B]}.

    The search model's embeddings and deterministic gate give the masked embeddings E * m; the
    nearest centroid picks the cluster; `tf.dynamic_partition` sends each example to its
    cluster's `Recommender` (per-field widths `widths[k]`) and `tf.dynamic_stitch` puts the
    probabilities back in input order. All standard TF ops, so the graph serves as it is.
    """

    def __init__(self, fields, vocab_sizes, embedding_dim, widths, backbone=defaults.BACKBONE,
                 hidden_units=defaults.HIDDEN_UNITS, cross_layers=defaults.CROSS_LAYERS,
                 instance_wise=True, bins=defaults.THRESHOLD_BINS,
                 smoothing=defaults.THRESHOLD_SMOOTHING, **kwargs):
        super().__init__(**kwargs)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.embedding_dim = int(embedding_dim)
        self.widths = [[int(w) for w in row] for row in widths]
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        units = self.embedding_dim * len(self.fields)
        self.embedding = FieldEmbedding(self.fields, self.vocab_sizes,
                                        [self.embedding_dim] * len(self.fields), name="embedding")
        self.gate = BernoulliGate(units, mode="deterministic", instance_wise=instance_wise,
                                  bins=bins, smoothing=smoothing, name="gate")
        self.router = CentroidRouter(len(self.widths), units, name="router")
        self.recommenders = [
            Recommender(self.fields, self.vocab_sizes, row, backbone, self.hidden_units,
                        self.cross_layers, name=f"cluster_{k}")
            for k, row in enumerate(self.widths)
        ]
        for layer in (self.embedding, self.gate, self.router):
            layer.trainable = False
        self(dummy_batch(self.fields))

    @classmethod
    def from_search(cls, search, plan, backbone=None, hidden_units=None):
        """A routed model with SEARCH's trained embeddings and gate, PLAN's centroids and widths,
        and fresh (untrained) per-cluster recommenders (BACKBONE defaults to the search's)."""
        model = cls(
            search.fields, search.vocab_sizes, search.embedding_dim, plan.widths().tolist(),
            backbone or search.backbone_kind, hidden_units or search.hidden_units,
            search.cross_layers, search.gate.instance_wise, search.gate.bins,
            search.gate.smoothing,
        )
        model.embedding.set_weights(search.embedding.get_weights())
        model.gate.set_weights(search.gate.get_weights())
        model.router.set_centroids(plan.centroids)
        return model

    def route(self, inputs):
        """Cluster id of each example, int32 [B]."""
        embedded = self.embedding(inputs)
        mask, _ = self.gate(embedded)
        return self.router(embedded * mask)

    def call(self, inputs):
        cluster = self.route(inputs)
        rows = tf.range(tf.shape(cluster)[0])
        parts = tf.dynamic_partition(rows, cluster, len(self.recommenders))
        scored = [
            recommender({f: tf.gather(inputs[f], part) for f in self.fields})
            for recommender, part in zip(self.recommenders, parts, strict=True)
        ]
        probability = tf.dynamic_stitch(parts, scored)
        return {"probability": ops.reshape(probability, (-1,)), "cluster": cluster}

    def get_config(self):
        return {
            "name": self.name,
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "embedding_dim": self.embedding_dim,
            "widths": self.widths,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
            "instance_wise": self.gate.instance_wise,
            "bins": self.gate.bins,
            "smoothing": self.gate.smoothing,
        }
