"""Nearest-centroid routing, in the served graph, and the points it routes."""

import keras
import tensorflow as tf
from keras import ops
from numpy.typing import ArrayLike

# What K-Means clusters (and the router routes): the gate probabilities p, the deterministic
# masks m, or the paper's masked embeddings E * m.
REPRESENTATIONS = ("probability", "mask", "masked_embedding")


def check_representation(representation: str, where: str) -> str:
    """REPRESENTATION, if it is one of `REPRESENTATIONS`.

    Args:
        representation: what is to be clustered.
        where: who asks, to name in the error (such as "fit_clusters").

    Returns:
        REPRESENTATION.

    Raises:
        ValueError: REPRESENTATION is not one of `REPRESENTATIONS`; the message names WHERE and
            the allowed ones.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"{where}: unknown representation {representation!r}; allowed: "
                         f"{', '.join(REPRESENTATIONS)}")
    return representation


def routing_points(representation: str, embedded: tf.Tensor, mask: tf.Tensor,
                   p: tf.Tensor) -> tf.Tensor:
    """The points of REPRESENTATION, each example's row of p, m or E * m.

    Args:
        representation: one of `REPRESENTATIONS`.
        embedded: the embeddings E [B, N*].
        mask: the deterministic masks m [B, N*].
        p: the gate probabilities [B, N*].

    Returns:
        The points [B, N*].

    Raises:
        ValueError: REPRESENTATION is not one of `REPRESENTATIONS`.
    """
    check_representation(representation, "routing_points")
    if representation == "probability":
        return p
    if representation == "mask":
        return mask
    return ops.cast(embedded, mask.dtype) * mask


@keras.saving.register_keras_serializable(package="ihas")
class CentroidRouter(keras.layers.Layer):
    """Points [B, D] -> index of the nearest of K centroids (squared Euclidean), int32 [B].

    The centroids are a non-trainable weight: set them with `set_centroids`; they are saved with
    the model.

    Args:
        num_clusters: K, the number of centroids.
        dim: D, the points' (and the centroids') dimension.
        **kwargs: `keras.layers.Layer` arguments (such as `name`).
    """

    def __init__(self, num_clusters: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_clusters = int(num_clusters)
        self.dim = int(dim)

    def build(self, input_shape=None):
        self.centroids = self.add_weight(
            name="centroids", shape=(self.num_clusters, self.dim), initializer="zeros",
            trainable=False,
        )
        self.built = True

    def set_centroids(self, centroids: ArrayLike) -> None:
        """Sets the centroids (the layer must be built).

        Args:
            centroids: the K centroids [K, D].
        """
        self.centroids.assign(ops.convert_to_tensor(centroids, self.centroids.dtype))

    def call(self, points):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid.
        scores = ops.sum(ops.square(self.centroids), axis=-1) - 2 * ops.matmul(
            points, ops.transpose(self.centroids)
        )
        return ops.cast(ops.argmin(scores, axis=-1), "int32")

    def compute_output_spec(self, points):
        return keras.KerasTensor((points.shape[0],), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "num_clusters": self.num_clusters, "dim": self.dim}
