"""The bi-level base model of the iHAS search model and the field-selection baselines.

A base step on every training batch updates the base parameters (embeddings, backbone); after
every `every` base steps an architecture step on the next validation batch updates the
architecture parameters (the iHAS gates, the AdaFS controller, AutoField's keep/drop logits).
"""

from collections.abc import Callable

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults, optimizers


class ArchSchedule(keras.callbacks.Callback):
    """The architecture steps of a `BilevelModel`: a callback of its `fit`, never saved.

    After each training batch, once the base steps this schedule counted (over every `fit` it
    was part of) have passed another multiple of EVERY while `architecture_active`, the model's
    architecture step runs on the next VALIDATION batch, in its own `tf.function` and through
    the model's distribution strategy (`strategy.run`), outside the traced training step.
    VALIDATION is repeated as needed, without the prefetch tf.data would add (that would read a
    validation batch ahead of its step); its iterator lives as long as the schedule, across
    `fit` calls.

    Args:
        validation: (features, label) batches; None: no architecture steps.
        every: base steps between two architecture steps.

    Raises:
        ValueError: EVERY is below 1.
    """

    def __init__(self, validation: tf.data.Dataset | None = None,
                 every: int = defaults.MAX_GATE_EVERY) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"gate_every must be at least 1, got {every}")
        self.validation, self.every = validation, int(every)
        self._iterator = self._step = None
        self._base_steps = self._epoch_start = 0  # base steps counted by this schedule

    def on_train_begin(self, logs=None):
        if self.validation is None:
            return
        self._step = self.model.make_architecture_function()
        if self._iterator is None:
            options = tf.data.Options()
            options.experimental_optimization.inject_prefetch = False
            strategy = self.model.distribute_strategy
            self._iterator = iter(strategy.experimental_distribute_dataset(
                self.validation.repeat().with_options(options)))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._base_steps

    def on_train_batch_end(self, batch, logs=None):
        # BATCH is the epoch's last step so far (several with `steps_per_execution`).
        base_steps = self._epoch_start + batch + 1
        due = base_steps // self.every - self._base_steps // self.every
        self._base_steps = base_steps
        if self._iterator is None:
            return
        if self.model.architecture_active:
            for _ in range(due):
                self._step(self._iterator)


def labels(y: tf.Tensor) -> tf.Tensor:
    """Labels of any shape [B] or [B, 1] as float32 [B].

    Args:
        y: the labels, [B] or [B, 1].

    Returns:
        The labels as float32 [B].
    """
    return ops.cast(ops.reshape(y, (-1,)), "float32")


class BilevelModel(keras.Model):
    """{field: int64 ids [B]} -> click probability [B], trained bi-level.

    Subclasses give `forward` (the prediction and what their metrics need), their
    `architecture_variables`, `architecture_active` and `set_gate_mode`, and may add an
    `architecture_penalty` (the iHAS gate regularizer) and metrics of their own
    (`update_forward_metrics`). Everything else is here:

    - `compile(optimizer, architecture_optimizer, loss, metrics)`: `loss` and `metrics` are
      honoured as in any Keras model (binary cross-entropy and AUC by default); `optimizer`
      updates every variable but the architecture's, `architecture_optimizer` only those.
    - `train_step`: a base step minimizing `compute_loss` (the compiled loss plus `self.losses`).
    - `fit`: Keras's, with the `ArchSchedule` of `use_validation(val, every)` as a callback:
      while `architecture_active`, an architecture step after every `every` base steps,
      minimizing `compute_loss` plus `architecture_penalty` on the next validation batch, in
      its own traced function (`make_architecture_function`), so that `train_step` has no
      branch and XLA and `tf.distribute` strategies can compile it.
    - `test_step`: the same loss and metrics without updates.

    Logged: `loss` and the compiled metrics (base steps), the subclass's metrics, `arch_loss` and
    `arch_steps` (architecture steps; training only).

    Args:
        **kwargs: `keras.Model` arguments (such as `name`).
    """

    TRAINING_ONLY_METRICS = ("arch_loss", "arch_steps")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.arch_loss = keras.metrics.Mean(name="arch_loss")
        self.arch_steps = keras.metrics.Sum(name="arch_steps")
        self._schedule = ArchSchedule()
        self.architecture_function = None

    # What subclasses give ------------------------------------------------------------------------

    def forward(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple:
        """The prediction, and what the subclass's metrics and penalty need.

        Args:
            inputs: {field: int64 ids [B]}.
            training: whether this is a training step.

        Returns:
            (click probability [B], a dict of what `update_forward_metrics` and
            `architecture_penalty` read).

        Raises:
            NotImplementedError: always; subclasses give it.
        """
        raise NotImplementedError

    @property
    def architecture_variables(self) -> list:
        """The variables architecture steps update (and base steps leave alone).

        Raises:
            NotImplementedError: always; subclasses give it.
        """
        raise NotImplementedError

    @property
    def architecture_active(self) -> bool:
        """Whether architecture steps run now (False while pretraining with open gates).

        Raises:
            NotImplementedError: always; subclasses give it.
        """
        raise NotImplementedError

    def set_gate_mode(self, mode: str) -> None:
        """Switches the gate mode.

        Args:
            mode: "open" (pretraining: no selection), "stochastic" (searching) or
                "deterministic".

        Raises:
            NotImplementedError: always; subclasses give it.
        """
        raise NotImplementedError

    def architecture_penalty(self, details: dict) -> tf.Tensor:
        """A term added to the architecture steps' loss only; none by default.

        Args:
            details: the dict `forward` returned.

        Returns:
            The penalty, a scalar (0 here).
        """
        del details
        return ops.zeros(())

    def update_forward_metrics(self, details: dict, rows: tf.Tensor) -> None:
        """Updates the subclass's own metrics from a forward pass over ROWS examples.

        Args:
            details: the dict `forward` returned.
            rows: the batch's number of examples, float32.
        """
        del details, rows

    # The shared part ----------------------------------------------------------------------------

    def call(self, inputs, training: bool = False):
        return self.forward(inputs, training=training)[0]

    def use_validation(self, validation: tf.data.Dataset | None,
                       gate_every: int = defaults.MAX_GATE_EVERY) -> None:
        """Sets the validation batches of the architecture steps and their cadence.

        Architecture steps run on VALIDATION (repeated as needed), one after every GATE_EVERY
        training batches; `use_validation(None)` turns them off.

        Args:
            validation: (features, label) batches, or None.
            gate_every: training batches between two architecture steps.

        Raises:
            ValueError: GATE_EVERY is below 1.
        """
        self._schedule = ArchSchedule(validation, gate_every)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with the architecture steps `use_validation` set up.

        Args:
            *args: `keras.Model.fit`'s positional arguments, up to `verbose` (CALLBACKS goes by
                keyword).
            **kwargs: `keras.Model.fit`'s keyword arguments.

        Returns:
            The Keras History.
        """
        kwargs["callbacks"] = [self._schedule, *(kwargs.get("callbacks") or [])]
        return super().fit(*args, **kwargs)

    def make_architecture_function(self, force: bool = False) -> Callable:
        """The architecture step, traced: `step(iterator)` runs it on the next batch.

        Kept in `architecture_function` until `drop_traced_functions`, as Keras keeps
        `train_function`.

        Args:
            force: trace anew even if a traced function is kept.

        Returns:
            A `tf.function` of an iterator over (features, label) batches (distributed by the
            model's strategy), running `strategy.run` of one architecture step.
        """
        if self.architecture_function is not None and not force:
            return self.architecture_function
        strategy = self.distribute_strategy

        one_step = tf.function(self._architecture_step, jit_compile=bool(self.jit_compile))

        @tf.function
        def step(iterator):
            x, y = next(iterator)
            strategy.run(one_step, args=(x, y))

        self.architecture_function = step
        return step

    def drop_traced_functions(self) -> None:
        """Drops the traced train, test, predict and architecture functions (after a mode
        switch: the next use traces them again)."""
        self.train_function = self.test_function = self.predict_function = None
        self.architecture_function = None

    def compile(self, optimizer: keras.optimizers.Optimizer | None = None,
                architecture_optimizer: keras.optimizers.Optimizer | None = None,
                loss: str | keras.losses.Loss | Callable = "binary_crossentropy",
                metrics: list | None = None, **kwargs) -> None:
        """Compiles with two optimizers.

        Args:
            optimizer: for every variable but the architecture's; default
                `optimizers.base_optimizer()` (lazy Adam(1e-3), weight decay 1e-6).
            architecture_optimizer: for the architecture variables; default
                `optimizers.architecture_optimizer()` (Adam(1e-2)).
            loss: the prediction loss of both steps; default binary cross-entropy.
            metrics: metrics of the base and test steps; default `[AUC(name="auc")]`.
            **kwargs: more `keras.Model.compile` arguments. `jit_compile` (default
                `defaults.JIT_COMPILE`, where Keras's "auto" would turn XLA on with a GPU) also
                compiles the architecture step.
        """
        optimizer = optimizer or optimizers.base_optimizer()
        self.architecture_optimizer = (architecture_optimizer
                                       or optimizers.architecture_optimizer())
        metrics = [keras.metrics.AUC(name="auc")] if metrics is None else metrics
        kwargs.setdefault("jit_compile", defaults.JIT_COMPILE)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        self.architecture_function = None
        # Built here, outside any traced branch, each on its own variables only.
        self.optimizer.build(self.base_variables)
        self.architecture_optimizer.build(self.architecture_variables)

    def get_compile_config(self):
        return None  # two optimizers: call `compile()` again after loading

    @property
    def base_variables(self) -> list:
        """Every trainable variable but the architecture's."""
        architecture = {id(v) for v in self.architecture_variables}
        return [v for v in self.trainable_variables if id(v) not in architecture]

    def _optimize(self, x, y, sample_weight, variables, optimizer, penalty: bool):
        with tf.GradientTape() as tape:
            prediction, details = self.forward(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=prediction, sample_weight=sample_weight,
                                     training=True)
            if penalty:
                loss = loss + self.architecture_penalty(details)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, prediction, details

    def _track(self, x, y, prediction, details, loss, sample_weight) -> dict:
        # Weighted by the batch size: exact means over uneven batches.
        rows = ops.cast(ops.shape(y)[0], "float32")
        for metric in self.metrics:
            if metric.name == "loss":  # Keras's own loss tracker, made by `compile`
                metric.update_state(loss, sample_weight=rows)
        self.update_forward_metrics(details, rows)
        return self.compute_metrics(x, y, prediction, sample_weight)

    def _architecture_step(self, x, y):
        loss, _, _ = self._optimize(x, labels(y), None, self.architecture_variables,
                                    self.architecture_optimizer, penalty=True)
        self.arch_loss.update_state(loss)
        # Counted once a step, not once per replica: the Sum adds the replicas' counts.
        self.arch_steps.update_state(1.0 / tf.distribute.get_strategy().num_replicas_in_sync)
        return loss

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = labels(y)
        loss, prediction, details = self._optimize(x, y, sample_weight, self.base_variables,
                                                   self.optimizer, penalty=False)
        logs = self._track(x, y, prediction, details, loss, sample_weight)
        return {**logs, **{m.name: m.result() for m in (self.arch_loss, self.arch_steps)}}

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = labels(y)
        prediction, details = self.forward(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=prediction, sample_weight=sample_weight,
                                 training=False)
        logs = self._track(x, y, prediction, details, loss, sample_weight)
        return {k: v for k, v in logs.items() if k not in self.TRAINING_ONLY_METRICS}
