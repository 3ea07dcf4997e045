"""The Evaluate executor: AUC and log loss of the served models, the checks and the blessing."""

import json
import os
from typing import Any

import tensorflow as tf
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils
from tfx.utils import io_utils, path_utils

from ihas_keras.data import get_format, splits
from ihas_keras.errors import BadInputError
from ihas_keras.export import scoring

METRICS_FILE = "metrics.json"
SPLIT = "test"


def score(model_uri: str, examples_uri: str, label: str) -> dict:
    """AUC, log loss and row count of the SavedModel at MODEL_URI's serving path.

    The model is fed the serialized raw tf.Examples of split "test" through its
    `serving_default` signature.

    Args:
        model_uri: a Model artifact's URI (the Retrain layout).
        examples_uri: the raw Examples artifact's URI.
        label: the label's feature name.

    Returns:
        {"auc", "logloss", "examples"}.

    Raises:
        BadInputError: there is no SavedModel at the serving path, it cannot be loaded, the
            split is missing, or its labels are all equal.
    """
    export_dir = path_utils.serving_model_path(model_uri)
    if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        raise BadInputError(f"{export_dir}: no SavedModel (expected the Retrain layout)")
    return scoring.evaluate_export(export_dir, examples_uri, SPLIT, label)[0]


def checks(metrics: dict, margin: float, last_blessed_margin: float,
           min_auc: float) -> dict[str, bool]:
    """The blessing's checks of the model's AUC, by name; the model is blessed if all pass.

    Args:
        metrics: {"model", "baseline", and "last_blessed" if there is one}: `score` results;
            "last_blessed" may instead be {"same_model": True} (the model is the one last
            blessed: blessing it again would only push it again).
        margin: the AUC the model may lose against the baseline.
        last_blessed_margin: the AUC the model may lose against the last blessed model.
        min_auc: the lowest AUC a blessed model may have.

    Returns:
        {"min_auc", "baseline", and "last_blessed" if there is one}: whether each holds
        ("last_blessed" fails for the same model).
    """
    auc = metrics["model"]["auc"]
    result = {"min_auc": auc >= min_auc, "baseline": auc >= metrics["baseline"]["auc"] - margin}
    last = metrics.get("last_blessed")
    if last is not None:
        result["last_blessed"] = (not last.get("same_model")
                                  and auc >= last["auc"] - last_blessed_margin)
    return result


class Executor(base_executor.BaseExecutor):
    """Writes `metrics.json` and `BLESSED` or `NOT_BLESSED` into the blessing's URI."""

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Scores the models and writes the blessing.

        Raises:
            BadInputError: the format has no label, or split "test" has no files.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        if not fmt.label:
            raise BadInputError(f"format {fmt.name!r} has no label: nothing to evaluate against")
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        baseline = artifact_utils.get_single_instance(input_dict["baseline"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        last_blessed = input_dict.get("last_blessed") or []
        thresholds = {name: exec_properties[name]
                      for name in ("margin", "last_blessed_margin", "min_auc")}
        splits.split_files(examples, SPLIT)  # fails before loading any model

        metrics = {"model": score(model.uri, examples, fmt.label),
                   "baseline": score(baseline.uri, examples, fmt.label)}
        if last_blessed:
            (last,) = last_blessed
            # A rerun whose Retrain came from cache: the model is the one already blessed.
            same = last.id == model.id and last.uri == model.uri
            metrics["last_blessed"] = {"uri": last.uri, "same_model": same,
                                       **({} if same else score(last.uri, examples, fmt.label))}
        passed = checks(metrics, **thresholds)
        blessed = all(passed.values())
        metrics.update(thresholds, checks=passed, blessed=blessed)
        io_utils.write_string_file(os.path.join(blessing.uri, METRICS_FILE),
                                   json.dumps(metrics, indent=2))
        name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, name), "")
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE,
        )
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY,
                                            model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY,
                                         model.id)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY,
                                            baseline.uri)
