"""Raw files -> validated, split tf.Examples in gzipped TFRecord files, laid out as TFX's.

OUT/Split-train, Split-eval, Split-test hold `data_tfrecord-00000-of-00001.gz` (the layout of
`ihas_keras.data.splits`, as TFX's ExampleGen writes it); OUT/quarantine.jsonl the rejected rows;
OUT/counts.json the counts. Empty fields are absent from their tf.Example (the TFX
convention), matching `raw_feature_spec`.
"""

import dataclasses
import json
import os

import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx_bsl.coders import example_coder

from ihas_keras import defaults
from ihas_keras.data import splits
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.preprocess import SPLITS, assign_split
from ihas_keras.data.read import ReadReport, validate


def to_record_batch(batch: dict, rows: np.ndarray, fmt: TableFormat) -> pa.RecordBatch:
    """The selected ROWS of a parsed batch as an Arrow batch of list columns (empty = absent).

    Args:
        batch: a parsed batch with numpy values (`read_table`'s, as `validate` passes it).
        rows: a boolean mask [B] of the rows to take.
        fmt: the batch's format; the label column is included when FMT has one.

    Returns:
        One list column per feature field (and the label): a present value is a one-element list,
        a missing one an empty list.
    """
    columns = {}
    if fmt.label:
        label = batch["label"][rows]
        columns[fmt.label] = pa.ListArray.from_arrays(np.arange(len(label) + 1), label)
    for name in fmt.feature_fields:
        present = batch["present"][name][rows]
        values = batch["values"][name][rows][present]
        offsets = np.concatenate([[0], np.cumsum(present)]).astype(np.int32)
        if values.dtype == object:
            values = pa.array(values.tolist(), pa.binary())
        columns[name] = pa.ListArray.from_arrays(offsets, values)
    return pa.RecordBatch.from_pydict(columns)


def serialized_examples(batch: dict, rows: np.ndarray, fmt: TableFormat) -> list[bytes]:
    """The selected ROWS of a parsed batch as serialized tf.Examples (tfx_bsl's encoder).

    Args:
        batch: a parsed batch with numpy values.
        rows: a boolean mask [B] of the rows to take.
        fmt: the batch's format; with `fmt.unlabeled()`, the examples are without their label.

    Returns:
        One serialized tf.Example per selected row.
    """
    return example_coder.RecordBatchToExamples(to_record_batch(batch, rows, fmt))


def ingest(
    paths: list[str],
    fmt: TableFormat,
    out_dir: str,
    seed: int = defaults.SPLIT_SEED,
    max_bad_fraction: float = defaults.MAX_BAD_FRACTION,
    progress: bool = False,
) -> ReadReport:
    """Validates PATHS and writes the accepted rows to OUT_DIR by split.

    Args:
        paths: the raw files.
        fmt: the files' format.
        out_dir: the output folder: the splits, quarantine.jsonl and counts.json.
        seed: the split seed (`assign_split`).
        max_bad_fraction: the highest fraction of rejected rows that passes.
        progress: show a progress bar.

    Returns:
        The counts.

    Raises:
        BadInputError: `validate` rejects the files or finds too many bad rows.
        RuntimeError: rows were lost while counting (`check_counts`).
    """
    writers = {}
    for split in SPLITS:
        os.makedirs(splits.split_dir(out_dir, split), exist_ok=True)
        writers[split] = tf.io.TFRecordWriter(
            splits.single_file(out_dir, split, splits.EXAMPLES_PREFIX), options="GZIP"
        )

    def write(batch, accepted):
        split = assign_split(batch["file"], batch["line"], seed).numpy()
        for index, name in enumerate(SPLITS):
            rows = accepted & (split == index)
            if rows.any():
                for example in serialized_examples(batch, rows, fmt):
                    writers[name].write(example)

    try:
        report = validate(
            paths, fmt, os.path.join(out_dir, "quarantine.jsonl"), max_bad_fraction,
            on_batch=write, progress=progress,
        )
    finally:
        for writer in writers.values():
            writer.close()
    with open(os.path.join(out_dir, "counts.json"), "w") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)
    return report
