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
    """The paper's training setup: Adam(1e-3, weight decay 1e-6), binary cross-entropy, AUC."""
    model.compile(
        optimizer=keras.optimizers.Adam(defaults.LEARNING_RATE, weight_decay=defaults.WEIGHT_DECAY),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def fit_recommender(model: keras.Model, train, validation=None,
                    epochs: int = defaults.RETRAIN_EPOCHS, patience: int = defaults.PATIENCE,
                    verbose="auto") -> keras.Model:
    """Compiles MODEL as the paper does and fits it on TRAIN, with early stopping on validation
    AUC (keeping the best weights) when VALIDATION is given."""
    callbacks = []
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            "val_auc", patience=patience, mode="max", restore_best_weights=True
        ))
    compile_recommender(model).fit(train, validation_data=validation, epochs=epochs,
                                   callbacks=callbacks, verbose=verbose, shuffle=False)
    return model


def base_recommender(search: SearchModel, backbone=None) -> Recommender:
    """The base model to compare with: SEARCH's fields and backbone, every width its
    embedding_dim, no selection."""
    return Recommender(search.fields, search.vocab_sizes,
                       [search.embedding_dim] * len(search.fields),
                       backbone or search.backbone_kind, search.hidden_units,
                       search.cross_layers, name="baseline")


def cluster_examples(routed: RoutedModel, dataset, cluster: int, batch_size: int):
    """The (features, label) examples of DATASET that ROUTED sends to CLUSTER, rebatched."""
    route = tf.function(routed.route)
    return (
        dataset.map(lambda x, y: (x, y, route(x)))
        .unbatch()
        .filter(lambda x, y, c: c == cluster)
        .map(lambda x, y, c: (x, y))
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def retrain(search: SearchModel, plan: ClusterPlan, train, validation=None, backbone=None,
            epochs: int = defaults.RETRAIN_EPOCHS, batch_size: int = defaults.BATCH_SIZE,
            patience: int = defaults.PATIENCE, verbose="auto") -> RoutedModel:
    """Builds the routed model from SEARCH and PLAN and trains each cluster's recommender from
    scratch on its own examples (early stopping on validation AUC when VALIDATION is given).
    Clusters without training examples keep untrained recommenders and are reported."""
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
