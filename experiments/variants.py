"""The experiment's variants: names, what each answers, and how each is trained on one seed.

Names: `base`, `adafs_soft`, `adafs_hard`, `autofield`, `ihas` (RQ1); `ihas_1`..`ihas_4`,
`ihas_scratch`, `ihas_shared` and `ihas_separate` (RQ3); `ihas@B` and `base@B` for a backbone B
(RQ2; `ihas@dnn` is `ihas`, `base@dnn` is `base`).
"""

import dataclasses
from collections.abc import Iterable

import keras
import tensorflow as tf

import ihas_keras
from ihas_keras import defaults, distribute, optimizers
from ihas_keras.cluster import ClusterPlan
from ihas_keras.layers.backbone import Backbone
from ihas_keras.models.adafs import AdaFS
from ihas_keras.models.autofield import AutoField
from ihas_keras.models.recommender import Recommender
from ihas_keras.models.search import SearchModel
from ihas_keras.retraining import base_recommender, fit_recommender

DESCRIPTIONS = {
    "base": "the plain model: every field at full width, no selection",
    "adafs_soft": "AdaFS-soft: controller field weights multiply the embeddings",
    "adafs_hard": "AdaFS-hard: each example keeps its top-k fields by controller weight",
    "autofield": "AutoField: fields with keep probability < 0.5 dropped, model retrained",
    "ihas": "iHAS: search, K clusters, one retrained model per cluster (routed)",
    "ihas_1": "iHAS-1: the search model alone (deterministic gates), no retraining",
    "ihas_2": "iHAS-2: one retrained model with the widths of all examples (K = 1)",
    "ihas_3": "iHAS-3: iHAS without the polarization term",
    "ihas_4": "iHAS-4: iHAS with gates that are not instance-wise",
    "ihas_scratch": "iHAS with each cluster's model trained from scratch, not warm-started",
    "ihas_shared": "iHAS with per-cluster towers over one shared embedding",
    "ihas_separate": "iHAS with one recommender (own embeddings) per cluster",
}
RQ1 = ("base", "adafs_soft", "adafs_hard", "autofield", "ihas")
# The cluster models that `ihas` does not use by default, to compare with.
_OTHER_CLUSTER_MODELS = "ihas_separate" if defaults.SHARED_EMBEDDING else "ihas_shared"
RQ3 = ("ihas_1", "ihas_2", "ihas_3", "ihas_4", "ihas_scratch", _OTHER_CLUSTER_MODELS)
DEFAULT_VARIANTS = RQ1 + RQ3
# Search options of the ablations that search on their own.
_SEARCH_OPTIONS = {"ihas_3": {"polarization": False}, "ihas_4": {"instance_wise": False}}


def parse_variant(name: str) -> tuple[str, str]:
    """`name` -> (kind, backbone).

    Args:
        name: a variant's name, such as "ihas" or "base@fm".

    Returns:
        (the kind, such as "ihas"; the backbone, "dnn" when NAME names none).

    Raises:
        ValueError: an unknown name or backbone, or a backbone on a kind other than ihas and
            base.
    """
    kind, _, backbone = name.partition("@")
    if kind not in DESCRIPTIONS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(DESCRIPTIONS)}, "
                         "ihas@BACKBONE, base@BACKBONE")
    if backbone and kind not in ("ihas", "base"):
        raise ValueError(f"variant {name!r}: only ihas and base take @BACKBONE")
    backbone = backbone or "dnn"
    if backbone not in Backbone.KINDS:
        raise ValueError(f"variant {name!r}: unknown backbone {backbone!r}; known: "
                         f"{', '.join(Backbone.KINDS)}")
    return kind, backbone


def search_kind(name: str) -> str | None:
    """The search variant NAME is made from ("ihas", "ihas_3" or "ihas_4"); None for none.

    Args:
        name: a variant's name.

    Returns:
        The search's kind, or None for a variant without an iHAS search.

    Raises:
        ValueError: NAME is not a variant (`parse_variant`).
    """
    kind, _ = parse_variant(name)
    if not kind.startswith("ihas"):
        return None
    return kind if kind in _SEARCH_OPTIONS else "ihas"


# Settings only the routed variants depend on: the others ignore them.
_ROUTING_SETTINGS = ("clusters", "representation", "shared_embedding", "routing")
# Settings a variant fixes itself, whatever the experiment's are.
_FIXED_SETTINGS = {"ihas_shared": ("shared_embedding",),
                   "ihas_separate": ("shared_embedding", "routing"),
                   "ihas_scratch": ("warm_start",)}


def ignored_settings(name: str) -> tuple[str, ...]:
    """The settings variant NAME does not depend on (so a stored run is reused across them).

    Args:
        name: a variant's name, or a search's kind.

    Returns:
        The clustering settings for a variant that does not route (all but the routed iHAS
        variants), and the settings a variant fixes itself (`ihas_shared`, `ihas_separate`,
        `ihas_scratch`).
    """
    kind = name.partition("@")[0]
    if not kind.startswith("ihas") or kind in ("ihas_1", "ihas_2"):
        return _ROUTING_SETTINGS
    return _FIXED_SETTINGS.get(kind, ())


def canonical(name: str) -> str:
    """The canonical name of a variant: `ihas@dnn` is `ihas`, `base@dnn` is `base`.

    Args:
        name: a variant's name.

    Returns:
        KIND for the DNN backbone, KIND@BACKBONE for another.

    Raises:
        ValueError: NAME is not a variant (`parse_variant`).
    """
    kind, backbone = parse_variant(name)
    return kind if backbone == "dnn" else f"{kind}@{backbone}"


def expand(variants: Iterable[str], backbones: Iterable[str]) -> list[str]:
    """The variants plus `base@B` and `ihas@B` for each backbone B, canonical, in order, once.

    Args:
        variants: variants' names.
        backbones: backbones B.

    Returns:
        The canonical names, without repeats.

    Raises:
        ValueError: a name is not a variant, or a backbone is unknown (`parse_variant`).
    """
    names = [canonical(v) for v in variants]
    for b in backbones:
        names += [canonical(f"base@{b}"), canonical(f"ihas@{b}")]
    return list(dict.fromkeys(names))


def research_question(name: str) -> str:
    """The research question a variant answers.

    Args:
        name: a variant's name.

    Returns:
        "RQ2" for a backbone other than the DNN, "RQ3" for the ablations, else "RQ1".
    """
    kind, backbone = parse_variant(name)
    if backbone != "dnn":
        return "RQ2"
    return "RQ3" if kind in RQ3 else "RQ1"


def describe(name: str) -> str:
    """What a variant is, in one sentence (the report's "what it is").

    Args:
        name: a variant's name.

    Returns:
        Its entry of DESCRIPTIONS for the DNN backbone; for another, a sentence naming the
        backbone.
    """
    kind, backbone = parse_variant(name)
    if backbone == "dnn":
        return DESCRIPTIONS[kind]
    if kind == "base":
        return f"the plain {backbone} model, no selection"
    return f"iHAS transferred to {backbone}: the DNN search's gates and clusters, {backbone} " \
           "models retrained per cluster"


@dataclasses.dataclass
class Settings:
    """How every variant of an experiment is trained and measured (`ihas experiment`'s flags).

    Every model follows one training rule (`ihas_keras.schedule`): early stopping on validation
    AUC with PATIENCE, the epoch settings being caps.

    Attributes:
        embedding_dim: the full width of every field's embedding.
        batch_size: examples per training batch; None: the rule of the training rows
            (`schedule.batch_size`).
        epochs: the most epochs of every retrained or plain model.
        pretrain_epochs: the searches' most epochs with the gates open.
        search_epochs: the searches' most epochs of bi-level search.
        gate_every: training batches between two gate steps; None: the rule of the batches per
            epoch (`schedule.gate_every`).
        patience: epochs without a better validation AUC before any model stops.
        clusters: K, the clusters of the routed variants, or "auto" (chosen by validation AUC
            over `defaults.CLUSTER_CANDIDATES`).
        representation: what K-Means clusters (`layers.router.REPRESENTATIONS`).
        warm_start: per-cluster models start from the search model's kept columns.
        shared_embedding: the routed variants' clusters are towers over one shared embedding
            (`ihas_shared` and `ihas_separate` always are and are not).
        routing: how the routed variants with shared towers route: "distilled" or "gate"
            (`RoutedModel.ROUTINGS`; `ihas_separate` always routes by the gate).
        regularization_weight: the gate regularizer's weight.
        gate_rank: the iHAS searches' gate kernel rank; 0: full.
        gate_learning_rate: the architecture optimizer's learning rate, gates and selectors
            alike.
        adafs_k: fields AdaFS-hard keeps; None: half.
        inference_batch_size: examples per call of a serving export.
        strategy: the `tf.distribute` strategy every model trains under ("default",
            "one_device" or "mirrored"; `ihas_keras.distribute`); the experiment runs in one
            process, so not "multi_worker".
        verbose: Keras's verbosity.
        progress: show progress bars.
    """

    embedding_dim: int = defaults.EMBEDDING_DIM
    batch_size: int | None = None  # None: schedule.batch_size of the training rows
    epochs: int = defaults.RETRAIN_EPOCHS  # caps: every model trains to early stop
    pretrain_epochs: int = defaults.PRETRAIN_EPOCHS
    search_epochs: int = defaults.SEARCH_EPOCHS
    gate_every: int | None = None  # None: schedule.gate_every of the batches per epoch
    patience: int = defaults.PATIENCE
    clusters: int | str = defaults.CLUSTERS  # or "auto"
    representation: str = defaults.REPRESENTATION
    warm_start: bool = defaults.WARM_START
    shared_embedding: bool = defaults.SHARED_EMBEDDING
    routing: str = defaults.ROUTING
    regularization_weight: float = defaults.REGULARIZATION_WEIGHT
    gate_rank: int = defaults.GATE_RANK
    gate_learning_rate: float = defaults.GATE_LEARNING_RATE  # gates and selectors alike
    adafs_k: int | None = None  # fields AdaFS-hard keeps; None: half
    inference_batch_size: int = 2048  # RQ4 times the exports at this batch size
    strategy: str = defaults.STRATEGY
    verbose: int = 0
    progress: bool = True


def check_strategy(name: str, setting: str = "strategy") -> str:
    """NAME if the experiment runner can train under that `tf.distribute` strategy.

    Args:
        name: the strategy's name (`ihas_keras.distribute.STRATEGIES`).
        setting: where NAME was given, named in errors.

    Returns:
        NAME.

    Raises:
        ValueError: NAME names no strategy (`ihas_keras.distribute.check_name`), or it is
            "multi_worker": the runner runs in one process and writes one OUT folder.
    """
    distribute.check_name(name, setting)
    if name == "multi_worker":
        raise ValueError(f"{setting}: multi_worker is not supported by the experiment runner, "
                         "which runs in one process and writes one folder; use mirrored on one "
                         "machine, or the library or the pipeline's Search and Retrain on a "
                         "cluster")
    return name


@dataclasses.dataclass
class Trained:
    """A trained variant.

    Attributes:
        model: the model that is exported and evaluated.
        search: the search model behind an iHAS variant.
        plan: its ClusterPlan.
        details: what else the result records about the variant (such as AdaFS's k).
    """

    model: keras.Model
    search: object = None  # the search model behind an iHAS variant
    plan: object = None  # its ClusterPlan
    details: dict = dataclasses.field(default_factory=dict)


class SeedRun:
    """One seed's data and settings, and the searches and cluster plans variants share.

    Args:
        sizes: {field: vocabulary size}, in field order.
        train: the train split's (features, label) batches.
        validation: the eval split's (features, label) batches.
        settings: how the variants are trained.
        seed: the seed.
        keep: where searches are kept (a `RunStore`: its `load_search` and `save_search`): a
            kept search is loaded instead of trained again, and a trained one is kept; None
            keeps searches in memory only.
        strategy: the `tf.distribute` strategy the models are made (loaded) and train under;
            None: TensorFlow's default strategy.
    """

    def __init__(self, sizes: dict, train: tf.data.Dataset, validation: tf.data.Dataset,
                 settings: Settings, seed: int, keep=None,
                 strategy: tf.distribute.Strategy | None = None) -> None:
        self.sizes, self.train_data, self.validation_data = sizes, train, validation
        self.settings, self.seed, self.keep = settings, seed, keep
        self.strategy = strategy or tf.distribute.get_strategy()
        self._searches, self._plans = {}, {}

    @property
    def searches(self) -> dict:
        """The search models made so far, by kind ("ihas", "ihas_3", "ihas_4")."""
        return dict(self._searches)

    def _bilevel_fit(self, model):
        """Compiles a bi-level MODEL (search or selection) and runs the search stage on it."""
        s = self.settings
        model.compile(
            architecture_optimizer=optimizers.architecture_optimizer(s.gate_learning_rate))
        ihas_keras.search(model, self.train_data, self.validation_data, s.pretrain_epochs,
                          s.search_epochs, s.gate_every, verbose=s.verbose, patience=s.patience)
        return model

    def search(self, kind: str = "ihas") -> SearchModel:
        """The (cached) search model of KIND: the iHAS search or an ablation's own.

        Args:
            kind: a variant's name; its search (`search_kind`) is the one made.

        Returns:
            The searched model.
        """
        with self.strategy.scope():
            return self._search(search_kind(kind))

    def _search(self, key: str) -> SearchModel:
        kept = None if self.keep is None or key in self._searches else \
            self.keep.load_search(key, self.seed)
        if kept is not None:
            kept.compile(architecture_optimizer=optimizers.architecture_optimizer(
                self.settings.gate_learning_rate))
            self._searches[key] = kept
        if key not in self._searches:
            s = self.settings
            keras.utils.set_random_seed(self.seed)
            model = ihas_keras.build_model(
                self.sizes, s.embedding_dim, regularization_weight=s.regularization_weight,
                gate_rank=s.gate_rank,
                seed=self.seed, compile=False, **_SEARCH_OPTIONS.get(key, {}))
            self._searches[key] = self._bilevel_fit(model)
            if self.keep is not None:
                self.keep.save_search(key, self.seed, model)
        return self._searches[key]

    def plan(self, kind: str, clusters: int) -> ClusterPlan:
        """The (cached) cluster plan of KIND's search model with CLUSTERS clusters.

        Args:
            kind: a variant's name; the plan is made from its search (`search`).
            clusters: K.

        Returns:
            The plan.
        """
        key = (search_kind(kind), clusters)
        if key not in self._plans:
            self._plans[key] = ihas_keras.fit_clusters(
                self.search(kind), self.train_data, clusters, self.seed, self.settings.progress,
                self.settings.representation)
        return self._plans[key]

    def train(self, name: str) -> Trained:
        """Trains variant NAME from scratch (sharing searches and plans); returns the model.

        Args:
            name: the variant's name.

        Returns:
            The trained variant.

        Raises:
            ValueError: NAME is not a variant (`parse_variant`).
        """
        with self.strategy.scope():
            return self._train(name)

    def _train(self, name: str) -> Trained:
        kind, backbone = parse_variant(name)
        s, fields, vocab = self.settings, list(self.sizes), list(self.sizes.values())
        keras.utils.set_random_seed(self.seed)
        if kind == "base":  # an untrained search model only names fields, sizes and widths
            spec = ihas_keras.build_model(self.sizes, s.embedding_dim, compile=False)
            model = base_recommender(spec, backbone)
            return Trained(self._fit(model))
        if kind.startswith("adafs"):
            model = AdaFS(fields, vocab, s.embedding_dim, mode=kind.split("_")[1], k=s.adafs_k)
            return Trained(self._bilevel_fit(model), details={"k": model.k})
        if kind == "autofield":
            search = self._bilevel_fit(AutoField(fields, vocab, s.embedding_dim,
                                                   seed=self.seed))
            widths = search.retrain_widths()
            model = Recommender(fields, vocab, widths, name="autofield")
            return Trained(self._fit(model), details={
                "keep_probability": search.keep_probability().round(4).tolist(),
                "widths": widths})
        search = self.search(kind)
        if kind == "ihas_1":
            return Trained(search, search)
        options = {"backbone": backbone, "epochs": s.epochs, "batch_size": s.batch_size,
                   "patience": s.patience, "verbose": s.verbose,
                   "warm": s.warm_start and kind != "ihas_scratch",
                   "shared": kind == "ihas_shared" or (s.shared_embedding
                                                       and kind != "ihas_separate"),
                   "routing": s.routing}
        if kind != "ihas_2" and s.clusters == "auto":
            model, plan, scores = ihas_keras.choose_clusters(
                search, self.train_data, self.validation_data,
                representation=s.representation, seed=self.seed, progress=s.progress, **options)
            return Trained(model, search, plan, {"validation_auc_by_k": scores})
        plan = self.plan(kind, 1 if kind == "ihas_2" else int(s.clusters))
        model = ihas_keras.retrain(search, plan, self.train_data, self.validation_data,
                                   seed=self.seed, **options)
        return Trained(model, search, plan)

    def _fit(self, model):
        s = self.settings
        return fit_recommender(model, self.train_data, self.validation_data, s.epochs,
                               s.patience, s.verbose)
