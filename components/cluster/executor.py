"""The Cluster executor: `ihas_keras.fit_clusters` on split "train" of the transformed examples."""

import json
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils

import ihas_keras
from components.search.executor import MODEL_FILE, batch_size
from ihas_keras import defaults
from ihas_keras.data import get_format, splits
from ihas_keras.layers.router import check_representation
from ihas_keras.plots import widths_heatmap

PLAN_FILE = "plan.json"
HEATMAP_FILE = "widths.png"
AUTO = 0  # num_clusters of "auto": a plan per candidate K


def check_clusters(num_clusters: int, candidates: Sequence[int]) -> None:
    """Raises ValueError, naming the component, unless NUM_CLUSTERS is a K >= 1 or AUTO with
    CANDIDATES all at least 1."""
    if num_clusters < AUTO:
        raise ValueError(f"Cluster: num_clusters must be a K >= 1 or 0 (auto), got {num_clusters}")
    if num_clusters == AUTO and (not candidates or min(candidates) < 1):
        raise ValueError(f"Cluster: auto needs candidate K of at least 1, got {list(candidates)}")


def plan_folders(plan_dir: str) -> list[str]:
    """The folders of a `cluster_plan` artifact that hold a plan: itself, or one per K (auto).

    Args:
        plan_dir: the artifact's URI.

    Returns:
        The folders, in increasing K.

    Raises:
        FileNotFoundError: no plan in PLAN_DIR.
    """
    if tf.io.gfile.exists(os.path.join(plan_dir, PLAN_FILE)):
        return [plan_dir]
    found = sorted((int(name[1:].rstrip("/")), os.path.join(plan_dir, name.rstrip("/")))
                   for name in tf.io.gfile.listdir(plan_dir)
                   if name.startswith("k") and name[1:].rstrip("/").isdecimal())
    folders = [folder for _, folder in found
               if tf.io.gfile.exists(os.path.join(folder, PLAN_FILE))]
    if not folders:
        raise FileNotFoundError(f"Cluster plan {plan_dir}: no {PLAN_FILE}, nor k<K>/{PLAN_FILE}")
    return folders


class Executor(base_executor.BaseExecutor):
    """Writes `{cluster_plan.uri}/plan.json` and the widths heatmap `widths.png`.

    With `num_clusters` 0 (auto): `k{K}/plan.json` and `k{K}/widths.png` for each candidate K.
    """

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Fits the clusters and writes the plan and its heatmap.

        A `batch_size` of 0 is the rule of split "train"'s rows.

        Raises:
            ValueError: the representation or K is not valid (before anything is read).
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        representation = check_representation(exec_properties["representation"], "Cluster")
        num_clusters = exec_properties["num_clusters"]
        candidates = _candidates(exec_properties.get("candidates"))
        check_clusters(num_clusters, candidates)
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        search_dir = artifact_utils.get_single_uri(input_dict["model"])
        plan_dir = artifact_utils.get_single_uri(output_dict["cluster_plan"])
        search = ihas_keras.load_model(os.path.join(search_dir, MODEL_FILE))
        train = splits.dataset(examples, "train", splits.transformed_spec(search.fields, fmt.label),
                               fmt.label, batch_size(examples, exec_properties["batch_size"]))

        for k in candidates if num_clusters == AUTO else [num_clusters]:
            plan = ihas_keras.fit_clusters(search, train, k, exec_properties["seed"],
                                           progress=False, representation=representation)
            folder = os.path.join(plan_dir, f"k{k}") if num_clusters == AUTO else plan_dir
            tf.io.gfile.makedirs(folder)
            plan.save(os.path.join(folder, PLAN_FILE))
            widths_heatmap(plan.widths(), plan.fields, os.path.join(folder, HEATMAP_FILE),
                           sizes=plan.sizes)


def _candidates(value) -> list[int]:
    """The `candidates` execution property: a list, or its JSON text (as TFX may pass it)."""
    if value is None:
        return list(defaults.CLUSTER_CANDIDATES)
    return [int(k) for k in (json.loads(value) if isinstance(value, str) else value)]
