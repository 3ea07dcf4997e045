"""The Retrain component: one recommender per cluster, served as one routed model."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.retrain import executor
from components.types import ClusterPlan
from ihas_keras import defaults, distribute


class RetrainSpec(types.ComponentSpec):
    """Transformed examples, the transform graph, the search model and the plan in; two models out.

    The models out are the routed model and the base model for comparison. The search model's
    key is `search_model`: keys are unique across inputs and outputs.
    """

    PARAMETERS = {
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "backbone": ExecutionParameter(type=str, optional=True),
        "epochs": ExecutionParameter(type=int),
        "patience": ExecutionParameter(type=int),
        "batch_size": ExecutionParameter(type=int),
        "warm_start": ExecutionParameter(type=int),  # 0 or 1, as TFX's own components do
        "shared_embedding": ExecutionParameter(type=int, optional=True),  # 0 or 1
        "routing": ExecutionParameter(type=str, optional=True),
        "jit_compile": ExecutionParameter(type=int, optional=True),  # 0 or 1
        "dtype_policy": ExecutionParameter(type=str, optional=True),
        "strategy": ExecutionParameter(type=str, optional=True),
        "seed": ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "search_model": ChannelParameter(type=standard_artifacts.Model),
        "cluster_plan": ChannelParameter(type=ClusterPlan),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline": ChannelParameter(type=standard_artifacts.Model),
    }


class Retrain(base_component.BaseComponent):
    """Retrains each cluster's recommender on split "train" (early stopping on "eval").

    With a plan of K >= 2 clusters the model is the routed model; with K = 1 it is one plain
    recommender with the searched widths (no gate, no router; it serves cluster 0). Also trains
    a plain recommender (every width = embedding_dim) on the same data, by the same rule.
    Outputs `model` (`routed.keras`, whichever the model is, and the serving SavedModel in
    `Format-Serving/`, which Pusher pushes) and `baseline` (`baseline.keras` and its SavedModel,
    same layout).

    Args:
        examples: the transformed examples (Transform's `transformed_examples`).
        transform_graph: Transform's `transform_graph`, built into both serving exports.
        model: the Search component's model (the spec's input `search_model`).
        cluster_plan: the Cluster component's `cluster_plan`.
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: the schema file, for format "generic".
        backbone: the recommenders' backbone; "" keeps the search's.
        epochs: the most epochs of each recommender and of the plain one (early stopping).
        patience: epochs without a better "eval" AUC before a recommender stops.
        batch_size: examples per batch; 0: by the rule of split "train"'s rows
            (`ihas_keras.schedule.batch_size`).
        warm_start: start each recommender from the search model's kept embedding columns and
            backbone (`ihas_keras.retrain`'s `warm`); False (0) trains them from scratch.
        shared_embedding: the clusters' models are towers over one shared embedding
            (`ihas_keras.retrain`'s `shared`); False (0): one recommender per cluster.
        routing: how the shared towers' model routes at serving: "distilled" (a linear router
            over the towers' embedding) or "gate" (the search model's gate and centroids).
        jit_compile: compile the training steps with XLA (for GPUs; 0 or 1).
        dtype_policy: Keras's dtype policy of the models built: "float32", "mixed_float16" or
            "mixed_bfloat16" (`ihas_keras.precision.dtype_policy`).
        strategy: the `tf.distribute` strategy the models train under: "default",
            "one_device", "mirrored" or "multi_worker" (`ihas_keras.distribute`); recorded on
            `model` and `baseline` with the number of replicas (custom properties `strategy`,
            `replicas`).
        seed: seeds the training shuffle and the recommenders' initialisation.

    Raises:
        ValueError: STRATEGY names no strategy (`ihas_keras.distribute.check_name`).
    """

    SPEC_CLASS = RetrainSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 model: types.BaseChannel, cluster_plan: types.BaseChannel, format: str,
                 schema: str | None = None, backbone: str = "",
                 epochs: int = defaults.RETRAIN_EPOCHS, patience: int = defaults.PATIENCE,
                 batch_size: int = 0, warm_start: bool | int = defaults.WARM_START,
                 shared_embedding: bool | int = defaults.SHARED_EMBEDDING,
                 routing: str = defaults.ROUTING,
                 jit_compile: bool | int = defaults.JIT_COMPILE,
                 dtype_policy: str = defaults.DTYPE_POLICY,
                 strategy: str = defaults.STRATEGY,
                 seed: int = defaults.SPLIT_SEED) -> None:
        distribute.check_name(strategy, "Retrain: strategy")
        spec = RetrainSpec(
            examples=examples, transform_graph=transform_graph, search_model=model,
            cluster_plan=cluster_plan, format=format, schema=schema, backbone=backbone,
            epochs=epochs, patience=patience, batch_size=batch_size,
            warm_start=int(warm_start), shared_embedding=int(shared_embedding),
            routing=routing, jit_compile=int(jit_compile), dtype_policy=dtype_policy,
            strategy=strategy, seed=seed,
            model=types.Channel(type=standard_artifacts.Model),
            baseline=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
