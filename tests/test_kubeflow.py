"""The Kubeflow Pipelines v2 spec: compiled without local data, loaded back by kfp, checked."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components
from tfx.dsl.components.common import resolver
from tfx.types import standard_artifacts

from pipeline import config as pipeline_config
from pipeline import kubeflow_v2_runner
from pipeline.pipeline import create_components

BUCKET = "gs://ihas-test-no-such-bucket"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The spec of a pipeline whose paths are all on a bucket this machine cannot reach."""
    out = tmp_path_factory.mktemp("kubeflow")
    config = pipeline_config.from_env(
        home=str(out / "no-home"), data_root=f"{BUCKET}/criteo",
        pipeline_root=f"{BUCKET}/root", serving_model_dir=f"{BUCKET}/serving")
    path = kubeflow_v2_runner.compile_pipeline(config, str(out), image="ihas:test")
    assert not (out / "no-home").exists()
    return config, path


def title(artifact_type) -> str:
    """The schema title TFX's compiler gives an artifact type: tfx.NAME for TFX's own types."""
    standard = getattr(standard_artifacts, artifact_type.__name__, None) is artifact_type
    return f"tfx.{artifact_type.TYPE_NAME}" if standard else artifact_type.TYPE_NAME


def artifact_types(definitions) -> dict:
    """{name: TFX type name} of a kfp component's artifact definitions (their schema titles)."""
    return {name: yaml.safe_load(spec.artifact_type.instance_schema)["title"]
            for name, spec in definitions.artifacts.items()}


def test_kfp_loads_the_compiled_yaml(compiled):
    _, path = compiled
    assert path.endswith(".yaml")
    loaded = kfp_components.load_component_from_file(path)
    assert loaded.pipeline_spec.pipeline_info.name == "ihas"
    assert loaded.pipeline_spec.schema_version == "2.0.0"


def split_nodes(config):
    """The pipeline's components, and the ids of its resolvers."""
    nodes = create_components(config, fingerprint_input=False)
    resolvers = {node.id for node in nodes if isinstance(node, resolver.Resolver)}
    return [node for node in nodes if node.id not in resolvers], resolvers


def test_every_component_has_its_parameters_and_artifact_types(compiled):
    config, path = compiled
    spec = kfp_components.load_component_from_file(path).pipeline_spec
    components, resolvers = split_nodes(config)
    # TFX compiles the latest blessed model's resolver into two queries: the blessing, its model.
    tasks = {node.id for node in components} | {f"{r}-model{part}-resolver" for r in resolvers
                                                for part in ("", "-blessing")}
    assert set(spec.root.dag.tasks) == tasks
    for node in components:
        task = spec.root.dag.tasks[node.id]
        component = spec.components[task.component_ref.name]
        inputs = {name: title(channel.type) for name, channel in node.inputs.items()}
        outputs = {name: title(channel.type) for name, channel in node.outputs.items()}
        assert artifact_types(component.input_definitions) == inputs, node.id
        assert artifact_types(component.output_definitions) == outputs, node.id
        # Every upstream artifact comes from the task that produces it.
        for name, channel in node.inputs.items():
            producer = channel.producer_component_id
            if producer in resolvers:
                producer = f"{producer}-model-resolver"
            assert task.inputs.artifacts[name].task_output_artifact.producer_task == producer, (
                node.id, name)
        settings = {k: v for k, v in node.exec_properties.items() if v is not None}
        assert set(component.input_definitions.parameters) == set(settings), node.id
        for name, value in settings.items():
            if isinstance(value, bool | int | float | str):
                constant = task.inputs.parameters[name].runtime_value.constant_value
                got = getattr(constant, constant.WhichOneof("value"))
                expected = pytest.approx(value) if isinstance(value, float) else value
                assert got == expected, (node.id, name)


def test_evaluate_compares_with_the_latest_blessed_model(compiled):
    config, path = compiled
    spec = kfp_components.load_component_from_file(path).pipeline_spec
    (resolver_id,) = split_nodes(config)[1]
    executors = spec.deployment_spec["executors"]
    blessings = executors[f"{resolver_id}-model-blessing-resolver_executor"]["resolver"]
    query = blessings["outputArtifactQueries"]["model_blessing"]["filter"]
    assert 'schema_title="tfx.ModelBlessing"' in query and "blessed.number_value=1" in query
    models = executors[f"{resolver_id}-model-resolver_executor"]["resolver"]
    assert "current_model_id" in models["outputArtifactQueries"]["model"]["filter"]
    last = spec.root.dag.tasks["Evaluate"].inputs.artifacts["last_blessed"]
    assert last.task_output_artifact.producer_task == f"{resolver_id}-model-resolver"


def test_the_image_and_caching(compiled):
    _, path = compiled
    spec = kfp_components.load_component_from_file(path).pipeline_spec
    executors = spec.deployment_spec["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {"ihas:test"}
    caching = {name: task.caching_options.enable_cache
               for name, task in spec.root.dag.tasks.items()}
    # Its input files are read on every run; the resolvers query the store on every run.
    uncached = {name for name, cached in caching.items() if not cached}
    assert uncached == {"RawExampleGen"} | {name for name in caching if "resolver" in name}


def test_the_raw_example_gen_keeps_no_compile_time_fingerprint(compiled):
    _, path = compiled
    spec = kfp_components.load_component_from_file(path).pipeline_spec
    parameters = spec.root.dag.tasks["RawExampleGen"].inputs.parameters
    values = {name: parameters[name].runtime_value.constant_value.string_value
              for name in ("input_base", "input_fingerprint")}
    assert values == {"input_base": f"{BUCKET}/criteo", "input_fingerprint": ""}


def test_the_dockerfile_installs_the_lock_and_every_package():
    """The component image (not buildable here: no Docker) installs what a fresh clone does."""
    root = Path(__file__).resolve().parent.parent
    dockerfile = (root / "Dockerfile").read_text()
    python = re.search(r"^FROM python:(\d+\.\d+)-", dockerfile, re.M).group(1)
    lock = f"requirements/lock-py{python}.txt"
    assert (root / lock).is_file(), lock
    assert f"pip install --no-deps -r {lock}" in dockerfile
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    assert copied == {name.rstrip("*") for name in packages}
