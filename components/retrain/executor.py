"""The Retrain executor: `ihas_keras.retrain`, a base model, and both serving exports."""

import os
from typing import Any

import tensorflow_transform as tft
from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils
from tfx.utils import path_utils

import ihas_keras
from components.cluster.executor import PLAN_FILE
from components.search.executor import MODEL_FILE
from ihas_keras.data import get_format, splits
from ihas_keras.export.saved_model import export_serving_model
from ihas_keras.retraining import base_recommender, fit_recommender, retrain

ROUTED_FILE = "routed.keras"
BASELINE_FILE = "baseline.keras"


class Executor(base_executor.BaseExecutor):
    """Writes the routed model, the base model and their serving SavedModels.

    They are `{model.uri}/routed.keras`, `{baseline.uri}/baseline.keras`, and each one's serving
    SavedModel at `path_utils.serving_model_path(uri)`.
    """

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Retrains the routed model and the base model, saves and exports both."""
        self._log_startup(input_dict, output_dict, exec_properties)
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        graph = artifact_utils.get_single_uri(input_dict["transform_graph"])
        search_dir = artifact_utils.get_single_uri(input_dict["search_model"])
        plan_dir = artifact_utils.get_single_uri(input_dict["cluster_plan"])
        batch_size, epochs = exec_properties["batch_size"], exec_properties["epochs"]
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
        train = splits.dataset(examples, "train", spec, fmt.label, batch_size, shuffle=True)
        validation = splits.dataset(examples, "eval", spec, fmt.label, batch_size)
        search = ihas_keras.load_model(os.path.join(search_dir, MODEL_FILE))
        plan = ihas_keras.ClusterPlan.load(os.path.join(plan_dir, PLAN_FILE))
        backbone = exec_properties.get("backbone") or search.backbone_kind

        routed = retrain(search, plan, train, validation, backbone, epochs, batch_size,
                         verbose=2)
        baseline = fit_recommender(base_recommender(search, backbone), train, validation,
                                   epochs, verbose=2)
        for key, model, name in (("model", routed, ROUTED_FILE),
                                 ("baseline", baseline, BASELINE_FILE)):
            uri = artifact_utils.get_single_uri(output_dict[key])
            model.save(os.path.join(uri, name))
            export_serving_model(model, graph, fmt, path_utils.serving_model_path(uri))
