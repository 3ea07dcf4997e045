"""The pipeline's settings in one place, each overridable by an environment variable.

    IHAS_DATA_ROOT=/data/criteo IHAS_FORMAT=criteo IHAS_CLUSTERS=3 tfx run create --engine local \
        --pipeline_name ihas

IHAS_BEAM_ARGS holds Beam pipeline options separated by spaces, for example
`--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp` (see the README for
Dataflow, Flink and Spark).
"""

import dataclasses
import os
import shlex
from typing import Any

from ihas_keras import defaults, distribute

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(name: str, value: str) -> bool:
    """Boolean variable NAME's VALUE: 1/true/yes/on or 0/false/no/off, in any case."""
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(f"{name}: expected one of {', '.join(_TRUE + _FALSE)}; got {value!r}")
    return word in _TRUE


def _env(name: str, default, kind=str):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return _bool(name, value) if kind is bool else kind(value)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The pipeline's settings; the empty paths default to folders under HOME.

    Attributes:
        pipeline_name: the TFX pipeline's name.
        home: default root of everything below (IHAS_HOME).
        data_root: folder of raw files (every file in it is read); default HOME/data.
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: schema file for format "generic".
        pipeline_root: where the components write their outputs; default HOME/pipeline_root.
        metadata_path: the local runner's ML Metadata SQLite file; default
            HOME/metadata.sqlite.
        serving_model_dir: where Pusher writes version folders for TF Serving; default
            HOME/serving_model.
        seed: RawExampleGen's split seed, and the Search, Cluster and Retrain seeds.
        max_bad_fraction: RawExampleGen's largest fraction of rejected rows.
        frequency_threshold: Transform's: values seen fewer times than this in split "train"
            (the analyzed data) get the "others" id.
        embedding_dim: Search's full embedding width of every field.
        backbone: Search's backbone.
        pretrain_epochs: Search's most epochs with the gates open (early stopping).
        search_epochs: Search's most epochs of bi-level search (early stopping).
        gate_every: Search's training batches between two gate steps; 0 (the default): by the
            rule of the batches per epoch (`ihas_keras.schedule.gate_every`).
        gate_learning_rate: Search's Adam learning rate of the gate steps.
        regularization_weight: Search's gate regularizer weight.
        gate_rank: Search's gate kernel rank (0: full).
        patience: epochs without a better validation AUC before a phase of Search, a
            recommender of Retrain or the base model stops (the training rule).
        clusters: Cluster's K; 0 (IHAS_CLUSTERS=auto or 0): the K of
            `defaults.CLUSTER_CANDIDATES` whose retrained model has the best validation AUC.
        representation: what Cluster's K-Means clusters: "probability", "mask" or
            "masked_embedding" (`ihas_keras.layers.router.REPRESENTATIONS`).
        retrain_epochs: Retrain's most epochs per recommender (early stopping).
        warm_start: Retrain's recommenders start from the search model's kept columns
            (IHAS_WARM_START: 1/0, true/false, yes/no or on/off).
        shared_embedding: Retrain's cluster models are towers over one shared embedding
            (IHAS_SHARED_EMBEDDING, a boolean as above).
        routing: how Retrain's shared-towers model routes at serving: "distilled" or "gate".
        batch_size: examples per batch in Search, Cluster and Retrain; 0 (the default): by the
            rule of split "train"'s rows (`ihas_keras.schedule.batch_size`).
        margin: Evaluate's margin: blessed when routed AUC >= base AUC - margin.
        last_blessed_margin: Evaluate's margin against the last blessed (pushed) model: blessed
            only when routed AUC >= its AUC - last_blessed_margin (both on this run's test split).
        min_auc: Evaluate's lowest AUC of a blessed model.
        jit_compile: Search and Retrain compile their training steps with XLA (for GPUs;
            IHAS_JIT_COMPILE, a boolean as above).
        dtype_policy: Keras's dtype policy of the models Search and Retrain build: "float32",
            or "mixed_float16" / "mixed_bfloat16" for GPUs and TPUs (IHAS_DTYPE_POLICY).
        strategy: the `tf.distribute` strategy Search and Retrain train under: "default",
            "one_device", "mirrored" or "multi_worker" (IHAS_STRATEGY; `ihas_keras.distribute`).
        beam_args: Beam pipeline options (IHAS_BEAM_ARGS, split as shell words).
    """

    pipeline_name: str = "ihas"
    home: str = "/tmp/ihas-demo"  # IHAS_HOME: default root of everything below
    data_root: str = ""  # folder of raw files (every file in it is read)
    format: str = "criteo"
    schema: str = ""  # schema file for format "generic"
    pipeline_root: str = ""
    metadata_path: str = ""
    serving_model_dir: str = ""  # where Pusher writes version folders for TF Serving
    seed: int = defaults.SPLIT_SEED
    max_bad_fraction: float = defaults.MAX_BAD_FRACTION
    frequency_threshold: int = defaults.FREQUENCY_THRESHOLD
    embedding_dim: int = defaults.EMBEDDING_DIM
    backbone: str = defaults.BACKBONE
    pretrain_epochs: int = defaults.PRETRAIN_EPOCHS
    search_epochs: int = defaults.SEARCH_EPOCHS
    gate_every: int = 0  # 0: by the rule of the batches per epoch
    gate_learning_rate: float = defaults.GATE_LEARNING_RATE
    regularization_weight: float = defaults.REGULARIZATION_WEIGHT
    gate_rank: int = defaults.GATE_RANK
    patience: int = defaults.PATIENCE
    clusters: int = defaults.CLUSTERS
    representation: str = defaults.REPRESENTATION
    retrain_epochs: int = defaults.RETRAIN_EPOCHS
    warm_start: bool = defaults.WARM_START
    shared_embedding: bool = defaults.SHARED_EMBEDDING
    routing: str = defaults.ROUTING
    batch_size: int = 0  # 0: by the rule of the training rows
    margin: float = defaults.BLESSING_MARGIN  # blessed when routed AUC >= base AUC - margin
    last_blessed_margin: float = defaults.LAST_BLESSED_MARGIN
    min_auc: float = defaults.MIN_AUC
    jit_compile: bool = defaults.JIT_COMPILE
    dtype_policy: str = defaults.DTYPE_POLICY
    strategy: str = defaults.STRATEGY
    # FnApiRunner, as the DirectRunner would end up with: Beam 2.77's DirectRunner first tries
    # PrismRunner, which downloads its binary from GitHub (offline: fails, leaving /tmp/beam-temp*).
    beam_args: tuple = ("--runner=FnApiRunner", "--direct_num_workers=2",
                        "--direct_running_mode=multi_threading")

    def __post_init__(self):
        distribute.check_name(self.strategy, "IHAS_STRATEGY (PipelineConfig.strategy)")
        defaults = {
            "data_root": "data", "pipeline_root": "pipeline_root",
            "metadata_path": "metadata.sqlite", "serving_model_dir": "serving_model",
        }
        for name, leaf in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, os.path.join(self.home, leaf))


def from_env(**overrides: Any) -> PipelineConfig:
    """The configuration: defaults, then IHAS_* environment variables, then OVERRIDES.

    Each field is read from IHAS_ and its name in upper case (IHAS_DATA_ROOT for `data_root`),
    converted to the type of its default (a boolean from 1/0, true/false, yes/no or on/off); an
    empty variable keeps the default.

    Args:
        **overrides: `PipelineConfig` fields, by name.

    Returns:
        The configuration.
    """
    values = {}
    for field in dataclasses.fields(PipelineConfig):
        name = "IHAS_" + field.name.upper()
        if field.name == "beam_args":
            if os.environ.get(name):
                values[field.name] = tuple(shlex.split(os.environ[name]))
            continue
        if field.name == "clusters" and os.environ.get(name, "").strip().lower() == "auto":
            values[field.name] = 0
            continue
        kind = type(field.default)
        value = _env(name, None, kind)
        if value is not None:
            values[field.name] = value
    values.update(overrides)
    return PipelineConfig(**values)
