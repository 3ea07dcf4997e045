"""The distilled router: the gate's routing, learned by a linear router over the towers' embedding.

The paper's routing runs the search model at serving: its embeddings, the N* x N* gate and the
histogram threshold per example, then the nearest centroid, before the cluster models look their
own embeddings up. A routed model with shared towers can instead route with a linear classifier
over the towers' embedding, trained to reproduce the gate's cluster of every training example;
then one lookup feeds the router and the towers, and nothing of the search model is served.
"""

import logging

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.models.routed import RoutedModel

logger = logging.getLogger(__name__)


class _Student(keras.Model):
    """The distilled router's logits over the (frozen) towers' embeddings."""

    def __init__(self, served: RoutedModel) -> None:
        super().__init__(name="router_student")
        self.served = served

    def call(self, inputs):
        embedded, _ = self.served.towers.embed(inputs)
        return self.served.router(ops.stop_gradient(embedded))


def distill_router(routed: RoutedModel, train: tf.data.Dataset,
                   validation: tf.data.Dataset | None = None,
                   epochs: int = defaults.MAX_EPOCHS, patience: int = defaults.PATIENCE,
                   verbose: str | int = "auto") -> tuple[RoutedModel, float]:
    """A copy of ROUTED that routes with a linear router over its towers' embedding.

    The copy has ROUTED's towers (weights copied) and a router trained to predict the cluster
    ROUTED's gate gives each example, on the first `defaults.ROUTER_SAMPLE` examples of TRAIN
    (labelled once and kept in memory; a linear router needs no more) (cross-entropy, Adam at
    `defaults.ROUTER_LEARNING_RATE`), until its agreement on the first `defaults.ROUTER_SAMPLE`
    examples of VALIDATION has not improved by
    `defaults.ROUTER_MIN_DELTA` for PATIENCE epochs (best weights restored), at most EPOCHS
    epochs.

    Args:
        routed: a trained gate-routed model with shared towers.
        train: (features, label) training batches (the labels are not used).
        validation: (features, label) batches for early stopping and the agreement; None:
            every epoch runs and the agreement is measured on TRAIN.
        epochs: the most epochs.
        patience: epochs without a better agreement before stopping.
        verbose: Keras's `fit` verbosity.

    Returns:
        (the distilled routed model, the fraction of those VALIDATION examples (TRAIN's without
        VALIDATION) it sends to the gate's cluster).

    Raises:
        ValueError: ROUTED does not route by its gate or has no shared towers.
    """
    if routed.routing != "gate" or routed.towers is None:
        raise ValueError("distill_router: needs a gate-routed model with shared towers")
    served = RoutedModel.from_config({**routed.get_config(), "routing": "distilled"})
    served.towers.set_weights(routed.towers.get_weights())
    teacher = tf.function(routed.route)

    def labelled(dataset: tf.data.Dataset) -> tf.data.Dataset:
        rows = int(tf.shape(tf.nest.flatten(next(iter(dataset))[0])[0])[0])
        return (dataset.take(max(1, defaults.ROUTER_SAMPLE // max(rows, 1)))
                .map(lambda x, *_: (x, teacher(x))).cache())

    student = _Student(served)
    served.towers.trainable = False
    served.router.trainable = True
    student.compile(optimizer=keras.optimizers.Adam(defaults.ROUTER_LEARNING_RATE),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="agreement")])
    callbacks, options = [], {}
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            "val_agreement", patience=patience, mode="max", restore_best_weights=True,
            min_delta=defaults.ROUTER_MIN_DELTA))
        options["validation_data"] = labelled(validation)
    student.fit(labelled(train), epochs=epochs, callbacks=callbacks, verbose=verbose,
                shuffle=False, **options)
    served.router.trainable = False
    served.towers.trainable = True
    held_out = options["validation_data"] if validation is not None else labelled(train)
    agreement = float(student.evaluate(held_out, verbose=0, return_dict=True)["agreement"])
    logger.info("distilled router: agrees with the gate on %.2f%% of examples", 100 * agreement)
    return served, agreement
