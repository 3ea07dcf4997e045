"""The Cluster component: groups examples by their searched embedding masks (K-Means)."""

from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.cluster import executor
from components.cluster.executor import check_clusters
from components.types import ClusterPlan
from ihas_keras import defaults
from ihas_keras.layers.router import check_representation


class ClusterSpec(types.ComponentSpec):
    """Transformed examples and the search model in; the cluster plan out."""

    PARAMETERS = {
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "num_clusters": ExecutionParameter(type=int),
        "candidates": ExecutionParameter(type=list[int], optional=True),
        "representation": ExecutionParameter(type=str),
        "batch_size": ExecutionParameter(type=int),
        "seed": ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {"cluster_plan": ChannelParameter(type=ClusterPlan)}


class Cluster(base_component.BaseComponent):
    """K-Means over the search model's routing points of split "train".

    The points are each example's `representation` (`ihas_keras.fit_clusters`): K-Means is
    fitted on a uniform sample of them, then every example is assigned. Outputs `cluster_plan`
    (`plan.json`, `ihas_keras.ClusterPlan`, and `widths.png`). With `num_clusters` 0 ("auto")
    it holds one plan per K of `candidates` instead, in `k{K}/` each, and Retrain keeps the K
    of the best validation AUC.

    Args:
        examples: the transformed examples (Transform's `transformed_examples`).
        model: the Search component's `model`.
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: the schema file, for format "generic".
        num_clusters: K, the number of clusters; 0: "auto", a plan per K of CANDIDATES.
        candidates: the K of "auto" (`ihas_keras.defaults.CLUSTER_CANDIDATES`).
        representation: what K-Means clusters, one of `ihas_keras.layers.router.REPRESENTATIONS`:
            the gate probabilities ("probability"), the masks ("mask") or the masked embeddings
            ("masked_embedding").
        batch_size: examples per batch; 0: by the rule of split "train"'s rows
            (`ihas_keras.schedule.batch_size`).
        seed: the sample's and K-Means's seed.

    Raises:
        ValueError: REPRESENTATION is unknown, NUM_CLUSTERS is negative, or a candidate is
            below 1.
    """

    SPEC_CLASS = ClusterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, format: str,
                 schema: str | None = None, num_clusters: int = defaults.CLUSTERS,
                 candidates: Sequence[int] = defaults.CLUSTER_CANDIDATES,
                 representation: str = defaults.REPRESENTATION, batch_size: int = 0,
                 seed: int = defaults.SPLIT_SEED) -> None:
        if isinstance(representation, str):  # a placeholder is checked by the executor
            check_representation(representation, "Cluster")
        if isinstance(num_clusters, int):
            check_clusters(num_clusters, candidates)
        spec = ClusterSpec(
            examples=examples, model=model, format=format, schema=schema,
            num_clusters=num_clusters, candidates=[int(k) for k in candidates],
            representation=representation, batch_size=batch_size,
            seed=seed,
            cluster_plan=types.Channel(type=ClusterPlan),
        )
        super().__init__(spec=spec)
