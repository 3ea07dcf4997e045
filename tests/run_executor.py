"""Runs one TFX executor in this fresh interpreter, as Kubeflow's container entry point does:
the executor's module is imported by name and nothing else of the project is loaded first.

    python -m tests.run_executor '{"executor": "components.cluster.executor", "inputs": {...},
        "outputs": {...}, "exec_properties": {...}, "beam_pipeline_args": [...]}'

Inputs and outputs map a key to a list of [artifact class path, uri]; a class path is
"module:Class" (for example "tfx.types.standard_artifacts:Examples"). Prints the artifacts'
custom properties as JSON, which is all an orchestrator records besides the files. An optional
"logical_cpus": N splits the CPU into N logical devices first (as a machine with N GPUs would
give `MirroredStrategy` N replicas); TensorFlow fixes its devices when it starts, hence here.
"""

import importlib
import json
import os
import sys


def _class(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _artifacts(spec: dict) -> dict:
    result = {}
    for key, items in spec.items():
        result[key] = []
        for class_path, uri in items:
            artifact = _class(class_path)()
            artifact.uri = uri
            os.makedirs(uri, exist_ok=True)
            result[key].append(artifact)
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    if spec.get("logical_cpus"):
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * spec["logical_cpus"])
    from tfx.dsl.components.base import base_beam_executor, base_executor

    executor_class = importlib.import_module(spec["executor"]).Executor
    if issubclass(executor_class, base_beam_executor.BaseBeamExecutor):
        context = base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=spec.get("beam_pipeline_args", []))
    else:
        context = base_executor.BaseExecutor.Context()
    outputs = _artifacts(spec["outputs"])
    executor_class(context).Do(_artifacts(spec["inputs"]), outputs, spec["exec_properties"])
    print(json.dumps({key: [{name: a.get_custom_property(name)
                             for name in a.mlmd_artifact.custom_properties} for a in items]
                      for key, items in outputs.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
