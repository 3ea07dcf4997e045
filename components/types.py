"""Artifact types of the iHAS components (beside TFX's standard Examples, Model, ModelBlessing)."""

from tfx.types import artifact


class Quarantine(artifact.Artifact):
    """Rejected raw rows: `quarantine.jsonl` (file, line, reason, row) and `counts.json`."""

    TYPE_NAME = "ihas.Quarantine"  # namespace.Name: the form Kubeflow V2 requires


class ClusterPlan(artifact.Artifact):
    """The cluster stage's plan: `plan.json` (`ihas_keras.ClusterPlan`) and its PNG plots."""

    TYPE_NAME = "ihas.ClusterPlan"
