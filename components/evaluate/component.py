"""The Evaluate component: blesses the routed model against the base model on split "test"."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.evaluate import executor
from ihas_keras import defaults


class EvaluateSpec(types.ComponentSpec):
    """Raw examples and the two exported models in; the blessing out."""

    PARAMETERS = {
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "margin": ExecutionParameter(type=float),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class Evaluate(base_component.BaseComponent):
    """Scores split "test" of the RAW examples through each model's serving signature.

    The model is blessed when its AUC >= the baseline's AUC - MARGIN. Outputs `blessing` (custom
    property `blessed` 1/0, the file `BLESSED` or `NOT_BLESSED`, and `metrics.json`), as Pusher
    expects.

    Args:
        examples: the raw examples (RawExampleGen's `examples`).
        model: the model to bless (Retrain's `model`).
        baseline: the model it is compared with (Retrain's `baseline`).
        format: the raw format's name (`ihas_keras.data.get_format`); it must have a label.
        schema: the schema file, for format "generic".
        margin: the AUC the model may lose against the baseline and still be blessed.
    """

    SPEC_CLASS = EvaluateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 baseline: types.BaseChannel, format: str, schema: str | None = None,
                 margin: float = defaults.BLESSING_MARGIN) -> None:
        spec = EvaluateSpec(
            examples=examples, model=model, baseline=baseline, format=format, schema=schema,
            margin=float(margin), blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
