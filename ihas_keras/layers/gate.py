"""Bernoulli gates over embedding dimensions, per example (the heart of iHAS)."""

import math

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.threshold import ThresholdSearcher


def _straight_through_sample(logits, p, u, temperature: float):
    """The straight-through binary Gumbel-Softmax sample of keep probabilities P = sigmoid(LOGITS).

    Forward: the hard 0/1 sample, soft > 0.5 for the tempered soft sample
    soft = sigmoid((logits + L) / temperature) with Logistic noise L = log u - log(1 - u), which
    is u > 1 - p (a Bernoulli(p) draw: one comparison). Backward: the gradient of soft, computed
    only when a gradient is asked for (the architecture steps), so the base steps, whose
    gradients do not reach the gate, pay for no noise arithmetic.
    """

    @tf.custom_gradient
    def sample(logits):
        def grad(upstream):
            soft = tf.sigmoid((logits + tf.math.log(u) - tf.math.log1p(-u)) / temperature)
            return upstream * soft * (1 - soft) / temperature

        return tf.cast(u > 1 - p, logits.dtype), grad

    return sample(logits)


@keras.saving.register_keras_serializable(package="ihas")
class BernoulliGate(keras.layers.Layer):
    """Per-example keep probabilities p = sigmoid(Dense(E)) over the N* embedding dimensions.

    Call on the concatenated embeddings E [B, N*]; returns (mask [B, N*], p [B, N*]).
    Modes:
      - "stochastic": in training, a straight-through Gumbel-Softmax sample at `temperature`
        (hard 0/1 forward, the tempered soft sample's gradient backward); outside training,
        the deterministic mask below, so that evaluating the search model needs no noise;
      - "deterministic": mask = p > t, with t each example's histogram threshold (TF ops only),
        or one fixed GLOBAL_THRESHOLD for every example when it is given;
      - "open": all ones (pretraining).
    `instance_wise=False` learns one probability vector shared by every example (iHAS-4); with
    `rank` r > 0 the N* x N* kernel is factored as N* x r times r x N* (about 2r / N* of the
    multiply-adds).
    The gate reads E through a stop-gradient: embeddings learn only from the prediction path.

    Args:
        units: N*, the width of the concatenated embeddings (one gate per dimension).
        mode: "stochastic", "deterministic" or "open" (see above).
        instance_wise: per-example gates; False: one probability vector for all examples.
        temperature: of the straight-through Gumbel-Softmax sample.
        initial_probability: every gate's starting keep probability.
        bins: the histogram threshold searcher's bins.
        smoothing: the histogram threshold searcher's moving-average width, in bins.
        seed: the gate noise's seed.
        global_threshold: the deterministic masks' one threshold for every example (the plan's,
            `cluster.ClusterPlan.threshold`); None: each example's histogram threshold.
        rank: 0: a full N* x N* kernel; r > 0: a kernel of rank r (two factors).
        **kwargs: `keras.layers.Layer` arguments (such as `name`).

    Raises:
        ValueError: MODE is not one of `MODES`, or BINS < 3 or SMOOTHING < 1.
    """

    MODES = ("stochastic", "deterministic", "open")

    def __init__(self, units: int, mode: str = "stochastic", instance_wise: bool = True,
                 temperature: float = defaults.TEMPERATURE,
                 initial_probability: float = defaults.INITIAL_PROBABILITY,
                 bins: int = defaults.THRESHOLD_BINS,
                 smoothing: int = defaults.THRESHOLD_SMOOTHING, seed: int | None = None,
                 global_threshold: float | None = None, rank: int = defaults.GATE_RANK,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.mode = mode
        self.instance_wise = bool(instance_wise)
        self.temperature = float(temperature)
        self.initial_probability = float(initial_probability)
        self.bins = int(bins)
        self.smoothing = int(smoothing)
        self.threshold = ThresholdSearcher(self.bins, self.smoothing, name="threshold")
        self.seed = seed
        self.global_threshold = None if global_threshold is None else float(global_threshold)
        self.rank = int(rank)
        if self.rank < 0:
            raise ValueError(f"BernoulliGate: rank must be 0 (full) or positive, got {rank}")
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def mode(self) -> str:
        """The gate's mode, one of `MODES`; setting another value raises ValueError."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in self.MODES:
            raise ValueError(f"BernoulliGate: mode {value!r} is not one of {self.MODES}")
        self._mode = value

    def build(self, input_shape=None):
        p0 = min(max(self.initial_probability, 1e-6), 1 - 1e-6)
        bias = keras.initializers.Constant(math.log(p0 / (1 - p0)))
        if self.instance_wise and self.rank:
            self.kernel_in = self.add_weight(
                name="kernel_in", shape=(self.units, self.rank), initializer="glorot_uniform")
            self.kernel_out = self.add_weight(
                name="kernel_out", shape=(self.rank, self.units), initializer="glorot_uniform")
        elif self.instance_wise:
            self.kernel = self.add_weight(
                name="kernel", shape=(self.units, self.units), initializer="glorot_uniform"
            )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=bias)
        self.built = True

    def logits(self, embedded: tf.Tensor) -> tf.Tensor:
        """The gate logits, whose sigmoid is the keep probabilities p.

        Args:
            embedded: the concatenated embeddings E [B, N*], read through a stop-gradient.

        Returns:
            Logits [B, N*]: Dense(E), or the bias broadcast to every example when not
            `instance_wise`.
        """
        if not self.instance_wise:
            return ops.broadcast_to(self.bias, ops.shape(embedded))
        if self.rank:
            low = ops.matmul(ops.stop_gradient(embedded), self.kernel_in)
            return ops.matmul(low, self.kernel_out) + self.bias
        return ops.matmul(ops.stop_gradient(embedded), self.kernel) + self.bias

    def call(self, embedded, training=None):
        logits = ops.cast(self.logits(embedded), "float32")  # p and masks in float32 always
        p = ops.sigmoid(logits)
        if self.mode == "open":
            return ops.ones_like(p), p
        if self.mode == "stochastic" and training:
            # The difference of the two Gumbel(0, 1) draws of a binary Gumbel-Softmax is
            # Logistic(0, 1): softmax([log p, log 1-p] + g) / tau)[0] = sigmoid((logit + L) / tau).
            u = keras.random.uniform(ops.shape(p), 1e-6, 1 - 1e-6, seed=self.seed_generator)
            return _straight_through_sample(logits, p, u, self.temperature), p
        if self.global_threshold is not None:
            return ops.cast(p > self.global_threshold, p.dtype), p
        return ops.cast(p > self.threshold(p)[:, None], p.dtype), p

    def compute_output_spec(self, embedded, training=None):
        spec = keras.KerasTensor(embedded.shape, dtype="float32")
        return spec, spec

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "mode": self.mode,
            "instance_wise": self.instance_wise,
            "temperature": self.temperature,
            "initial_probability": self.initial_probability,
            "bins": self.bins,
            "smoothing": self.smoothing,
            "seed": self.seed,
            "global_threshold": self.global_threshold,
            "rank": self.rank,
        }
