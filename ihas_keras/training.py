"""The search stage's schedule: pretraining with open gates, then bi-level search."""

import keras
import tensorflow as tf

from ihas_keras import defaults, schedule
from ihas_keras.models.bilevel import BilevelModel


class _CountSteps(keras.callbacks.Callback):
    """Counts the training batches of the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self._first = True

    def on_train_batch_end(self, batch, logs=None):
        if self._first:
            self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self._first = False


def split_validation(validation: tf.data.Dataset) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """VALIDATION's examples in two halves: alternate rows, each half rebatched as given.

    The gate learns from the first half; early stopping of the search reads the second, which
    the gate never saw (the gate, trained on validation rows, would otherwise overfit the very
    rows that decide when to stop).

    Args:
        validation: (features, label) batches.

    Returns:
        (the gate's half, the held-out half), batched like VALIDATION.
    """
    batch = next(iter(validation))[1].shape[0] or 1

    def half(parity: int) -> tf.data.Dataset:
        return (validation.unbatch().enumerate()
                .filter(lambda i, _: i % 2 == parity).map(lambda _, row: row)
                .batch(batch).prefetch(tf.data.AUTOTUNE))

    return half(0), half(1)


def search(model: BilevelModel, train: tf.data.Dataset, validation: tf.data.Dataset,
           pretrain_epochs: int = defaults.PRETRAIN_EPOCHS, epochs: int = defaults.SEARCH_EPOCHS,
           gate_every: int | None = None,
           callbacks: list[keras.callbacks.Callback] | None = None, verbose: str | int = "auto",
           patience: int | None = defaults.PATIENCE,
           ) -> tuple[keras.callbacks.History | None, keras.callbacks.History]:
    """Runs the search stage on a compiled MODEL.

    Pretraining over TRAIN with the gates open, then bi-level search: TRAIN for the base
    parameters, one VALIDATION batch for the gate after every GATE_EVERY training batches.
    The gate is left in "stochastic" mode, whose inference path uses the deterministic masks.

    Both phases follow the training rule (`ihas_keras.schedule`): validation AUC is measured
    after every epoch and each phase stops once it has not improved for PATIENCE epochs, its
    best weights (gates included) restored; PRETRAIN_EPOCHS and EPOCHS are caps. Pretraining
    reads all of VALIDATION; the search phase splits it (`split_validation`): the gate steps
    read one half, early stopping (with deterministic masks) the other. Without early stopping
    (PATIENCE None) the gate steps read all of VALIDATION.

    Args:
        model: a compiled search or field-selection model.
        train: (features, label) training batches.
        validation: (features, label) validation batches, for the gate and early stopping.
        pretrain_epochs: the most epochs with the gates open; 0 for none.
        epochs: the most epochs of bi-level search.
        gate_every: training batches between two gate steps; None: `schedule.gate_every` of the
            batches per epoch (counted in pretraining's first epoch, or by a pass over TRAIN).
        callbacks: Keras callbacks of both `fit` calls.
        verbose: Keras's `fit` verbosity.
        patience: epochs without a better validation AUC before a phase stops; None: no early
            stopping, every epoch runs.

    Returns:
        The two Keras History objects (pretraining, search); the first is None without
        pretraining.

    Raises:
        ValueError: GATE_EVERY is below 1.
    """
    def fit(epochs: int, extra: list, held_out: tf.data.Dataset) -> keras.callbacks.History:
        phase_callbacks = list(callbacks or []) + extra
        options = {}
        if patience is None:
            phase_callbacks += schedule.callbacks(validation=False)
        else:
            phase_callbacks += schedule.callbacks(validation=True, patience=patience)
            options["validation_data"] = held_out
        return model.fit(train, epochs=epochs, callbacks=phase_callbacks, verbose=verbose,
                         shuffle=False, **options)

    counter = _CountSteps()
    model.set_gate_mode("open")
    pretrain = fit(pretrain_epochs, [counter], validation) if pretrain_epochs else None
    if gate_every is None:
        steps = counter.steps or schedule.steps_per_epoch(train)
        gate_every = schedule.gate_every(steps)
    gate_rows, held_out = (validation, None) if patience is None else split_validation(validation)
    model.set_gate_mode("stochastic")
    model.use_validation(gate_rows, gate_every)
    return pretrain, fit(epochs, [], held_out)
