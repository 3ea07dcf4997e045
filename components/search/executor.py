"""The Search executor: `ihas_keras.search` over the Transform component's splits."""

import logging
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.framework import summary_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils

import ihas_keras
from ihas_keras import defaults, distribute, optimizers, schedule
from ihas_keras.data import get_format, splits
from ihas_keras.data.transform import vocabulary_sizes
from ihas_keras.plots import gate_histograms
from ihas_keras.precision import dtype_policy

MODEL_FILE = "search.keras"
HISTOGRAM_FILE = "gate_histogram.png"
HISTOGRAM_BATCHES = 4  # eval batches whose gate probabilities are plotted
SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
).SerializeToString()


def gpu_settings(exec_properties: dict[str, Any]) -> tuple[bool, str]:
    """(jit_compile, dtype policy) of a stage's execution properties; the defaults where unset.

    Args:
        exec_properties: the component's execution properties.

    Returns:
        Whether to compile the training steps with XLA, and Keras's dtype policy of the models.
    """
    jit_compile = exec_properties.get("jit_compile")
    return (defaults.JIT_COMPILE if jit_compile is None else bool(jit_compile),
            exec_properties.get("dtype_policy") or defaults.DTYPE_POLICY)


def training_strategy(exec_properties: dict[str, Any], component: str,
                      ) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy of a stage's execution property `strategy`.

    Args:
        exec_properties: the component's execution properties.
        component: the component's name, for errors.

    Returns:
        `ihas_keras.distribute.strategy` of the property; `defaults.STRATEGY` where unset.

    Raises:
        ValueError: the property names no strategy, naming the component and the property.
    """
    return distribute.strategy(_strategy_name(exec_properties),
                               f"{component}'s execution property 'strategy'")


def _strategy_name(exec_properties: dict[str, Any]) -> str:
    return exec_properties.get("strategy") or defaults.STRATEGY


def record_strategy(artifact: Artifact, strategy: tf.distribute.Strategy,
                    exec_properties: dict[str, Any]) -> None:
    """Records on ARTIFACT (in ML Metadata) the strategy its model trained under, and its
    replicas.

    Args:
        artifact: the output model artifact.
        strategy: the strategy.
        exec_properties: the component's execution properties (the strategy's name).
    """
    artifact.set_string_custom_property("strategy", _strategy_name(exec_properties))
    artifact.set_int_custom_property("replicas", strategy.num_replicas_in_sync)


def batch_size(examples: str, requested: int) -> int:
    """The batch size of a stage: REQUESTED, or by the rule of split "train"'s rows when 0.

    The rule is `ihas_keras.schedule.batch_size` of the records of EXAMPLES's split "train"
    (`splits.count_records`, one pass over its files).

    Args:
        examples: the (transformed) Examples artifact's URI.
        requested: the component's `batch_size`; 0 for the rule.

    Returns:
        The batch size.

    Raises:
        ValueError: REQUESTED is negative.
        BadInputError: the rule is asked for and split "train" has no files.
    """
    if requested < 0:
        raise ValueError(f"batch_size must be positive, or 0 for the rule; got {requested}")
    if requested:
        return requested
    rows = splits.count_records(examples, "train")
    size = schedule.batch_size(rows)
    logging.info("batch size %d, by the rule of %d training rows", size, rows)
    return size


class EpochSummaries(keras.callbacks.Callback):
    """TensorBoard scalars `epoch_{metric}` in LOG_DIR/train, numbered across `fit` calls.

    The `fit` calls are pretraining, then search. Written with TF's own summary ops, not
    `keras.callbacks.TensorBoard`, which numbers each `fit`'s epochs from 0 (the two phases would
    overwrite each other's steps); `tensorboard --logdir` on the ModelRun shows them.

    Args:
        log_dir: the folder of the logs (the ModelRun artifact's URI).
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Writes each metric of LOGS as a scalar at this callback's own epoch count.

        Args:
            epoch: the epoch's number within the current `fit` (unused).
            logs: the epoch's metrics, by name.
        """
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.write(f"epoch_{name}", float(value), self.epochs, SCALAR)
        self.writer.flush()
        self.epochs += 1


class Executor(base_executor.BaseExecutor):
    """Trains the search model; writes `{model.uri}/search.keras` and its gate histogram."""

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Builds and searches the model, saves it and plots its gate probabilities on "eval".

        A `batch_size` of 0 is the rule of split "train"'s rows (`batch_size`), a `gate_every`
        of 0 the rule of the batches per epoch (`ihas_keras.search`'s None). The models are
        built under the `strategy` property's `tf.distribute` strategy; on a multi-worker
        cluster only the chief writes the model and the logs.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        # First: a multi-worker strategy must be made before TensorFlow runs anything.
        strategy = training_strategy(exec_properties, "Search")
        chief = distribute.is_chief(strategy)
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        graph = artifact_utils.get_single_uri(input_dict["transform_graph"])
        model_dir = artifact_utils.get_single_uri(output_dict["model"])
        logs = artifact_utils.get_single_uri(output_dict["model_run"])
        batch = batch_size(examples, exec_properties["batch_size"])
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
        train = splits.dataset(examples, "train", spec, fmt.label, batch, shuffle=True,
                               seed=exec_properties["seed"])
        validation = splits.dataset(examples, "eval", spec, fmt.label, batch)

        jit_compile, policy = gpu_settings(exec_properties)
        keras.utils.set_random_seed(exec_properties["seed"])
        gate_rank = exec_properties.get("gate_rank")
        with strategy.scope():
            with dtype_policy(policy):
                model = ihas_keras.build_model(
                    vocabulary_sizes(graph, fmt), exec_properties["embedding_dim"],
                    exec_properties["backbone"], seed=exec_properties["seed"],
                    regularization_weight=exec_properties["regularization_weight"],
                    compile=False,
                    gate_rank=defaults.GATE_RANK if gate_rank is None else gate_rank,
                )
            model.compile(architecture_optimizer=optimizers.architecture_optimizer(
                exec_properties["gate_learning_rate"]), jit_compile=jit_compile)
        ihas_keras.search(
            model, train, validation, exec_properties["pretrain_epochs"],
            exec_properties["epochs"], exec_properties["gate_every"] or None,
            callbacks=[EpochSummaries(logs)] if chief else [], verbose=2,
            patience=exec_properties["patience"],
        )
        record_strategy(output_dict["model"][0], strategy, exec_properties)
        if not chief:
            logging.info("Search: not the chief worker; the chief writes the model")
            return
        model.save(os.path.join(model_dir, MODEL_FILE))
        probabilities = [model.gated(x)[2].numpy() for x, _ in validation.take(HISTOGRAM_BATCHES)]
        gate_histograms({"gate probabilities (eval)": np.concatenate(probabilities)},
                        os.path.join(model_dir, HISTOGRAM_FILE))
