"""A stack of Dense layers (the deep part of a CTR model), without an output unit."""

from collections.abc import Callable, Sequence

import keras

from ihas_keras import defaults


@keras.saving.register_keras_serializable(package="ihas")
class MLP(keras.layers.Layer):
    """Dense(units, activation) for each of `hidden_units`, each followed by Dropout if > 0.

    [B, D] -> [B, hidden_units[-1]] (the input itself if `hidden_units` is empty).

    Args:
        hidden_units: the layer sizes.
        activation: every Dense layer's activation (anything `keras.activations.get` takes).
        dropout: the Dropout rate after each Dense layer; 0 for none.
        **kwargs: `keras.layers.Layer` arguments (such as `name`).
    """

    def __init__(self, hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 activation: str | Callable = "relu", dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(units) for units in hidden_units]
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.dense_layers = [
            keras.layers.Dense(units, activation=self.activation, name=f"dense_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.dropout_layer = keras.layers.Dropout(self.dropout) if self.dropout > 0 else None

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense in self.dense_layers:
            dense.build(shape)
            shape = (*shape[:-1], dense.units)

    def call(self, inputs, training=None):
        x = inputs
        for dense in self.dense_layers:
            x = dense(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        units = self.hidden_units[-1] if self.hidden_units else input_shape[-1]
        return (*input_shape[:-1], units)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
        }
