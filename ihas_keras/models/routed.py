"""The routed model: one graph that gates, routes each example to its cluster and scores it."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.embedding import FieldEmbedding
from ihas_keras.layers.gate import BernoulliGate
from ihas_keras.layers.router import CentroidRouter, check_representation, routing_points
from ihas_keras.layers.towers import SharedTowers, kept_columns
from ihas_keras.models.recommender import Recommender, dummy_batch

if TYPE_CHECKING:
    from ihas_keras.cluster import ClusterPlan
    from ihas_keras.models.search import SearchModel


@keras.saving.register_keras_serializable(package="ihas")
class RoutedModel(keras.Model):
    """{field: int64 ids [B]} -> {"probability": [B], "cluster": int32 [B]}.

    The search model's embeddings and deterministic gate give each example's routing point (its
    gate probabilities p, its mask m or its masked embeddings E * m, as the plan clustered); the
    nearest centroid picks the cluster; `tf.dynamic_partition` sends each example to its
    cluster's `Recommender` (per-field widths `widths[k]`) and `tf.dynamic_stitch` puts the
    probabilities back in input order. All standard TF ops, so the graph serves as it is.

    With COLUMNS, the clusters share one embedding instead (`layers.towers.SharedTowers`): one
    trainable full-width embedding, and per cluster a tower over the columns it keeps.

    ROUTING "distilled" (with COLUMNS only) serves without the search model's parts: a linear
    router over the towers' own embedding picks the cluster (`distill.distill_router` trains it
    to reproduce the gate routing), so one lookup feeds both the router and the towers.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size (its table's rows).
        embedding_dim: every field's full width in the search model's embeddings.
        widths: [K, N] per-cluster, per-field widths of the recommenders (K clusters).
        backbone: the recommenders' backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the recommenders' MLP layer sizes.
        cross_layers: DCN-v2 cross layers (backbone "dcn_v2").
        instance_wise: per-example gates; False: one vector for all examples (iHAS-4).
        bins: the gate's histogram threshold searcher's bins.
        smoothing: the gate's histogram threshold searcher's moving-average width, in bins.
        representation: what the router compares with the centroids
            (`layers.router.REPRESENTATIONS`).
        columns: None: one `Recommender` per cluster; else K lists of kept column indices
            (`layers.towers.kept_columns`) for towers over one shared embedding.
        routing: "gate" (the search model's embeddings, gate and centroids) or "distilled" (a
            linear router over the towers' embedding); one of `ROUTINGS`.
        threshold: the gate's one threshold for every example (`ClusterPlan.serving_threshold`);
            None: each example's histogram threshold.
        gate_rank: the gate kernel's rank, as the search model's; 0: full.
        **kwargs: `keras.Model` arguments (such as `name`).

    Raises:
        ValueError: an unknown representation or routing, "distilled" without COLUMNS, or
            COLUMNS whose per-field counts are not WIDTHS.
    """

    ROUTINGS = ("gate", "distilled")

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int], embedding_dim: int,
                 widths: Sequence[Sequence[int]], backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, instance_wise: bool = True,
                 bins: int = defaults.THRESHOLD_BINS,
                 smoothing: int = defaults.THRESHOLD_SMOOTHING,
                 representation: str = defaults.REPRESENTATION,
                 columns: Sequence[Sequence[int]] | None = None, routing: str = "gate",
                 threshold: float | None = None, gate_rank: int = defaults.GATE_RANK,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.representation = check_representation(representation, "RoutedModel")
        if routing not in self.ROUTINGS:
            raise ValueError(f"RoutedModel: unknown routing {routing!r}; allowed: "
                             f"{', '.join(self.ROUTINGS)}")
        if routing == "distilled" and columns is None:
            raise ValueError("RoutedModel: distilled routing needs shared towers (columns)")
        self.routing = routing
        self.instance_wise, self.bins, self.smoothing = bool(instance_wise), int(bins), int(
            smoothing)
        self.threshold = None if threshold is None else float(threshold)
        self.gate_rank = int(gate_rank)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.embedding_dim = int(embedding_dim)
        self.widths = [[int(w) for w in row] for row in widths]
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        units = self.embedding_dim * len(self.fields)
        self.embedding = self.gate = None
        if routing == "gate":
            self.embedding = FieldEmbedding(self.fields, self.vocab_sizes,
                                            [self.embedding_dim] * len(self.fields),
                                            name="embedding")
            self.gate = BernoulliGate(units, mode="deterministic", instance_wise=instance_wise,
                                      bins=bins, smoothing=smoothing,
                                      global_threshold=self.threshold, rank=self.gate_rank,
                                      name="gate")
            self.router = CentroidRouter(len(self.widths), units, name="router")
        else:
            self.router = keras.layers.Dense(len(self.widths), name="router")
        self.recommenders, self.towers = [], None
        if columns is None:
            self.recommenders = [
                Recommender(self.fields, self.vocab_sizes, row, backbone, self.hidden_units,
                            self.cross_layers, name=f"cluster_{k}")
                for k, row in enumerate(self.widths)
            ]
        else:
            self.towers = SharedTowers(self.fields, self.vocab_sizes, self.embedding_dim,
                                       columns, backbone, self.hidden_units, self.cross_layers,
                                       name="towers")
            if self.towers.widths().tolist() != self.widths:
                raise ValueError("RoutedModel: the kept columns' per-field counts "
                                 f"{self.towers.widths().tolist()} are not the widths "
                                 f"{self.widths}")
        self(dummy_batch(self.fields))
        # Frozen after they are built, so that `distill.distill_router` can train the router.
        for layer in (self.embedding, self.gate, self.router):
            if layer is not None:
                layer.trainable = False

    @classmethod
    def from_search(cls, search: "SearchModel", plan: "ClusterPlan", backbone: str | None = None,
                    hidden_units: Sequence[int] | None = None,
                    shared: bool = defaults.SHARED_EMBEDDING) -> "RoutedModel":
        """A routed model from a trained search model and its cluster plan.

        Args:
            search: the trained search model; its embeddings and gate are copied.
            plan: the cluster plan; its centroids and widths are used.
            backbone: the recommenders' backbone; None: the search's.
            hidden_units: the recommenders' MLP layer sizes; None: the search's.
            shared: per-cluster towers over one shared embedding, not one recommender each.

        Returns:
            The routed model, with SEARCH's trained embeddings and gate, PLAN's centroids and
            widths, and fresh (untrained) per-cluster recommenders or towers.
        """
        model = cls(
            search.fields, search.vocab_sizes, search.embedding_dim, plan.widths().tolist(),
            backbone or search.backbone_kind, hidden_units or search.hidden_units,
            search.cross_layers, search.gate.instance_wise, search.gate.bins,
            search.gate.smoothing, plan.representation,
            kept_columns(plan.kept_dimensions()) if shared else None,
            threshold=plan.serving_threshold(), gate_rank=search.gate.rank,
        )
        model.embedding.set_weights(search.embedding.get_weights())
        model.gate.set_weights(search.gate.get_weights())
        model.router.set_centroids(plan.centroids)
        return model

    def route(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """Cluster id of each example.

        Args:
            inputs: {field: int64 ids [B]}.

        Returns:
            The cluster ids, int32 [B].
        """
        if self.routing == "distilled":
            return self.distilled_route(self.towers.embed(inputs)[0])
        embedded = self.embedding(inputs)
        mask, p = self.gate(embedded)
        return self.router(routing_points(self.representation, embedded, mask, p))

    def distilled_route(self, embedded: tf.Tensor) -> tf.Tensor:
        """Cluster ids from the towers' embeddings, by the distilled router.

        Args:
            embedded: `SharedTowers.embed`'s embeddings [B, D].

        Returns:
            The cluster ids, int32 [B].
        """
        return ops.cast(ops.argmax(self.router(embedded), axis=-1), "int32")

    def call(self, inputs):
        if self.routing == "distilled":
            embedded, linear = self.towers.embed(inputs)
            cluster = self.distilled_route(embedded)
            return {"probability": self.towers.score(embedded, linear, cluster),
                    "cluster": cluster}
        cluster = self.route(inputs)
        if self.towers is not None:
            probability = self.towers((inputs, cluster))
            return {"probability": probability, "cluster": cluster}
        rows = tf.range(tf.shape(cluster)[0])
        parts = tf.dynamic_partition(rows, cluster, len(self.recommenders))
        scored = [
            recommender({f: tf.gather(inputs[f], part) for f in self.fields})
            for recommender, part in zip(self.recommenders, parts, strict=True)
        ]
        probability = tf.dynamic_stitch(parts, scored)
        return {"probability": ops.reshape(probability, (-1,)), "cluster": cluster}

    @classmethod
    def from_config(cls, config):
        # Models saved before the representation was a setting routed on E * m.
        return cls(**{"representation": "masked_embedding", **config})

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
            "instance_wise": self.instance_wise,
            "bins": self.bins,
            "smoothing": self.smoothing,
            "representation": self.representation,
            "columns": None if self.towers is None else self.towers.columns,
            "routing": self.routing,
            "threshold": self.threshold,
            "gate_rank": self.gate_rank,
        }
