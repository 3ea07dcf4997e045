"""The Retrain component: one recommender per cluster, served as one routed model."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.retrain import executor
from components.types import ClusterPlan
from ihas_keras import defaults


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
        "batch_size": ExecutionParameter(type=int),
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

    Also trains a plain recommender (every width = embedding_dim) on the same data. Outputs
    `model` (`routed.keras` and the serving SavedModel in `Format-Serving/`, which Pusher pushes)
    and `baseline` (`baseline.keras` and its SavedModel, same layout).

    Args:
        examples: the transformed examples (Transform's `transformed_examples`).
        transform_graph: Transform's `transform_graph`, built into both serving exports.
        model: the Search component's model (the spec's input `search_model`).
        cluster_plan: the Cluster component's `cluster_plan`.
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: the schema file, for format "generic".
        backbone: the recommenders' backbone; "" keeps the search's.
        epochs: the most epochs of each recommender and of the plain one (early stopping).
        batch_size: examples per batch.
    """

    SPEC_CLASS = RetrainSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 model: types.BaseChannel, cluster_plan: types.BaseChannel, format: str,
                 schema: str | None = None, backbone: str = "",
                 epochs: int = defaults.RETRAIN_EPOCHS,
                 batch_size: int = defaults.BATCH_SIZE) -> None:
        spec = RetrainSpec(
            examples=examples, transform_graph=transform_graph, search_model=model,
            cluster_plan=cluster_plan, format=format, schema=schema, backbone=backbone,
            epochs=epochs, batch_size=batch_size,
            model=types.Channel(type=standard_artifacts.Model),
            baseline=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
