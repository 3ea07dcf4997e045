"""The retrain stage: one recommender per cluster, trained on that cluster's examples."""

import logging
from collections.abc import Sequence

import keras
import tensorflow as tf

from ihas_keras import defaults, optimizers, schedule
from ihas_keras.cluster import ClusterPlan, fit_clusters
from ihas_keras.distill import distill_router
from ihas_keras.models.recommender import Recommender
from ihas_keras.models.routed import RoutedModel
from ihas_keras.models.search import SearchModel
from ihas_keras.warm_start import warm_start, warm_start_towers

logger = logging.getLogger(__name__)


def compile_recommender(model: keras.Model, optimizer: keras.optimizers.Optimizer | None = None,
                        jit_compile: bool = defaults.JIT_COMPILE) -> keras.Model:
    """Compiles MODEL with the paper's training setup.

    Adam(1e-3, weight decay 1e-6), binary cross-entropy, AUC.

    Args:
        model: the model to compile.
        optimizer: the optimizer; None: `optimizers.base_optimizer()` (lazy Adam that catches
            rare rows up, `optimizers.LazyAdam`).
        jit_compile: compile the training step with XLA (for GPUs; Keras's "auto" would turn
            it on wherever a GPU is visible).

    Returns:
        MODEL, compiled.
    """
    model.compile(
        optimizer=optimizer or optimizers.base_optimizer(),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
        jit_compile=jit_compile,
    )
    return model


def fit_recommender(model: keras.Model, train: tf.data.Dataset,
                    validation: tf.data.Dataset | None = None,
                    epochs: int = defaults.RETRAIN_EPOCHS, patience: int = defaults.PATIENCE,
                    verbose: str | int = "auto",
                    jit_compile: bool = defaults.JIT_COMPILE) -> keras.Model:
    """Compiles MODEL as the paper does and fits it on TRAIN, by the training rule.

    With VALIDATION, training stops once the validation AUC has not improved for PATIENCE
    epochs, keeping the best weights (`schedule.early_stopping`); EPOCHS is the cap.

    Args:
        model: the model to train.
        train: (features, label) training batches.
        validation: (features, label) validation batches, or None (every epoch runs).
        epochs: the most epochs to train.
        patience: epochs without a better validation AUC before stopping.
        verbose: Keras's `fit` verbosity.
        jit_compile: compile the training step with XLA (`compile_recommender`).

    Returns:
        MODEL, trained.
    """
    callbacks = schedule.callbacks(validation is not None, patience)
    compile_recommender(model, jit_compile=jit_compile).fit(
        train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose,
        shuffle=False)
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


class _Probability(keras.Model):
    """A routed model's probability output alone, to fit the model as a whole."""

    def __init__(self, routed: RoutedModel) -> None:
        super().__init__(name="routed_probability")
        self.routed = routed

    def call(self, inputs):
        return self.routed(inputs)["probability"]


def retrain(search: SearchModel, plan: ClusterPlan, train: tf.data.Dataset,
            validation: tf.data.Dataset | None = None, backbone: str | None = None,
            epochs: int = defaults.RETRAIN_EPOCHS, batch_size: int = defaults.BATCH_SIZE,
            patience: int = defaults.PATIENCE, verbose: str | int = "auto",
            warm: bool = defaults.WARM_START, seed: int | None = None,
            shared: bool = defaults.SHARED_EMBEDDING, routing: str = defaults.ROUTING,
            jit_compile: bool = defaults.JIT_COMPILE) -> keras.Model:
    """The retrain stage: one recommender per cluster, trained on its examples.

    With K >= 2 clusters, the routed model: SEARCH's embeddings and gate route each example to
    its cluster's recommender, each trained on its own examples (early stopping on validation
    AUC when VALIDATION is given); clusters without training examples keep untrained
    recommenders and are reported. With K = 1, a plain `Recommender` with the searched widths,
    trained on every example: no gate and no router at serving.

    With SHARED (K >= 2), the clusters share one trainable embedding and each has a tower over
    its kept columns (`layers.towers.SharedTowers`); the routed model is trained as a whole on
    every example, each scored by its cluster's tower. Then, with ROUTING "distilled", its
    router is distilled (`distill.distill_router`): the model returned routes by a linear router
    over the towers' embedding, trained to reproduce the gate's routing, and serves with one
    lookup, where that router agrees with the gate on at least
    `defaults.MIN_ROUTER_AGREEMENT` of the validation examples (otherwise the gate routes, with
    a warning). One recommender per cluster always routes by the gate.

    With WARM, each recommender starts from SEARCH's kept embedding columns and backbone
    (`warm_start`); otherwise from scratch, as one reading of the paper has it.

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
        warm: start each recommender from SEARCH's kept columns.
        seed: reseeds Keras's random state before the recommenders are made, so that their
            initialisation does not depend on what ran before; None leaves it.
        shared: towers over one shared embedding instead of one recommender per cluster.
        routing: with SHARED, how the returned model routes: "gate" or "distilled"
            (`RoutedModel.ROUTINGS`).
        jit_compile: compile the recommenders' training steps with XLA (`compile_recommender`).

    Returns:
        The routed model (K >= 2) or the recommender (K = 1), trained.
    """
    if routing not in RoutedModel.ROUTINGS:
        raise ValueError(f"retrain: unknown routing {routing!r}; allowed: "
                         f"{', '.join(RoutedModel.ROUTINGS)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    kept = plan.kept_dimensions()
    if plan.num_clusters == 1:
        model = Recommender(search.fields, search.vocab_sizes, plan.widths()[0].tolist(),
                            backbone or search.backbone_kind, search.hidden_units,
                            search.cross_layers, name="searched")
        if warm:
            warm_start(model, search, kept[0])
        logger.info("retrain: one model, widths %s", plan.widths()[0].tolist())
        return fit_recommender(model, train, validation, epochs, patience, verbose, jit_compile)
    routed = RoutedModel.from_search(search, plan, backbone, shared=shared)
    if shared:
        if warm:
            warm_start_towers(routed.towers, search)
        logger.info("retrain: %d towers over one embedding (%s examples, widths %s)",
                    plan.num_clusters, [int(n) for n in plan.sizes], plan.widths().tolist())
        fit_recommender(_Probability(routed), train, validation, epochs, patience, verbose,
                        jit_compile)
        if routing == "distilled":
            distilled, agreement = distill_router(routed, train, validation, verbose=verbose)
            if agreement >= defaults.MIN_ROUTER_AGREEMENT:
                return distilled
            logger.warning("retrain: the distilled router agrees with the gate on %.1f%% of "
                           "the examples, under %.1f%%; the model routes by the gate",
                           100 * agreement, 100 * defaults.MIN_ROUTER_AGREEMENT)
        return routed
    for k, recommender in enumerate(routed.recommenders):
        if plan.sizes[k] == 0:
            logger.warning("retrain: cluster %d has no training examples; its model stays "
                           "untrained", k)
            continue
        if warm:
            warm_start(recommender, search, kept[k])
        logger.info("retrain: cluster %d (%d examples, widths %s)", k, plan.sizes[k],
                    plan.widths()[k].tolist())
        val = None if validation is None else cluster_examples(routed, validation, k, batch_size)
        fit_recommender(recommender, cluster_examples(routed, train, k, batch_size), val,
                        epochs, patience, verbose, jit_compile)
    return routed


def validation_auc(model: keras.Model, validation: tf.data.Dataset) -> float:
    """MODEL's AUC on VALIDATION (a routed model's "probability" output).

    Args:
        model: a routed model or a recommender.
        validation: (features, label) batches.

    Returns:
        The AUC.
    """
    auc = keras.metrics.AUC()
    score = tf.function(model)
    for x, y in validation:
        out = score(x)
        auc.update_state(y, out["probability"] if isinstance(out, dict) else out)
    return float(auc.result())


def choose_clusters(search: SearchModel, train: tf.data.Dataset, validation: tf.data.Dataset,
                    candidates: Sequence[int] = defaults.CLUSTER_CANDIDATES,
                    representation: str = defaults.REPRESENTATION, seed: int = 0,
                    progress: bool = True, **options) -> tuple[keras.Model, ClusterPlan, dict]:
    """K chosen by validation AUC ("auto"): clusters and retrains for each K of CANDIDATES.

    Args:
        search: the trained search model.
        train: (features, label) training batches.
        validation: (features, label) validation batches.
        candidates: the K to try.
        representation: what K-Means clusters (`fit_clusters`).
        seed: K-Means's random state and `retrain`'s seed.
        progress: show progress bars while clustering.
        **options: more `retrain` arguments (backbone, epochs, batch_size, patience, verbose,
            warm).

    Returns:
        (the best model, its plan, {K: validation AUC}).

    Raises:
        ValueError: CANDIDATES is empty.
    """
    if not candidates:
        raise ValueError("choose_clusters: no candidate K")
    plans = [fit_clusters(search, train, k, seed, progress, representation) for k in candidates]
    return retrain_best(search, plans, train, validation, seed=seed, **options)


def retrain_best(search: SearchModel, plans: Sequence[ClusterPlan], train: tf.data.Dataset,
                 validation: tf.data.Dataset, **options) -> tuple[keras.Model, ClusterPlan, dict]:
    """Retrains the model of each plan and keeps the one of the best validation AUC.

    Args:
        search: the trained search model.
        plans: cluster plans of distinct K.
        train: (features, label) training batches.
        validation: (features, label) validation batches.
        **options: more `retrain` arguments (backbone, epochs, batch_size, patience, verbose,
            warm, seed, ...).

    Returns:
        (the best model, its plan, {K: validation AUC}).

    Raises:
        ValueError: PLANS is empty or two plans have the same K.
    """
    ks = [plan.num_clusters for plan in plans]
    if not ks or len(set(ks)) != len(ks):
        raise ValueError(f"retrain_best: expected plans of distinct K, got K = {ks}")
    best, scores = None, {}
    for plan in plans:
        model = retrain(search, plan, train, validation, **options)
        scores[plan.num_clusters] = validation_auc(model, validation)
        logger.info("clusters auto: K = %d, validation AUC %.4f", plan.num_clusters,
                    scores[plan.num_clusters])
        if best is None or scores[plan.num_clusters] > scores[best[1].num_clusters]:
            best = (model, plan)
    return best[0], best[1], scores
