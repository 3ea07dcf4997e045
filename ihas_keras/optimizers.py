"""The optimizers of every model: a lazy Adam for embedding tables, and the defaults.

Keras's Adam turns an embedding table's sparse gradient into a dense update: every step it
decays the moments (and the weights, with weight decay) of every row of every table, which costs
the whole table per step (keras-team/keras#19992). `LazyAdam` updates, for a sparse gradient,
the moments and the weights of the rows the batch looked up only; dense gradients get Keras's
Adam unchanged.
"""

import keras
import numpy as np
import tensorflow as tf

from ihas_keras import defaults


@keras.saving.register_keras_serializable(package="ihas")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the looked-up rows of a variable with a sparse gradient.

    For a gradient that is `tf.IndexedSlices` (a `tf.gather` of a table, as
    `layers.FieldEmbedding` does), the rows in the batch get Adam's update of their moments and
    their weights, with the bias correction of the optimizer's step count, and decoupled weight
    decay on those rows only; as in Keras's Adam, a row looked up several times in a batch adds
    the sum of its gradient parts to the first moment and the sum of their squares to the
    second. Dense gradients get `keras.optimizers.Adam`'s update exactly.

    Dense Adam also moves a row on the steps the batch did not look it up: its moments decay
    and its weights follow the moments it kept (a trail about ten times its last step, at
    beta_1 = 0.9). With CATCH_UP, each table row keeps the step it was last updated at, and
    when it is next looked up, or `catch_up()` is called, it first takes the steps it missed in
    closed form: moments times beta^k, weights moved by the geometric sum of the missed updates
    and decayed by (1 - lr * weight_decay)^k. That is dense Adam's result for those steps with
    Adam's bias correction held at its value 1 / (1 - beta_1 / sqrt(beta_2)) = 10 steps into
    the trail (the trail's centre; it has decayed to a tenth within 25 steps) and epsilon added
    to the root of the second moment the row kept. Without CATCH_UP, a rare row takes only the steps
    it was seen at. Call `catch_up()` (the `CatchUp` callback does, before every evaluation
    and at the end of training) before reading the weights of a model trained with CATCH_UP.

    A variable gets either sparse gradients (a table) or dense ones, not both.

    Args:
        learning_rate: the learning rate (a float or a schedule).
        catch_up: take the missed steps of rarely looked-up rows, as dense Adam would.
        **kwargs: `keras.optimizers.Adam` arguments (`beta_1`, `beta_2`, `epsilon`,
            `weight_decay`, ...), except `amsgrad`.

    Raises:
        ValueError: `amsgrad=True` (not supported for sparse updates).
    """

    def __init__(self, learning_rate: float = defaults.LEARNING_RATE,
                 catch_up: bool = defaults.LAZY_ADAM_CATCH_UP, **kwargs) -> None:
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam: amsgrad is not supported")
        super().__init__(learning_rate, **kwargs)
        self.catch_up_rows = bool(catch_up)
        self._sparse_keys = set()
        self._table_keys = set()
        self._catch_up_traced = None  # (the table keys it was traced for, the tf.function)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if not self.catch_up_rows:
            self._last_steps = []
            return
        self._last_steps = [  # the step each row was last updated at (exact to 2^24 steps)
            self.add_variable(tuple(v.shape[:1]) + (1,), initializer="zeros", dtype="float32",
                              name="last_step")
            for v in var_list]
        # Adam's bias correction sqrt(1 - beta_2^s) / (1 - beta_1^s) of steps s = 0 (0 there)
        # on to where it is 1 within 1e-8 (18,421 steps at beta_2 = 0.999).
        self._bias_steps = int(np.ceil(np.log(1e-8) / np.log(self.beta_2)))
        steps = np.arange(self._bias_steps + 1, dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            bias = np.sqrt(1 - self.beta_2 ** steps) / (1 - self.beta_1 ** steps)
        self._bias = np.nan_to_num(bias).astype("float32")  # numpy: built inside a trace too
        ratio = self.beta_1 / np.sqrt(self.beta_2)
        self._trail_ratio = ratio
        self._log_powers = np.log([self.beta_1, self.beta_2, ratio]).astype("float32")

    def get_config(self):
        return {**super().get_config(), "catch_up": self.catch_up_rows}

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else (
            trainable_variables)
        self._sparse_keys = {self._var_key(v) for g, v in zip(grads, variables, strict=True)
                             if isinstance(g, tf.IndexedSlices)}
        self._table_keys |= self._sparse_keys
        return super().apply(grads, trainable_variables)

    def _apply_weight_decay(self, variables):
        # Tables with sparse gradients decay in `update_step`, on their looked-up rows only.
        super()._apply_weight_decay([v for v in variables
                                     if self._var_key(v) not in self._sparse_keys])

    def _missed(self, variable, weights, m, v, last, learning_rate):
        """WEIGHTS, M, V ([R, D]) of rows last updated at steps LAST ([R, 1]) moved on to the
        optimizer's step count, and that count."""
        now = tf.cast(self.iterations, "float32")
        missed = now - last
        log_powers = tf.constant(self._log_powers)
        decays = self.weight_decay is not None and self._use_weight_decay(variable)
        if decays:
            decay = tf.math.log1p(-tf.cast(learning_rate * self.weight_decay, "float32"))
            log_powers = tf.concat([log_powers, decay[None]], 0)
        powers = tf.split(tf.exp(missed * log_powers), 4 if decays else 3, axis=1)
        ratio = self._trail_ratio
        # The bias correction at the trail's centre of mass, 1 / (1 - ratio) steps in.
        centre = last + tf.minimum(missed, round(1 / (1 - ratio)))
        at = tf.cast(tf.minimum(centre, self._bias_steps), "int32")
        bias = tf.gather(tf.constant(self._bias), at)
        trail = (tf.cast(learning_rate, "float32") * ratio / (1 - ratio)) * bias * (1 - powers[2])
        moved = weights - trail * m / (tf.sqrt(v) + self.epsilon)
        if decays:
            moved *= powers[3]
        return moved, powers[0] * m, powers[1] * v, now

    def catch_up(self) -> None:
        """Moves every table row not looked up since its last update on to the current step.

        One traced function does it (about 4x faster than eager on a 1M-row vocabulary), traced
        again only when the set of tables changes.
        """
        if not self.catch_up_rows or not self.built:
            return
        keys = frozenset(self._table_keys)
        if self._catch_up_traced is None or self._catch_up_traced[0] != keys:
            self._catch_up_traced = (keys, tf.function(self._catch_up_tables))
        self._catch_up_traced[1]()

    def _catch_up_tables(self) -> None:
        for variable in self._trainable_variables:
            if self._var_key(variable) not in self._table_keys:
                continue
            index = self._get_variable_index(variable)
            m, v = self._momentums[index], self._velocities[index]
            last = self._last_steps[index]
            weights, m_now, v_now, now = self._missed(
                variable, variable.value, m.value, v.value, last.value,
                self._get_current_learning_rate())
            variable.assign(weights)
            m.assign(m_now)
            v.assign(v_now)
            last.assign(tf.fill(tf.shape(last.value), now))

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, position = tf.unique(gradient.indices)
        parts = tf.cast(gradient.values, dtype)
        grad = tf.math.unsorted_segment_sum(parts, position, tf.shape(rows)[0])
        # As Keras's Adam does with a sparse gradient: a row's parts squared, then summed.
        squares = tf.math.unsorted_segment_sum(tf.square(parts), position, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        lr = tf.cast(learning_rate, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        target = variable.value if isinstance(variable, keras.Variable) else variable
        weights, m_rows, v_rows = tf.gather(target, rows), tf.gather(m, rows), tf.gather(v, rows)
        if self.catch_up_rows:
            last = self._last_steps[index].value
            weights, m_rows, v_rows, now = self._missed(
                variable, weights, m_rows, v_rows, tf.gather(last, rows), learning_rate)
            last.scatter_update(tf.IndexedSlices(tf.fill([tf.shape(rows)[0], 1], now + 1), rows))
        m_rows = beta_1 * m_rows + (1 - beta_1) * grad
        v_rows = beta_2 * v_rows + (1 - beta_2) * squares
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        change = alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        if self.weight_decay is not None and self._use_weight_decay(variable):
            change += lr * tf.cast(self.weight_decay, dtype) * weights
        target.scatter_update(tf.IndexedSlices(weights - change, rows))


class CatchUp(keras.callbacks.Callback):
    """Calls `LazyAdam.catch_up()` on the model's lazy optimizers before every evaluation.

    Evaluation, early stopping's saved weights and the weights after `fit` then see every table
    row moved on to the current step, as with dense Adam. Harmless for other optimizers.
    """

    def _catch_up(self) -> None:
        for name in ("optimizer", "architecture_optimizer"):
            optimizer = getattr(self.model, name, None)
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # loss scaling
            if isinstance(optimizer, LazyAdam):
                optimizer.catch_up()

    def on_test_begin(self, logs=None):
        self._catch_up()

    def on_train_end(self, logs=None):
        self._catch_up()


def base_optimizer(lazy: bool = defaults.LAZY_ADAM, catch_up: bool = defaults.LAZY_ADAM_CATCH_UP,
                   ) -> keras.optimizers.Optimizer:
    """The optimizer of every model's base parameters (embeddings, backbone).

    Adam at `defaults.LEARNING_RATE` with decoupled weight decay `defaults.WEIGHT_DECAY`.

    Args:
        lazy: `LazyAdam` (embedding rows updated only when looked up); False: Keras's dense
            Adam.
        catch_up: with LAZY, rows take the steps they missed when next looked up
            (`LazyAdam`'s CATCH_UP).

    Returns:
        A fresh optimizer.
    """
    if not lazy:
        return keras.optimizers.Adam(defaults.LEARNING_RATE, weight_decay=defaults.WEIGHT_DECAY)
    return LazyAdam(defaults.LEARNING_RATE, catch_up=catch_up,
                    weight_decay=defaults.WEIGHT_DECAY)


def architecture_optimizer(learning_rate: float = defaults.GATE_LEARNING_RATE,
                           ) -> keras.optimizers.Optimizer:
    """The optimizer of the architecture parameters (gates, controllers): plain Adam.

    Args:
        learning_rate: its learning rate.

    Returns:
        A fresh `keras.optimizers.Adam`.
    """
    return keras.optimizers.Adam(learning_rate)
