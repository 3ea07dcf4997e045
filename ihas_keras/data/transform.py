"""Ingested tf.Examples -> TF Transform output: the transform graph and the transformed splits.

OUT/transform_fn, OUT/transformed_metadata: the graph (`tft.TFTransformOutput(OUT)`), analyzed on
the train split only; OUT/Split-train|eval|test/transformed_examples-00000-of-00001.gz (the layout
of `ihas_keras.data.splits`, as TFX's Transform writes it): gzipped tf.Examples of {field: int64
id} plus the label, as `transformed_feature_spec()` describes.
"""

import os

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

from ihas_keras import defaults
from ihas_keras.data import splits
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.preprocess import RESERVED_IDS, SPLITS, make_preprocessing_fn, raw_feature_spec
from ihas_keras.errors import BadInputError, RowsLostError

_COUNTER_NAMESPACE = "ihas_transform"
# The runner without --runner: the one Beam's DirectRunner ends up with for this pipeline.
# DirectRunner (Beam 2.77) first tries PrismRunner, which downloads its binary from GitHub and
# runs it; offline the download fails after a /tmp/beam-temp* folder was made, and that folder
# is left behind on every run.
LOCAL_RUNNER = "FnApiRunner"


def _check_examples(examples_dir: str) -> None:
    if not tf.io.gfile.isdir(examples_dir):
        raise BadInputError(f"{examples_dir}: no such folder of ingested examples")
    for split in SPLITS:
        splits.split_files(examples_dir, split)


class _Count(beam.DoFn):
    """Counts rows passing through (an Arrow batch's rows, else 1 per element) as a Beam counter."""

    def __init__(self, name: str):
        self._counter = beam.metrics.Metrics.counter(_COUNTER_NAMESPACE, name)

    def process(self, element):
        self._counter.inc(getattr(element, "num_rows", 1))
        yield element


def _read(pipeline, examples_dir: str, split: str, schema) -> tuple:
    """(Arrow record batches, their TensorAdapterConfig): a split as TF Transform reads it."""
    source = tfxio.TFExampleRecord(
        splits.split_files(examples_dir, split),
        schema=schema,
        telemetry_descriptors=["ihas"],
    )
    batches = (
        pipeline
        | f"Read[{split}]" >> source.BeamSource()
        | f"CountRead[{split}]" >> beam.ParDo(_Count(f"read/{split}"))
    )
    return batches, source.TensorAdapterConfig()


def _write(transformed, out_dir: str, split: str) -> None:
    """Encodes a transformed split as tf.Examples into one gzipped TFRecord file, counting rows."""
    _ = (
        transformed
        | f"Encode[{split}]" >> tft_beam.EncodeTransformedDataset()
        | f"CountWritten[{split}]" >> beam.ParDo(_Count(f"written/{split}"))
        | f"Write[{split}]"
        >> beam.io.WriteToTFRecord(
            splits.shard_prefix(out_dir, split, splits.TRANSFORMED_PREFIX),
            file_name_suffix=splits.SUFFIX,
            num_shards=1,
            compression_type=beam.io.filesystem.CompressionTypes.GZIP,
        )
    )


def transform(
    examples_dir: str,
    fmt: TableFormat,
    out_dir: str,
    frequency_threshold: int = defaults.FREQUENCY_THRESHOLD,
    beam_args: list[str] | None = None,
) -> dict[str, int]:
    """Analyzes EXAMPLES_DIR's train split, transforms every split into OUT_DIR.

    Args:
        examples_dir: the ingested examples (`ingest`'s output folder).
        fmt: the data's format.
        out_dir: the output folder: the transform graph and the transformed splits.
        frequency_threshold: values seen fewer times than this in the train split get the
            "others" id.
        beam_args: Beam pipeline options (`LOCAL_RUNNER`, Beam's FnApiRunner, unless --runner
            says otherwise).

    Returns:
        Rows written per split.

    Raises:
        BadInputError: EXAMPLES_DIR is missing, or one of its splits is missing or empty.
        RowsLostError: a split wrote fewer rows than it read.
    """
    _check_examples(examples_dir)
    schema = schema_utils.schema_from_feature_spec(raw_feature_spec(fmt))
    temp_dir = os.path.join(out_dir, "tmp")
    options = PipelineOptions(beam_args or [])
    runner = None if options.view_as(StandardOptions).runner else LOCAL_RUNNER
    pipeline = beam.Pipeline(runner=runner, options=options)
    with tft_beam.Context(temp_dir=temp_dir):
        raw = {split: _read(pipeline, examples_dir, split, schema) for split in SPLITS}
        transform_fn = raw["train"] | "Analyze" >> tft_beam.AnalyzeDataset(
            make_preprocessing_fn(fmt, frequency_threshold)
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out_dir)
        for split in SPLITS:
            transformed = (raw[split], transform_fn) | f"Transform[{split}]" >> (
                tft_beam.TransformDataset(output_record_batches=True)
            )
            _write(transformed, out_dir, split)
        result = pipeline.run()
        result.wait_until_finish()
    tf.io.gfile.rmtree(temp_dir)
    return _counts(result)


def _counts(result) -> dict[str, int]:
    query = beam.metrics.MetricsFilter().with_namespace(_COUNTER_NAMESPACE)
    found = {c.key.metric.name: c.committed for c in result.metrics().query(query)["counters"]}
    read, written = ({s: found.get(f"{k}/{s}", 0) for s in SPLITS} for k in ("read", "written"))
    if read != written:
        raise RowsLostError(
            f"rows read {read} but rows written {written}: the transformed splits are incomplete "
            "(Beam's --direct_running_mode=multi_processing loses rows: run without it)"
        )
    return written


def vocabulary_sizes(transform_output_dir: str, fmt: TableFormat) -> dict[str, int]:
    """Embedding table size per field: its vocabulary plus the reserved ids (missing, others).

    Args:
        transform_output_dir: a TF Transform output folder (`transform`'s, or a Transform
            component's).
        fmt: the data's format.

    Returns:
        {field: table size} for every feature field.
    """
    output = tft.TFTransformOutput(transform_output_dir)
    return {f: output.vocabulary_size_by_name(f) + RESERVED_IDS for f in fmt.feature_fields}


def transformed_dataset(out_dir: str, split: str, fmt: TableFormat, batch_size: int,
                        shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Labeled batches of a split that `transform` wrote to OUT_DIR, streamed; one pass.

    Args:
        out_dir: `transform`'s output folder.
        split: "train", "eval" or "test".
        fmt: the data's format (it names the label).
        batch_size: examples per batch.
        shuffle: shuffle through a buffer, anew each epoch.
        seed: the shuffle's seed.

    Returns:
        A dataset of ({field: int64 ids [B]}, label [B]).

    Raises:
        BadInputError: the split is missing (run `transform` first), or FMT's label is not
            among the transformed features.
    """
    splits.split_files(out_dir, split)  # names a missing split before the transform output
    spec = tft.TFTransformOutput(out_dir).transformed_feature_spec()
    return splits.dataset(out_dir, split, spec, fmt.label, batch_size, shuffle, seed)
