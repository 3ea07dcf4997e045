"""The Cluster executor: `ihas_keras.fit_clusters` on split "train" of the transformed examples."""

import os
from typing import Any

from tfx.dsl.components.base import base_executor
from tfx.types import Artifact, artifact_utils

import ihas_keras
from components.search.executor import MODEL_FILE, batch_size
from ihas_keras.data import get_format, splits
from ihas_keras.layers.router import check_representation
from ihas_keras.plots import widths_heatmap

PLAN_FILE = "plan.json"
HEATMAP_FILE = "widths.png"


class Executor(base_executor.BaseExecutor):
    """Writes `{cluster_plan.uri}/plan.json` and the widths heatmap `widths.png`."""

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Fits the clusters and writes the plan and its heatmap.

        A `batch_size` of 0 is the rule of split "train"'s rows.

        Raises:
            ValueError: the representation is unknown (before anything is read).
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        representation = check_representation(exec_properties["representation"], "Cluster")
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        examples = artifact_utils.get_single_uri(input_dict["examples"])
        search_dir = artifact_utils.get_single_uri(input_dict["model"])
        plan_dir = artifact_utils.get_single_uri(output_dict["cluster_plan"])
        search = ihas_keras.load_model(os.path.join(search_dir, MODEL_FILE))
        train = splits.dataset(examples, "train", splits.transformed_spec(search.fields, fmt.label),
                               fmt.label, batch_size(examples, exec_properties["batch_size"]))

        plan = ihas_keras.fit_clusters(search, train, exec_properties["num_clusters"],
                                       exec_properties["seed"], progress=False,
                                       representation=representation)
        plan.save(os.path.join(plan_dir, PLAN_FILE))
        widths_heatmap(plan.widths(), plan.fields, os.path.join(plan_dir, HEATMAP_FILE),
                       sizes=plan.sizes)
