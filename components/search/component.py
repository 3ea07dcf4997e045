"""The Search component: trains the iHAS search model (gates over embedding dimensions)."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.search import executor
from ihas_keras import defaults, distribute


class SearchSpec(types.ComponentSpec):
    """Transformed examples and the transform graph in; the search model and its logs out."""

    PARAMETERS = {
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "embedding_dim": ExecutionParameter(type=int),
        "backbone": ExecutionParameter(type=str),
        "pretrain_epochs": ExecutionParameter(type=int),
        "epochs": ExecutionParameter(type=int),
        "gate_every": ExecutionParameter(type=int),
        "gate_learning_rate": ExecutionParameter(type=float),
        "patience": ExecutionParameter(type=int),
        "batch_size": ExecutionParameter(type=int),
        "regularization_weight": ExecutionParameter(type=float),
        "gate_rank": ExecutionParameter(type=int, optional=True),
        "jit_compile": ExecutionParameter(type=int, optional=True),  # 0 or 1
        "dtype_policy": ExecutionParameter(type=str, optional=True),
        "strategy": ExecutionParameter(type=str, optional=True),
        "seed": ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
    }


class Search(base_component.BaseComponent):
    """Pretrains with open gates, then bi-level search, each phase to early stop.

    Base steps run on split "train", gate steps on split "eval". Each phase stops once the
    validation AUC has not improved for `patience` epochs (`ihas_keras.search`); the epochs are
    caps. Outputs `model` (`search.keras` and `gate_histogram.png`) and `model_run`
    (TensorBoard logs).

    Args:
        examples: the transformed examples (Transform's `transformed_examples`).
        transform_graph: Transform's `transform_graph` (the fields' vocabulary sizes).
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: the schema file, for format "generic".
        embedding_dim: the full width of every field's embedding.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        pretrain_epochs: the most epochs over "train" with the gates open; 0 for none.
        epochs: the most epochs of bi-level search.
        gate_every: training batches between two gate steps (one "eval" batch each); 0: by the
            rule of the batches per epoch (`ihas_keras.schedule.gate_every`).
        gate_learning_rate: the Adam learning rate of the gate (architecture) steps.
        patience: epochs without a better validation AUC before a phase stops.
        batch_size: examples per batch; 0: by the rule of split "train"'s rows
            (`ihas_keras.schedule.batch_size`).
        regularization_weight: the gate regularizer's weight in the gate loss.
        gate_rank: the gate kernel's rank; 0: the full N* x N* kernel.
        jit_compile: compile the training steps with XLA (for GPUs; 0 or 1).
        dtype_policy: Keras's dtype policy of the models built: "float32", "mixed_float16" or
            "mixed_bfloat16" (`ihas_keras.precision.dtype_policy`).
        strategy: the `tf.distribute` strategy the model trains under: "default",
            "one_device", "mirrored" or "multi_worker" (`ihas_keras.distribute`); recorded on
            `model` with its number of replicas (custom properties `strategy`, `replicas`).
        seed: seeds the training shuffle, Keras and the gate noise.

    Raises:
        ValueError: STRATEGY names no strategy (`ihas_keras.distribute.check_name`).
    """

    SPEC_CLASS = SearchSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 format: str, schema: str | None = None,
                 embedding_dim: int = defaults.EMBEDDING_DIM, backbone: str = defaults.BACKBONE,
                 pretrain_epochs: int = defaults.PRETRAIN_EPOCHS,
                 epochs: int = defaults.SEARCH_EPOCHS, gate_every: int = 0,
                 gate_learning_rate: float = defaults.GATE_LEARNING_RATE,
                 patience: int = defaults.PATIENCE, batch_size: int = 0,
                 regularization_weight: float = defaults.REGULARIZATION_WEIGHT,
                 gate_rank: int = defaults.GATE_RANK,
                 jit_compile: bool | int = defaults.JIT_COMPILE,
                 dtype_policy: str = defaults.DTYPE_POLICY,
                 strategy: str = defaults.STRATEGY,
                 seed: int = defaults.SPLIT_SEED) -> None:
        distribute.check_name(strategy, "Search: strategy")
        spec = SearchSpec(
            examples=examples, transform_graph=transform_graph, format=format, schema=schema,
            embedding_dim=embedding_dim, backbone=backbone, pretrain_epochs=pretrain_epochs,
            epochs=epochs, gate_every=gate_every,
            gate_learning_rate=float(gate_learning_rate), patience=patience,
            batch_size=batch_size,
            regularization_weight=float(regularization_weight), gate_rank=gate_rank,
            jit_compile=int(jit_compile), dtype_policy=dtype_policy, strategy=strategy,
            seed=seed, model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)
