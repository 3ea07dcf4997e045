"""Compiles the iHAS pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines.

    IHAS_PIPELINE_ROOT=gs://BUCKET/ihas IHAS_DATA_ROOT=gs://BUCKET/criteo \
    IHAS_SERVING_MODEL_DIR=gs://BUCKET/serving IHAS_IMAGE=REGION-docker.pkg.dev/P/R/ihas:TAG \
    IHAS_BEAM_ARGS="--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp" \
        python -m pipeline.kubeflow_v2_runner     # writes ihas_pipeline.yaml

The file is a KFP `PipelineSpec` in YAML, as kfp's own compiler writes it: submit it with the KFP
client (`kfp.Client().create_run_from_pipeline_package("ihas_pipeline.yaml")`) or the Vertex AI
SDK (`aiplatform.PipelineJob(template_path="ihas_pipeline.yaml", ...)`). The image must hold
this project (the `Dockerfile` builds it from the lock). Compiling reads no data: the paths may
be buckets this machine cannot reach.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):
    # Run as a file (the tfx CLI does): its folder would shadow the `pipeline` package.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import yaml  # noqa: E402
from tfx import v1 as tfx  # noqa: E402
from tfx.dsl.io import fileio  # noqa: E402

from pipeline import config as pipeline_config  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

OUTPUT_FILE = "ihas_pipeline.yaml"
DEFAULT_IMAGE = "ihas:latest"
# Its input files cannot be fingerprinted when the pipeline is compiled, so a Kubeflow run
# always reads them again (as TFX's ExampleGen driver would find new files).
UNCACHED_TASKS = ("RawExampleGen",)


def pipeline_spec(config: pipeline_config.PipelineConfig | None = None,
                  image: str | None = None) -> dict:
    """The pipeline as a KFP `PipelineSpec` (a dict in its JSON form).

    Args:
        config: the settings; None reads them from the environment (`from_env`).
        image: the components' container image; None for IHAS_IMAGE, or DEFAULT_IMAGE.

    Returns:
        The `PipelineSpec` dict, with caching off for `UNCACHED_TASKS`.
    """
    config = config or pipeline_config.from_env()
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image or os.environ.get("IHAS_IMAGE", DEFAULT_IMAGE)
        ),
    )
    job = runner.run(create_pipeline(config, fingerprint_input=False), write_out=False)
    spec = job["pipelineSpec"]
    for task in UNCACHED_TASKS:
        spec["root"]["dag"]["tasks"][task]["cachingOptions"] = {"enableCache": False}
    return spec


def compile_pipeline(config: pipeline_config.PipelineConfig | None = None,
                     output_dir: str = ".", image: str | None = None) -> str:
    """Writes the pipeline's `PipelineSpec` to OUTPUT_DIR/ihas_pipeline.yaml; returns its path.

    Args:
        config: the settings; None reads them from the environment (`from_env`).
        output_dir: the folder of the YAML file (made if missing; a bucket path works).
        image: the components' container image; None for IHAS_IMAGE, or DEFAULT_IMAGE.

    Returns:
        The YAML file's path.
    """
    spec = pipeline_spec(config, image)
    fileio.makedirs(output_dir)
    path = os.path.join(output_dir, OUTPUT_FILE)
    with fileio.open(path, "w") as f:
        f.write(f"# The iHAS pipeline, compiled by TFX {spec['sdkVersion']} for Kubeflow "
                "Pipelines v2 / Vertex AI.\n")
        yaml.safe_dump(spec, f, sort_keys=True)
    return path


if __name__ == "__main__":
    print(compile_pipeline())
