"""Environment self-check: a small Keras fit, a two-component TFX pipeline, the TF Serving stubs.

This is what `ihas selfcheck` runs: each part is a real computation on generated data, so a broken
install fails here with a clear message.
"""

import csv
import os
import random
import shutil
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tfx import v1 as tfx


def write_ctr_csv(path: str, rows: int, seed: int = 0) -> None:
    """Writes a small CTR-like CSV (header, a 0/1 label, 3 categorical and 2 numeric columns).

    Args:
        path: the CSV file (its folder is made).
        rows: how many rows to write.
        seed: the generator's seed.
    """
    rng = random.Random(seed)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "site", "device", "hour", "price", "clicks_7d"])
        for _ in range(rows):
            site = rng.choice(["news", "sports", "games", "mail"])
            device = rng.choice(["phone", "tablet", "desktop"])
            hour = rng.randrange(24)
            price = round(rng.lognormvariate(1.0, 0.8), 3)
            clicks = rng.randrange(10)
            p = 0.1 + 0.3 * (site == "games") + 0.2 * (device == "phone") + 0.02 * clicks
            out.writerow([int(rng.random() < p), site, device, hour, price, clicks])


def fit_keras(seed: int = 0, epochs: int = 5) -> list[float]:
    """Fits a logistic model on a linearly separable problem; returns the loss per epoch.

    Args:
        seed: the seed of the data and of Keras.
        epochs: how many epochs to fit.

    Returns:
        The training loss after each epoch.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1024, 8)).astype("float32")
    y = (x @ rng.normal(size=(8,)) > 0).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    history = model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    return [float(v) for v in history.history["loss"]]


def create_stats_pipeline(data_root: str, pipeline_root: str,
                          metadata_path: str) -> "tfx.dsl.Pipeline":
    """CsvExampleGen -> StatisticsGen, the smallest TFX pipeline that exercises Beam and MLMD.

    Args:
        data_root: the folder of CSV files.
        pipeline_root: where the components write their outputs.
        metadata_path: the MLMD SQLite file.

    Returns:
        The pipeline (cache disabled).
    """
    from tfx import v1 as tfx

    example_gen = tfx.components.CsvExampleGen(input_base=data_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    return tfx.dsl.Pipeline(
        pipeline_name="ihas-selfcheck",
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        enable_cache=False,
    )


def artifacts_in_mlmd(metadata_path: str) -> dict[str, list[str]]:
    """Artifact URIs recorded in an MLMD SQLite store, by artifact type name.

    Args:
        metadata_path: the SQLite file (opened read-only).

    Returns:
        {artifact type name: [artifact URI, ...]}.
    """
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    found: dict[str, list[str]] = {}
    for artifact in store.get_artifacts():
        found.setdefault(type_names[artifact.type_id], []).append(artifact.uri)
    return found


def run_stats_pipeline(out: str, rows: int) -> dict[str, list[str]]:
    """Writes generated CSV under OUT, runs the pipeline locally, returns what MLMD recorded.

    A rerun first removes OUT/data, OUT/pipeline_root and OUT/metadata.sqlite, so MLMD lists
    this run's artifacts only.

    Args:
        out: the folder of the data, the pipeline root and the MLMD store.
        rows: how many CSV rows to generate.

    Returns:
        {artifact type name: [artifact URI, ...]} (`artifacts_in_mlmd`).
    """
    from tfx import v1 as tfx

    data_root = os.path.join(out, "data")
    pipeline_root = os.path.join(out, "pipeline_root")
    metadata_path = os.path.join(out, "metadata.sqlite")
    # A rerun starts from nothing, so MLMD lists this run's artifacts only.
    for own in (data_root, pipeline_root):
        shutil.rmtree(own, ignore_errors=True)
    if os.path.exists(metadata_path):
        os.remove(metadata_path)
    write_ctr_csv(os.path.join(data_root, "ctr.csv"), rows)
    pipeline = create_stats_pipeline(data_root, pipeline_root, metadata_path)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return artifacts_in_mlmd(metadata_path)


def serving_services() -> list[str]:
    """Service names from tensorflow-serving-api's own protos, after building a PredictRequest.

    Returns:
        The PredictionService and ModelService names, sorted.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import (
        model_service_pb2,
        model_service_pb2_grpc,  # noqa: F401  (the import is the check)
        predict_pb2,
        prediction_service_pb2,
        prediction_service_pb2_grpc,  # noqa: F401
    )

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ihas"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]]))
    predict_pb2.PredictRequest.FromString(request.SerializeToString())
    return sorted(
        list(prediction_service_pb2.DESCRIPTOR.services_by_name)
        + list(model_service_pb2.DESCRIPTOR.services_by_name)
    )


def run(out: str, rows: int = 2000) -> dict:
    """Runs all three checks; returns their results.

    Args:
        out: the folder of the TFX check (`run_stats_pipeline`).
        rows: how many CSV rows the TFX check generates.

    Returns:
        {"keras_loss", "tfx_artifacts", "serving_services"}.
    """
    return {
        "keras_loss": fit_keras(),
        "tfx_artifacts": run_stats_pipeline(out, rows),
        "serving_services": serving_services(),
    }


def format_report(report: dict) -> str:
    """The results of `run` as text, one check after another.

    Args:
        report: what `run` returned.

    Returns:
        The lines, joined.
    """
    losses = report["keras_loss"]
    lines = [f"Keras: loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} epochs"]
    lines.append("TFX (CsvExampleGen -> StatisticsGen, LocalDagRunner), artifacts in MLMD:")
    for type_name, uris in sorted(report["tfx_artifacts"].items()):
        lines += [f"  {type_name}: {uri}" for uri in uris]
    lines.append("TF Serving API services: " + ", ".join(report["serving_services"]))
    return "\n".join(lines)
