"""The RawExampleGen component: raw CTR files in, split tf.Examples and a quarantine out."""

import os

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.example_gen import executor
from components.types import Quarantine
from ihas_keras import defaults


def fingerprint(input_base: str) -> str:
    """The names, sizes and modification times of INPUT_BASE's files.

    As TFX's ExampleGen driver records them: an exec property, so a cached run is reused only
    while the files stay the same. Taken when the pipeline is built (a missing folder gives ""
    and fails in the executor).

    Args:
        input_base: the folder of raw files.

    Returns:
        One `name:size:mtime_nsec` line per file, in name order; "" for a missing folder.
    """
    if not tf.io.gfile.isdir(input_base):
        return ""
    parts = []
    for name in sorted(tf.io.gfile.listdir(input_base)):
        stat = tf.io.gfile.stat(os.path.join(input_base, name))
        parts.append(f"{name}:{stat.length}:{stat.mtime_nsec}")
    return "\n".join(parts)


class RawExampleGenSpec(types.ComponentSpec):
    """A folder of raw files and their format in; examples and the quarantine out."""

    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "format": ExecutionParameter(type=str),
        "schema": ExecutionParameter(type=str, optional=True),
        "seed": ExecutionParameter(type=int),
        "max_bad_fraction": ExecutionParameter(type=float),
        "input_fingerprint": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "quarantine": ChannelParameter(type=Quarantine),
    }


class RawExampleGen(base_beam_component.BaseBeamComponent):
    """Reads every file in `input_base` (`.gz` as gzip) with the project's row parser.

    Outputs `examples`: splits "train", "eval", "test" (80/10/10 by `assign_split`), gzipped
    TFRecords of tf.Example in `Split-{name}/` (TFX ExampleGen's layout; empty fields absent), and
    `quarantine`: `quarantine.jsonl` (one JSON line per rejected row: file, line, reason, row) and
    `counts.json`. Fails, after writing both, when over `max_bad_fraction` of the rows are rejected.

    Args:
        input_base: the folder of raw files (every file in it is read).
        format: the raw format's name (`ihas_keras.data.get_format`).
        schema: the schema file, for format "generic".
        seed: the seed of `assign_split`.
        max_bad_fraction: the largest fraction of rejected rows the run accepts.
        fingerprint_input: record `fingerprint(input_base)` when the pipeline is built, so that a
            cached run is reused only while the files stay the same; False for a pipeline compiled
            to run elsewhere (Kubeflow), whose files are not read when it is compiled.
    """

    SPEC_CLASS = RawExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, format: str = "criteo", schema: str | None = None,
                 seed: int = defaults.SPLIT_SEED,
                 max_bad_fraction: float = defaults.MAX_BAD_FRACTION,
                 fingerprint_input: bool = True) -> None:
        spec = RawExampleGenSpec(
            input_base=input_base, format=format, schema=schema, seed=seed,
            max_bad_fraction=max_bad_fraction,
            input_fingerprint=fingerprint(input_base) if fingerprint_input else "",
            examples=types.Channel(type=standard_artifacts.Examples),
            quarantine=types.Channel(type=Quarantine),
        )
        super().__init__(spec=spec)
