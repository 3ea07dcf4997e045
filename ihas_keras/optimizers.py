"""The optimizers of every model: a lazy Adam for embedding tables, and the defaults.

Keras's Adam turns an embedding table's sparse gradient into a dense update: every step it
decays the moments (and the weights, with weight decay) of every row of every table, which costs
the whole table per step (keras-team/keras#19992). `LazyAdam` updates, for a sparse gradient,
the moments and the weights of the rows the batch looked up only; dense gradients get Keras's
Adam unchanged.
"""

import keras
import tensorflow as tf

from ihas_keras import defaults


@keras.saving.register_keras_serializable(package="ihas")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the looked-up rows of a variable with a sparse gradient.

    For a gradient that is `tf.IndexedSlices` (a `tf.gather` of a table, as
    `layers.FieldEmbedding` does), the rows in the batch get Adam's update of their moments and
    their weights, with the bias correction of the optimizer's step count, and decoupled weight
    decay on those rows only; rows not in the batch keep their moments and their weights. Dense
    Adam would also decay the untouched rows' moments and move their weights by the moments they
    kept: for a row seen every step the two are the same, for a rare row lazy Adam's steps are
    the ones it would have taken when seen, without the trail in between. Dense gradients get
    `keras.optimizers.Adam`'s update exactly.

    Args:
        learning_rate: the learning rate (a float or a schedule).
        **kwargs: `keras.optimizers.Adam` arguments (`beta_1`, `beta_2`, `epsilon`,
            `weight_decay`, ...), except `amsgrad`.

    Raises:
        ValueError: `amsgrad=True` (not supported for sparse updates).
    """

    def __init__(self, learning_rate: float = defaults.LEARNING_RATE, **kwargs) -> None:
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam: amsgrad is not supported")
        super().__init__(learning_rate, **kwargs)
        self._sparse_keys = set()

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else (
            trainable_variables)
        self._sparse_keys = {self._var_key(v) for g, v in zip(grads, variables, strict=True)
                             if isinstance(g, tf.IndexedSlices)}
        return super().apply(grads, trainable_variables)

    def _apply_weight_decay(self, variables):
        # Tables with sparse gradients decay in `update_step`, on their looked-up rows only.
        super()._apply_weight_decay([v for v in variables
                                     if self._var_key(v) not in self._sparse_keys])

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position,
                                            tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        lr = tf.cast(learning_rate, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        change = alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        target = variable.value if isinstance(variable, keras.Variable) else variable
        if self.weight_decay is not None and self._use_weight_decay(variable):
            change += lr * tf.cast(self.weight_decay, dtype) * tf.gather(target, rows)
        target.scatter_sub(tf.IndexedSlices(change, rows))


def base_optimizer(lazy: bool = defaults.LAZY_ADAM) -> keras.optimizers.Optimizer:
    """The optimizer of every model's base parameters (embeddings, backbone).

    Adam at `defaults.LEARNING_RATE` with decoupled weight decay `defaults.WEIGHT_DECAY`.

    Args:
        lazy: `LazyAdam` (embedding rows updated only when looked up); False: Keras's dense
            Adam.

    Returns:
        A fresh optimizer.
    """
    kind = LazyAdam if lazy else keras.optimizers.Adam
    return kind(defaults.LEARNING_RATE, weight_decay=defaults.WEIGHT_DECAY)


def architecture_optimizer(learning_rate: float = defaults.GATE_LEARNING_RATE,
                           ) -> keras.optimizers.Optimizer:
    """The optimizer of the architecture parameters (gates, controllers): plain Adam.

    Args:
        learning_rate: its learning rate.

    Returns:
        A fresh `keras.optimizers.Adam`.
    """
    return keras.optimizers.Adam(learning_rate)
