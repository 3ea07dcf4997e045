"""The gate regularizer of the paper's Eq. 5: an L0 surrogate plus polarization."""

import keras
from keras import ops

from ihas_keras import defaults


def polarization(p):
    """Mean distance of each example's gate probabilities from that example's mean."""
    return ops.mean(ops.abs(p - ops.mean(p, axis=-1, keepdims=True)))


@keras.saving.register_keras_serializable(package="ihas")
class GateRegularizer(keras.regularizers.Regularizer):
    """R(p) = weight * mean_i sum_j (lam * p_ij - |p_ij - mean_j p_ij|), for p [B, n].

    The first term pushes probabilities down (fewer dimensions); the second pushes each example's
    probabilities away from their mean, towards 0 or 1, so that a threshold separates them.
    `polarization=False` keeps only the first term (the iHAS-3 ablation).
    """

    def __init__(self, lam: float = defaults.LAM, weight: float = defaults.REGULARIZATION_WEIGHT,
                 polarization: bool = True):
        self.lam = float(lam)
        self.weight = float(weight)
        self.polarization = bool(polarization)

    def __call__(self, p):
        per_dim = self.lam * p
        if self.polarization:
            per_dim = per_dim - ops.abs(p - ops.mean(p, axis=-1, keepdims=True))
        return self.weight * ops.mean(ops.sum(per_dim, axis=-1))

    def get_config(self):
        return {"lam": self.lam, "weight": self.weight, "polarization": self.polarization}
