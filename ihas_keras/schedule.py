"""The training rule of every model, and the batch size and gate schedule as rules of the data.

One rule for every model, so that comparisons are fair: train until the validation AUC has not
improved for `defaults.PATIENCE` epochs, best weights restored, at most `defaults.MAX_EPOCHS`
epochs. Fixed numbers cannot suit both 10,000 and 45 million rows, so the batch size follows the
training rows and the gate's cadence follows the batches per epoch.
"""

import keras
import tensorflow as tf

from ihas_keras import defaults, optimizers


def batch_size(train_rows: int) -> int:
    """The batch size for TRAIN_ROWS training examples.

    The largest power of two that still gives `defaults.MIN_STEPS_PER_EPOCH` batches an epoch,
    but at least `defaults.MIN_BATCH_SIZE` and at most `defaults.BATCH_SIZE` (the paper's 2048):
    256 for 10,000 rows, 1024 for 160,000, 2048 from about 205,000.

    Args:
        train_rows: the training split's examples.

    Returns:
        The batch size.
    """
    size = defaults.MIN_BATCH_SIZE
    while size * 2 <= min(defaults.BATCH_SIZE, train_rows / defaults.MIN_STEPS_PER_EPOCH):
        size *= 2
    return size


def gate_every(steps_per_epoch: int) -> int:
    """Training batches between two gate steps, for STEPS_PER_EPOCH batches an epoch.

    At least `defaults.GATE_STEPS_PER_EPOCH` gate steps an epoch, and at least one every
    `defaults.MAX_GATE_EVERY` batches: every batch on 8,000 rows at batch 256, every 5th from 80
    batches an epoch up.

    Args:
        steps_per_epoch: training batches per epoch.

    Returns:
        The gate's cadence, at least 1.
    """
    return min(defaults.MAX_GATE_EVERY,
               max(1, int(steps_per_epoch) // defaults.GATE_STEPS_PER_EPOCH))


def steps_per_epoch(dataset: tf.data.Dataset) -> int:
    """The batches in one pass over DATASET: its cardinality, or counted when unknown.

    Args:
        dataset: a finite dataset of batches.

    Returns:
        The number of batches.
    """
    known = int(dataset.cardinality())
    if known >= 0:
        return known
    return int(dataset.reduce(0, lambda count, _: count + 1))


def early_stopping(patience: int = defaults.PATIENCE) -> keras.callbacks.EarlyStopping:
    """The rule's callback: stop when `val_auc` has not improved for PATIENCE epochs.

    Args:
        patience: epochs without a better validation AUC before stopping.

    Returns:
        An EarlyStopping callback that restores the best weights.
    """
    return keras.callbacks.EarlyStopping("val_auc", patience=patience, mode="max",
                                         restore_best_weights=True)


def callbacks(validation: bool, patience: int = defaults.PATIENCE,
              ) -> list[keras.callbacks.Callback]:
    """The callbacks of every `fit` under the rule.

    `optimizers.CatchUp` (lazy Adam's rare rows moved on to the current step before each
    evaluation and at the end), then, with VALIDATION, `early_stopping(PATIENCE)`.

    Args:
        validation: whether `fit` gets validation data.
        patience: epochs without a better validation AUC before stopping.

    Returns:
        The callbacks, in the order they must run.
    """
    return [optimizers.CatchUp()] + ([early_stopping(patience)] if validation else [])
