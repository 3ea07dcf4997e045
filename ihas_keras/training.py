"""The search stage's schedule: pretraining with open gates, then bi-level search."""

import keras
import tensorflow as tf

from ihas_keras import defaults
from ihas_keras.models.bilevel import BilevelModel


def search(model: BilevelModel, train: tf.data.Dataset, validation: tf.data.Dataset,
           pretrain_epochs: int = defaults.PRETRAIN_EPOCHS, epochs: int = defaults.SEARCH_EPOCHS,
           gate_every: int = defaults.GATE_EVERY,
           callbacks: list[keras.callbacks.Callback] | None = None, verbose: str | int = "auto",
           patience: int | None = None,
           ) -> tuple[keras.callbacks.History | None, keras.callbacks.History]:
    """Runs the search stage on a compiled MODEL.

    PRETRAIN_EPOCHS over TRAIN with the gates open, then EPOCHS of bi-level search: TRAIN for the
    base parameters, one VALIDATION batch for the gate after every GATE_EVERY training batches.
    The gate is left in "stochastic" mode, whose inference path uses the deterministic masks.

    With PATIENCE, both phases train to convergence: their epochs are caps, VALIDATION is also
    evaluated after every epoch (deterministic masks while searching), and each phase stops once
    the validation AUC has not improved for PATIENCE epochs, its best weights (gates included)
    restored.

    Args:
        model: a compiled search or field-selection model.
        train: (features, label) training batches.
        validation: (features, label) validation batches, for the gate.
        pretrain_epochs: epochs with the gates open; 0 for none.
        epochs: epochs of bi-level search.
        gate_every: training batches between two gate steps.
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
    def fit(epochs: int) -> keras.callbacks.History:
        phase_callbacks = list(callbacks or [])
        options = {}
        if patience is not None:
            phase_callbacks.append(keras.callbacks.EarlyStopping(
                "val_auc", patience=patience, mode="max", restore_best_weights=True))
            options["validation_data"] = validation
        return model.fit(train, epochs=epochs, callbacks=phase_callbacks, verbose=verbose,
                         shuffle=False, **options)

    model.set_gate_mode("open")
    pretrain = fit(pretrain_epochs) if pretrain_epochs else None
    model.set_gate_mode("stochastic")
    model.use_validation(validation, gate_every)
    return pretrain, fit(epochs)
