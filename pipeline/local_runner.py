"""Runs the iHAS pipeline on this machine with TFX's LocalDagRunner (Beam's DirectRunner).

    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name ihas

or `python -m pipeline.local_runner`. Settings: `pipeline/config.py` (IHAS_* variables).
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


def run(config: pipeline_config.PipelineConfig | None = None) -> None:
    """Runs the pipeline with LocalDagRunner, its ML Metadata in SQLite at `metadata_path`.

    Args:
        config: the settings; None reads them from the environment (`from_env`).
    """
    config = config or pipeline_config.from_env()
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))


if __name__ == "__main__":
    run()
