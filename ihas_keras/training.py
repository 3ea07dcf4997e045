"""The search stage's schedule: pretraining with open gates, then bi-level search."""

from ihas_keras import defaults
from ihas_keras.models.bilevel import BilevelModel


def search(model: BilevelModel, train, validation,
           pretrain_epochs: int = defaults.PRETRAIN_EPOCHS, epochs: int = defaults.SEARCH_EPOCHS,
           gate_every: int = defaults.GATE_EVERY, callbacks=None, verbose="auto"):
    """Runs the search stage on a compiled MODEL; returns the two Keras History objects.

    PRETRAIN_EPOCHS over TRAIN with the gates open, then EPOCHS of bi-level search: TRAIN for the
    base parameters, one VALIDATION batch for the gate after every GATE_EVERY training batches.
    The gate is left in "stochastic" mode, whose inference path uses the deterministic masks.
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
