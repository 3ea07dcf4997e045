"""Explicit feature interactions: the FM second-order term and DCN-v2 cross layers."""

import keras
from keras import ops

from ihas_keras import defaults


@keras.saving.register_keras_serializable(package="ihas")
class FMInteraction(keras.layers.Layer):
    """Factorization-machine pairwise term: [B, F, d] -> [B, 1].

    0.5 * sum_k((sum_f e_fk)^2 - sum_f e_fk^2), which equals sum_{f<g} <e_f, e_g>.
    """

    def call(self, inputs):
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_squares = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package="ihas")
class CrossNetV2(keras.layers.Layer):
    """DCN-v2 full-rank cross layers on [B, D]: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l.

    Args:
        num_layers: how many cross layers.
        **kwargs: `keras.layers.Layer` arguments (such as `name`).
    """

    def __init__(self, num_layers: int = defaults.CROSS_LAYERS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernels = [
            self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name=f"kernel_{i}")
            for i in range(self.num_layers)
        ]
        self.biases = [
            self.add_weight(shape=(dim,), initializer="zeros", name=f"bias_{i}")
            for i in range(self.num_layers)
        ]

    def call(self, inputs):
        x = inputs
        for kernel, bias in zip(self.kernels, self.biases, strict=True):
            x = inputs * (ops.matmul(x, kernel) + bias) + x
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}
