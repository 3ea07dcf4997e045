"""The gate regularizer of the paper's Eq. 5: an L0 surrogate plus polarization."""

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults


def polarization(p: tf.Tensor) -> tf.Tensor:
    """Mean distance of each example's gate probabilities from that example's mean.

    Args:
        p: gate probabilities [B, n].

    Returns:
        The mean of |p_ij - mean_j p_ij| over every example and dimension, a scalar.
    """
    return ops.mean(ops.abs(p - ops.mean(p, axis=-1, keepdims=True)))


@keras.saving.register_keras_serializable(package="ihas")
class GateRegularizer(keras.regularizers.Regularizer):
    """R(p) = weight * mean_i sum_j (lam * p_ij - |p_ij - mean_j p_ij|), for p [B, n].

    The first term pushes probabilities down (fewer dimensions); the second pushes each example's
    probabilities away from their mean, towards 0 or 1, so that a threshold separates them.
    `polarization=False` keeps only the first term (the iHAS-3 ablation).

    Args:
        lam: the weight of the first (L0 surrogate) term against polarization.
        weight: the factor of the whole expression (the regularizer's weight in the gate loss).
        polarization: keep the polarization term; False drops it.
    """

    def __init__(self, lam: float = defaults.LAM, weight: float = defaults.REGULARIZATION_WEIGHT,
                 polarization: bool = True) -> None:
        self.lam = float(lam)
        self.weight = float(weight)
        self.polarization = bool(polarization)

    def __call__(self, p: tf.Tensor) -> tf.Tensor:
        """R(p), a scalar, for gate probabilities P [B, n]."""
        per_dim = self.lam * p
        if self.polarization:
            per_dim = per_dim - ops.abs(p - ops.mean(p, axis=-1, keepdims=True))
        return self.weight * ops.mean(ops.sum(per_dim, axis=-1))

    def get_config(self):
        return {"lam": self.lam, "weight": self.weight, "polarization": self.polarization}
