"""The search stage's schedule: pretraining with open gates, then bi-level search."""

import keras
import tensorflow as tf

from ihas_keras import defaults
from ihas_keras.models.bilevel import BilevelModel


def search(model: BilevelModel, train: tf.data.Dataset, validation: tf.data.Dataset,
           pretrain_epochs: int = defaults.PRETRAIN_EPOCHS, epochs: int = defaults.SEARCH_EPOCHS,
           gate_every: int = defaults.GATE_EVERY,
           callbacks: list[keras.callbacks.Callback] | None = None, verbose: str | int = "auto"
           ) -> tuple[keras.callbacks.History | None, keras.callbacks.History]:
    """Runs the search stage on a compiled MODEL.

    PRETRAIN_EPOCHS over TRAIN with the gates open, then EPOCHS of bi-level search: TRAIN for the
    base parameters, one VALIDATION batch for the gate after every GATE_EVERY training batches.
    The gate is left in "stochastic" mode, whose inference path uses the deterministic masks.

    Args:
        model: a compiled search or field-selection model.
        train: (features, label) training batches.
        validation: (features, label) validation batches, for the gate.
        pretrain_epochs: epochs with the gates open; 0 for none.
        epochs: epochs of bi-level search.
        gate_every: training batches between two gate steps.
        callbacks: Keras callbacks of both `fit` calls.
        verbose: Keras's `fit` verbosity.

    Returns:
        The two Keras History objects (pretraining, search); the first is None without
        pretraining.

    Raises:
        ValueError: GATE_EVERY is below 1.
    """
    model.set_gate_mode("open")
    pretrain = None
    if pretrain_epochs:
        pretrain = model.fit(train, epochs=pretrain_epochs, callbacks=callbacks,
                             verbose=verbose, shuffle=False)
    model.set_gate_mode("stochastic")
    model.use_validation(validation, gate_every)
    searched = model.fit(train, epochs=epochs,
                         callbacks=callbacks, verbose=verbose, shuffle=False)
    return pretrain, searched
