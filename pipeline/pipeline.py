"""The iHAS TFX pipeline: raw files -> examples -> statistics, schema, validation -> transform ->
search -> cluster -> retrain -> evaluate (against the base and the last blessed model) -> push."""

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.cluster import Cluster
from components.evaluate import Evaluate
from components.example_gen import RawExampleGen
from components.retrain import Retrain
from components.search import Search
from ihas_keras.data.preprocess import SPLITS
from pipeline.config import PipelineConfig

PREPROCESSING_FN = "pipeline.preprocessing.preprocessing_fn"


def create_components(config: PipelineConfig, fingerprint_input: bool = True) -> list:
    """The pipeline's components, in order.

    RawExampleGen, StatisticsGen, SchemaGen, ExampleValidator, Transform, Search, Cluster,
    Retrain, the latest blessed model's resolver, Evaluate and Pusher.

    Args:
        config: the settings.
        fingerprint_input: RawExampleGen records its input files' names, sizes and times (for
            caching); False where the pipeline is compiled to run elsewhere.

    Returns:
        The components.
    """
    data = {"format": config.format, "schema": config.schema or None}
    example_gen = RawExampleGen(
        input_base=config.data_root, seed=config.seed, max_bad_fraction=config.max_bad_fraction,
        fingerprint_input=fingerprint_input, **data,
    )
    examples = example_gen.outputs["examples"]
    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    # Shapes left open: an empty field is an absent feature, so every field is a VarLen feature.
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={**data, "frequency_threshold": config.frequency_threshold},
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
        # StatisticsGen already describes the raw data; Transform's own pre- and post-transform
        # statistics would cost a third pass and, on the DirectRunner, GBs of memory.
        disable_statistics=True,
    )
    transformed = transform.outputs["transformed_examples"]
    graph = transform.outputs["transform_graph"]
    search = Search(
        examples=transformed, transform_graph=graph, embedding_dim=config.embedding_dim,
        backbone=config.backbone, pretrain_epochs=config.pretrain_epochs,
        epochs=config.search_epochs, gate_every=config.gate_every,
        gate_learning_rate=config.gate_learning_rate, patience=config.patience,
        batch_size=config.batch_size, regularization_weight=config.regularization_weight,
        gate_rank=config.gate_rank, jit_compile=config.jit_compile,
        dtype_policy=config.dtype_policy, strategy=config.strategy,
        seed=config.seed, **data,
    )
    cluster = Cluster(
        examples=transformed, model=search.outputs["model"], num_clusters=config.clusters,
        representation=config.representation, batch_size=config.batch_size, seed=config.seed,
        **data,
    )
    retrain = Retrain(
        examples=transformed, transform_graph=graph, model=search.outputs["model"],
        cluster_plan=cluster.outputs["cluster_plan"], epochs=config.retrain_epochs,
        patience=config.patience, batch_size=config.batch_size,
        warm_start=config.warm_start, shared_embedding=config.shared_embedding,
        routing=config.routing, jit_compile=config.jit_compile,
        dtype_policy=config.dtype_policy, strategy=config.strategy, seed=config.seed,
        **data,
    )
    # The model Evaluate last blessed (so Pusher pushed it), as TFX's Evaluator examples resolve
    # their baseline; nothing on a pipeline's first run.
    last_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluate = Evaluate(
        examples=examples, model=retrain.outputs["model"], baseline=retrain.outputs["baseline"],
        margin=config.margin, last_blessed=last_blessed.outputs["model"],
        last_blessed_margin=config.last_blessed_margin, min_auc=config.min_auc, **data,
    )
    pusher = tfx.components.Pusher(
        model=retrain.outputs["model"],
        model_blessing=evaluate.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir
            )
        ),
    )
    return [example_gen, statistics_gen, schema_gen, example_validator, transform, search,
            cluster, retrain, last_blessed, evaluate, pusher]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
                    enable_cache: bool = True,
                    fingerprint_input: bool = True) -> tfx.dsl.Pipeline:
    """The TFX pipeline for a configuration.

    Args:
        config: the settings (`pipeline.config.from_env()`).
        metadata_connection_config: the ML Metadata store; the local runner passes a SQLite
            store at `config.metadata_path`, the Kubeflow runner None (the cluster's own).
        enable_cache: reuse the outputs of components whose inputs and settings are unchanged.
        fingerprint_input: as in `create_components`.

    Returns:
        The `tfx.dsl.Pipeline`.
    """
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, fingerprint_input),
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )
