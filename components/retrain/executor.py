"""The Retrain executor: `ihas_keras.retrain`, a base model, and both serving exports."""

import json
import logging
import os
from typing import Any

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils
from tfx.utils import path_utils

import ihas_keras
from components.cluster.executor import PLAN_FILE, plan_folders
from components.search.executor import (
    MODEL_FILE,
    batch_size,
    gpu_settings,
    record_strategy,
    training_strategy,
)
from ihas_keras import defaults, distribute
from ihas_keras.data import get_format, splits
from ihas_keras.export.saved_model import export_serving_model
from ihas_keras.precision import dtype_policy
from ihas_keras.retraining import base_recommender, fit_recommender, retrain_best

ROUTED_FILE = "routed.keras"
BASELINE_FILE = "baseline.keras"
CHOICE_FILE = "clusters.json"


class Executor(base_executor.BaseExecutor):
    """Writes the retrained model, the base model and their serving SavedModels.

    They are `{model.uri}/routed.keras`, `{baseline.uri}/baseline.keras`, and each one's serving
    SavedModel at `path_utils.serving_model_path(uri)`. With a plan of K >= 2 clusters
    `routed.keras` holds the routed model; with K = 1 it holds a plain recommender with the
    searched widths (no gate, no router), whose serving export answers cluster 0. Beside
    `routed.keras`, `plan.json` is the plan of the model and `clusters.json` its K and every
    candidate K's validation AUC (one entry unless the plan artifact holds a plan per K, auto:
    then the model is the K of the best validation AUC, `ihas_keras.retraining.retrain_best`).
    """

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Retrains the model of the plan and the base model, saves and exports both.

        A `batch_size` of 0 is the rule of split "train"'s rows. `seed` seeds the training
        shuffle and, before each is made, the recommenders' and the base model's initialisation.
        The models are loaded and built under the `strategy` property's `tf.distribute`
        strategy; on a multi-worker cluster only the chief writes them.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        # First: a multi-worker strategy must be made before TensorFlow runs anything.
        strategy = training_strategy(exec_properties, "Retrain")
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        graph = artifact_utils.get_single_uri(input_dict["transform_graph"])
        search_dir = artifact_utils.get_single_uri(input_dict["search_model"])
        plan_dir = artifact_utils.get_single_uri(input_dict["cluster_plan"])
        batch = batch_size(examples, exec_properties["batch_size"])
        epochs, patience = exec_properties["epochs"], exec_properties["patience"]
        seed = exec_properties["seed"]
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
        train = splits.dataset(examples, "train", spec, fmt.label, batch, shuffle=True,
                               seed=seed)
        validation = splits.dataset(examples, "eval", spec, fmt.label, batch)
        plans = [ihas_keras.ClusterPlan.load(os.path.join(folder, PLAN_FILE))
                 for folder in plan_folders(plan_dir)]
        jit_compile, policy = gpu_settings(exec_properties)

        with strategy.scope():
            search = ihas_keras.load_model(os.path.join(search_dir, MODEL_FILE))
            backbone = exec_properties.get("backbone") or search.backbone_kind
            with dtype_policy(policy):
                model, plan, scores = retrain_best(
                    search, plans, train, validation, backbone=backbone, epochs=epochs,
                    batch_size=batch, patience=patience, verbose=2,
                    warm=bool(exec_properties["warm_start"]), seed=seed,
                    shared=_flag(exec_properties, "shared_embedding", defaults.SHARED_EMBEDDING),
                    routing=exec_properties.get("routing") or defaults.ROUTING,
                    jit_compile=jit_compile)
                logging.info("Retrain: K = %d, %s", plan.num_clusters,
                             "a routed model" if plan.num_clusters > 1 else
                             f"one recommender of widths {plan.widths()[0].tolist()}")
                keras.utils.set_random_seed(seed)  # the base model's start does not depend on it
                baseline = fit_recommender(base_recommender(search, backbone), train, validation,
                                           epochs, patience, verbose=2, jit_compile=jit_compile)
        for key in ("model", "baseline"):
            record_strategy(output_dict[key][0], strategy, exec_properties)
        if not distribute.is_chief(strategy):
            logging.info("Retrain: not the chief worker; the chief writes the models")
            return
        for key, trained, name in (("model", model, ROUTED_FILE),
                                   ("baseline", baseline, BASELINE_FILE)):
            uri = artifact_utils.get_single_uri(output_dict[key])
            trained.save(os.path.join(uri, name))
            export_serving_model(trained, graph, fmt, path_utils.serving_model_path(uri))
        model_dir = artifact_utils.get_single_uri(output_dict["model"])
        plan.save(os.path.join(model_dir, PLAN_FILE))
        with tf.io.gfile.GFile(os.path.join(model_dir, CHOICE_FILE), "w") as f:
            json.dump({"num_clusters": plan.num_clusters,
                       "validation_auc": {str(k): auc for k, auc in scores.items()}}, f)


def _flag(exec_properties: dict[str, Any], name: str, default: bool) -> bool:
    """The 0/1 execution property NAME as a boolean; DEFAULT where it is unset."""
    value = exec_properties.get(name)
    return default if value is None else bool(value)
