"""The Evaluate component: blesses the routed model against the base model and the last blessed
model on split "test"."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.evaluate import executor
from ihas_keras import defaults


class EvaluateSpec(types.ComponentSpec):
    """Raw examples, the exported models and the last blessed one in; the blessing out."""

    PARAMETERS = {
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "margin": ExecutionParameter(type=float),
        "last_blessed_margin": ExecutionParameter(type=float),
        "min_auc": ExecutionParameter(type=float),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline": ChannelParameter(type=standard_artifacts.Model),
        "last_blessed": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class Evaluate(base_component.BaseComponent):
    """Scores split "test" of the RAW examples through each model's serving signature.

    The model is blessed when its AUC is >= MIN_AUC, >= the baseline's AUC - MARGIN and, when
    there is one, >= the last blessed model's AUC - LAST_BLESSED_MARGIN, all scored on this run's
    test split; a model that is itself the last blessed one (a rerun whose Retrain came from
    cache) is not blessed again, so Pusher pushes no copy of it.

    Outputs `blessing` (custom properties `blessed` 1/0 and `current_model_id`, as TFX's
    Evaluator writes them, so TFX's `LatestBlessedModelStrategy` resolves it; the file `BLESSED`
    or `NOT_BLESSED`; and `metrics.json` with each model's metrics and each check), as Pusher
    expects.

    Args:
        examples: the raw examples (RawExampleGen's `examples`).
        model: the model to bless (Retrain's `model`).
        baseline: the model it is compared with (Retrain's `baseline`).
        format: the raw format's name (`ihas_keras.data.get_format`); it must have a label.
        schema: the schema file, for format "generic".
        margin: the AUC the model may lose against the baseline and still be blessed.
        last_blessed: the last blessed model (a `LatestBlessedModelStrategy` resolver's `model`;
            empty on a pipeline's first run).
        last_blessed_margin: the AUC the model may lose against the last blessed one.
        min_auc: the lowest AUC a blessed model may have.
    """

    SPEC_CLASS = EvaluateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 baseline: types.BaseChannel, format: str, schema: str | None = None,
                 margin: float = defaults.BLESSING_MARGIN,
                 last_blessed: types.BaseChannel | None = None,
                 last_blessed_margin: float = defaults.LAST_BLESSED_MARGIN,
                 min_auc: float = defaults.MIN_AUC) -> None:
        spec = EvaluateSpec(
            examples=examples, model=model, baseline=baseline, format=format, schema=schema,
            margin=float(margin), last_blessed=last_blessed,
            last_blessed_margin=float(last_blessed_margin), min_auc=float(min_auc),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
