"""The retrain stage: one recommender per cluster, trained on that cluster's examples."""

import logging

import keras
import tensorflow as tf

from ihas_keras import defaults
from ihas_keras.cluster import ClusterPlan
from ihas_keras.models.recommender import Recommender
from ihas_keras.models.routed import RoutedModel
from ihas_keras.models.search import SearchModel

logger = logging.getLogger(__name__)


def compile_recommender(model: keras.Model) -> keras.Model:
    """Compiles MODEL with the paper's training setup.

    Adam(1e-3, weight decay 1e-6), binary cross-entropy, AUC.

    Args:
        model: the model to compile.

    Returns:
        MODEL, compiled.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(defaults.LEARNING_RATE, weight_decay=defaults.WEIGHT_DECAY),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def fit_recommender(model: keras.Model, train: tf.data.Dataset,
                    validation: tf.data.Dataset | None = None,
                    epochs: int = defaults.RETRAIN_EPOCHS, patience: int = defaults.PATIENCE,
                    verbose: str | int = "auto") -> keras.Model:
    """Compiles MODEL as the paper does and fits it on TRAIN.

    With VALIDATION, training stops early on validation AUC, keeping the best weights.

    Args:
        model: the model to train.
        train: (features, label) training batches.
        validation: (features, label) validation batches, or None.
        epochs: the most epochs to train.
        patience: epochs without a better validation AUC before stopping.
        verbose: Keras's `fit` verbosity.

    Returns:
        MODEL, trained.
    """
    callbacks = []
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            "val_auc", patience=patience, mode="max", restore_best_weights=True
        ))
    compile_recommender(model).fit(train, validation_data=validation, epochs=epochs,
                                   callbacks=callbacks, verbose=verbose, shuffle=False)
    return model


def base_recommender(search: SearchModel, backbone: str | None = None) -> Recommender:
    """The base model to compare with: SEARCH's fields and backbone, no selection.

    Args:
        search: the search model.
        backbone: the backbone; None: SEARCH's.

    Returns:
        An untrained recommender named "baseline", every width SEARCH's embedding_dim.
    """
    return Recommender(search.fields, search.vocab_sizes,
                       [search.embedding_dim] * len(search.fields),
                       backbone or search.backbone_kind, search.hidden_units,
                       search.cross_layers, name="baseline")


def cluster_examples(routed: RoutedModel, dataset: tf.data.Dataset, cluster: int,
                     batch_size: int) -> tf.data.Dataset:
    """The (features, label) examples of DATASET that ROUTED sends to CLUSTER, rebatched.

    Args:
        routed: the routed model that picks each example's cluster.
        dataset: (features, label) batches.
        cluster: the cluster's index.
        batch_size: examples per batch of the result.

    Returns:
        The cluster's (features, label) batches.
    """
    route = tf.function(routed.route)
    return (
        dataset.map(lambda x, y: (x, y, route(x)))
        .unbatch()
        .filter(lambda x, y, c: c == cluster)
        .map(lambda x, y, c: (x, y))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def retrain(search: SearchModel, plan: ClusterPlan, train: tf.data.Dataset,
            validation: tf.data.Dataset | None = None, backbone: str | None = None,
            epochs: int = defaults.RETRAIN_EPOCHS, batch_size: int = defaults.BATCH_SIZE,
            patience: int = defaults.PATIENCE, verbose: str | int = "auto") -> RoutedModel:
    """The retrain stage: the routed model, each cluster's recommender trained on its examples.

    Builds the routed model from SEARCH and PLAN and trains each cluster's recommender from
    scratch on its own examples (early stopping on validation AUC when VALIDATION is given).
    Clusters without training examples keep untrained recommenders and are reported.

    Args:
        search: the trained search model.
        plan: the cluster plan of SEARCH (`fit_clusters`).
        train: (features, label) training batches.
        validation: (features, label) validation batches, or None.
        backbone: the recommenders' backbone; None: SEARCH's.
        epochs: the most epochs to train each recommender.
        batch_size: examples per batch of each cluster's data.
        patience: epochs without a better validation AUC before a recommender stops.
        verbose: Keras's `fit` verbosity.

    Returns:
        The routed model, its recommenders trained.
    """
    routed = RoutedModel.from_search(search, plan, backbone)
    for k, recommender in enumerate(routed.recommenders):
        if plan.sizes[k] == 0:
            logger.warning("retrain: cluster %d has no training examples; its model stays "
                           "untrained", k)
            continue
        logger.info("retrain: cluster %d (%d examples, widths %s)", k, plan.sizes[k],
                    plan.widths()[k].tolist())
        val = None if validation is None else cluster_examples(routed, validation, k, batch_size)
        fit_recommender(recommender, cluster_examples(routed, train, k, batch_size), val,
                        epochs, patience, verbose)
    return routed
