"""Compiles the iHAS pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines.

    IHAS_PIPELINE_ROOT=gs://BUCKET/ihas IHAS_DATA_ROOT=gs://BUCKET/criteo \
    IHAS_SERVING_MODEL_DIR=gs://BUCKET/serving IHAS_IMAGE=REGION-docker.pkg.dev/P/R/ihas:TAG \
    IHAS_BEAM_ARGS="--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp" \
        python -m pipeline.kubeflow_v2_runner     # writes ihas_pipeline.json

The image must hold this project (its `pyproject.toml` installs everything); submit the JSON with
the Vertex AI SDK or the KFP client.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):
    # Run as a file (the tfx CLI does): its folder would shadow the `pipeline` package.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from tfx import v1 as tfx  # noqa: E402

from pipeline import config as pipeline_config  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

OUTPUT_FILE = "ihas_pipeline.json"


def compile_pipeline(config: pipeline_config.PipelineConfig | None = None,
                     output_dir: str = ".", image: str | None = None) -> str:
    """Writes the pipeline definition to OUTPUT_DIR/ihas_pipeline.json; returns its path.

    Args:
        config: the settings; None reads them from the environment (`from_env`).
        output_dir: the folder of the JSON file.
        image: the components' container image; None for IHAS_IMAGE, or "ihas:latest".

    Returns:
        The JSON file's path.
    """
    config = config or pipeline_config.from_env()
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image or os.environ.get("IHAS_IMAGE", "ihas:latest")
        ),
        output_dir=output_dir,
        output_filename=OUTPUT_FILE,
    )
    runner.run(create_pipeline(config))
    return os.path.join(output_dir, OUTPUT_FILE)


if __name__ == "__main__":
    print(compile_pipeline())
