"""Runs the iHAS pipeline on this machine with TFX's LocalDagRunner (Beam's DirectRunner).

    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name ihas

or `python -m pipeline.local_runner`. Settings: `pipeline/config.py` (IHAS_* variables).

One run at a time uses a metadata store (a lock file beside it). A run that was killed leaves its
unfinished executions RUNNING in ML Metadata: TFX ignores them (each run has its own run context,
so the next run registers new executions and reuses only COMPLETE ones from cache), but they
would show as running forever; the next run marks them CANCELED and logs which.
"""

import fcntl
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):
    # Run as a file (the tfx CLI does): its folder would shadow the `pipeline` package.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from absl import logging  # noqa: E402
from ml_metadata import metadata_store  # noqa: E402
from ml_metadata.proto import metadata_store_pb2  # noqa: E402
from tfx import v1 as tfx  # noqa: E402

from pipeline import config as pipeline_config  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

_Execution = metadata_store_pb2.Execution
UNFINISHED = (_Execution.NEW, _Execution.RUNNING)
CANCELED_NOTE = "ihas_canceled"


class StoreInUseError(RuntimeError):
    """Another local run holds the metadata store."""


def cancel_unfinished_executions(connection: metadata_store_pb2.ConnectionConfig,
                                 pipeline_name: str) -> list[_Execution]:
    """Marks CANCELED the executions of PIPELINE_NAME that earlier runs left NEW or RUNNING.

    Only safe while no run of the pipeline is in progress (`run` holds the store's lock).

    Args:
        connection: the ML Metadata store.
        pipeline_name: the pipeline whose executions are checked.

    Returns:
        The executions marked, as they are now.
    """
    store = metadata_store.MetadataStore(connection)
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        return []
    stale = [e for e in store.get_executions_by_context(context.id)
             if e.last_known_state in UNFINISHED]
    for execution in stale:
        execution.last_known_state = _Execution.CANCELED
        execution.custom_properties[CANCELED_NOTE].string_value = (
            "left unfinished by a run that ended without finishing it; canceled by the next run")
    if stale:
        store.put_executions(stale)
    return stale


def run(config: pipeline_config.PipelineConfig | None = None) -> None:
    """Runs the pipeline with LocalDagRunner, its ML Metadata in SQLite at `metadata_path`.

    Args:
        config: the settings; None reads them from the environment (`from_env`).

    Raises:
        StoreInUseError: another local run uses the same metadata store.
    """
    config = config or pipeline_config.from_env()
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_path)), exist_ok=True)
    lock_path = config.metadata_path + ".lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUseError(
                f"another run of a pipeline uses the metadata store {config.metadata_path} "
                f"(it holds {lock_path}); wait for it to end or set IHAS_METADATA_PATH") from None
        for execution in cancel_unfinished_executions(metadata, config.pipeline_name):
            logging.warning("execution %d (%s) was left unfinished by an earlier run; marked "
                            "CANCELED", execution.id, execution.type or execution.type_id)
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))


if __name__ == "__main__":
    run()
