"""Runs the iHAS pipeline on this machine with TFX's LocalDagRunner (Beam's DirectRunner).

    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name ihas

or `python -m pipeline.local_runner`. Settings: `pipeline/config.py` (IHAS_* variables).
"""

from tfx import v1 as tfx

from pipeline import config as pipeline_config
from pipeline.pipeline import create_pipeline


def run(config: pipeline_config.PipelineConfig | None = None) -> None:
    config = config or pipeline_config.from_env()
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))


if __name__ == "__main__":
    run()
