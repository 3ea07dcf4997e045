"""The RawExampleGen executor: a Beam pipeline around the library's row parser.

Files are read line by line with their real 1-based line numbers (a header line is skipped but
counted), lines are batched and parsed by `parse_lines`, accepted rows go to their split
(`assign_split`) as tf.Examples and rejected ones to the quarantine. Nothing collects the data:
rows stream from reader to writers, and the counts are summed by a combiner.
"""

import collections
import dataclasses
import json
import os
import shutil
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystems import FileSystems
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import Artifact, artifact_utils

from ihas_keras.data import get_format, splits
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.ingest import serialized_examples
from ihas_keras.data.parse import REASONS, parse_lines
from ihas_keras.data.preprocess import SPLITS, assign_split
from ihas_keras.data.read import (
    READ_BATCH_SIZE,
    ReadReport,
    check_counts,
    check_files,
    quarantine_record,
)
from ihas_keras.errors import BadInputError

QUARANTINE_FILE = "quarantine.jsonl"
COUNTS_FILE = "counts.json"
_QUARANTINE_PARTS = "quarantine-part"  # Beam's shards, merged into QUARANTINE_FILE
_QUARANTINED = "quarantine"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Writes the split examples and the quarantine.

    The examples go to `{examples.uri}/Split-{train,eval,test}/data_tfrecord-*.gz`, the
    quarantine to `{quarantine.uri}/quarantine.jsonl` and `counts.json`.
    """

    def Do(self, input_dict: dict[str, list[Artifact]],
           output_dict: dict[str, list[Artifact]], exec_properties: dict[str, Any]) -> None:
        """Runs the Beam pipeline, then checks the counts.

        Raises:
            BadInputError: the input files are unusable (`input_files`), or over
                `max_bad_fraction` of the rows were rejected (after both outputs are written).
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        fmt = get_format(exec_properties["format"], exec_properties.get("schema") or None)
        files = input_files(exec_properties["input_base"], fmt)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
        quarantine_dir = artifact_utils.get_single_uri(output_dict["quarantine"])
        quarantine_path = os.path.join(quarantine_dir, QUARANTINE_FILE)
        counts_path = os.path.join(quarantine_dir, COUNTS_FILE)

        with self._make_beam_pipeline() as pipeline:
            parsed = (
                pipeline
                | "Files" >> beam.Create(files)
                | "Distribute" >> beam.Reshuffle()  # file names only: spreads files over workers
                | "ReadLines" >> beam.ParDo(_ReadLines(fmt.header))
                | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=READ_BATCH_SIZE)
                | "Parse" >> beam.ParDo(_Parse(fmt, exec_properties["seed"])).with_outputs(
                    *SPLITS, _QUARANTINED, "counts"
                )
            )
            for split in SPLITS:
                _ = parsed[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                    splits.shard_prefix(examples.uri, split, splits.EXAMPLES_PREFIX),
                    file_name_suffix=splits.SUFFIX,
                )
            _ = parsed[_QUARANTINED] | "WriteQuarantine" >> beam.io.WriteToText(
                os.path.join(quarantine_dir, _QUARANTINE_PARTS)
            )
            _ = (
                parsed["counts"]
                | "SumCounts" >> beam.CombineGlobally(_sum_counts)
                | "WriteCounts" >> beam.Map(_write_counts, counts_path, quarantine_path)
            )

        _merge_parts(quarantine_dir, quarantine_path)
        with tf.io.gfile.GFile(counts_path) as f:
            report = ReadReport(**json.load(f))
        logging.info("RawExampleGen: %s", report.summary())
        check_counts(report, exec_properties["max_bad_fraction"])


def input_files(input_base: str, fmt: TableFormat) -> list[str]:
    """Every file in INPUT_BASE (TFX's default pattern `*`), checked by `check_files`.

    Args:
        input_base: the folder of raw files.
        fmt: their format.

    Returns:
        The files' paths, sorted.

    Raises:
        BadInputError: the folder is missing or holds no files, or `check_files` rejects them.
    """
    if not tf.io.gfile.isdir(input_base):
        raise BadInputError(f"input_base {input_base}: no such folder")
    files = sorted(
        path
        for path in tf.io.gfile.glob(os.path.join(input_base, "*"))
        if not tf.io.gfile.isdir(path)
    )
    if not files:
        raise BadInputError(f"input_base {input_base}: no files in it")
    check_files(files, fmt)
    return files


class _ReadLines(beam.DoFn):
    """A path -> (path, 1-based line number, the line without its end), past any header."""

    def __init__(self, header: bool):
        self._first = 2 if header else 1

    def process(self, path):
        with FileSystems.open(path) as f:  # `.gz` is decompressed by its suffix
            for number, line in enumerate(iter(f.readline, b""), start=1):
                if number >= self._first:
                    yield path, number, line.removesuffix(b"\n").removesuffix(b"\r")


class _Parse(beam.DoFn):
    """A batch of numbered lines -> serialized tf.Examples tagged with their split, quarantine
    records (JSON) tagged "quarantine", and the batch's counts tagged "counts"."""

    def __init__(self, fmt: TableFormat, seed: int):
        self._fmt = fmt
        self._seed = seed

    def setup(self):
        spec = [tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64)]

        @tf.function(input_signature=[spec[0], spec[1], spec[0]])
        def parse(files, lines, raw):
            batch = parse_lines(raw, self._fmt)
            batch["split"] = assign_split(files, lines, self._seed)
            return batch

        self._parse = parse

    def process(self, rows):
        files, lines, raw = zip(*rows, strict=True)
        batch = tf.nest.map_structure(lambda t: t.numpy(), self._parse(files, lines, raw))
        accepted = batch["reason"] == 0
        counts = collections.Counter(rows_read=len(rows))
        for index, split in enumerate(SPLITS):
            selected = accepted & (batch["split"] == index)
            if selected.any():
                examples = serialized_examples(batch, selected, self._fmt)
                counts["rows_accepted"] += len(examples)
                for example in examples:
                    yield beam.pvalue.TaggedOutput(split, example)
        for i in (~accepted).nonzero()[0]:
            reason = REASONS[batch["reason"][i]]
            counts[reason] += 1
            yield beam.pvalue.TaggedOutput(
                _QUARANTINED, quarantine_record(files[i], lines[i], reason, raw[i]))
        yield beam.pvalue.TaggedOutput("counts", counts)


def _sum_counts(counters) -> collections.Counter:
    total = collections.Counter()
    for counts in counters:
        total.update(counts)
    return total


def _write_counts(counts: dict, path: str, quarantine_path: str) -> None:
    # A dict after Beam's coder, not a Counter: absent keys are zero.
    by_reason = {reason: counts[reason] for reason in REASONS[1:] if counts.get(reason)}
    report = ReadReport(
        rows_read=counts.get("rows_read", 0),
        rows_accepted=counts.get("rows_accepted", 0),
        rows_quarantined=sum(by_reason.values()),
        by_reason=by_reason,
        quarantine=quarantine_path,
    )
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)


def _merge_parts(folder: str, path: str) -> None:
    """Concatenates Beam's quarantine shards into PATH, streaming, and removes them."""
    parts = sorted(tf.io.gfile.glob(os.path.join(folder, _QUARANTINE_PARTS + "*")))
    with tf.io.gfile.GFile(path, "wb") as out:
        for part in parts:
            with tf.io.gfile.GFile(part, "rb") as f:
                shutil.copyfileobj(f, out)
            tf.io.gfile.remove(part)
