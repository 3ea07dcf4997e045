"""Reading raw files with tf.data, and validating them with a quarantine for rejected rows.

Rows read = rows accepted + rows quarantined, always: every rejected row goes to the quarantine file
(JSON lines: file, line number, reason, the row itself) and is counted by reason.
"""

import collections
import dataclasses
import json
import os
import zlib
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ihas_keras import defaults
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.parse import REASONS, parse_lines
from ihas_keras.errors import BadInputError

READ_BATCH_SIZE = 4096  # raw lines parsed per batch
_CHUNK_BYTES = 1 << 20  # compressed bytes per read of the gzip check


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def check_gzip(path: str) -> None:
    """Reads a gzip file through to its end-of-stream marker.

    TensorFlow's and Beam's gzip readers stop without a word where a truncated file ends; this
    pass (zlib, about as fast as reading the rows) makes that an error.

    Args:
        path: the file (any `tf.io.gfile` path).

    Raises:
        BadInputError: the file is not gzip, is corrupt, or ends before its end-of-stream
            marker; naming the file and the last whole line before the damage.
    """
    stream, fed, lines, size = _gunzip(), False, 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            while chunk := f.read(_CHUNK_BYTES):
                while chunk:
                    text = stream.decompress(chunk)
                    lines, size = lines + text.count(b"\n"), size + len(text)
                    fed, chunk = True, b""
                    if stream.eof:  # a member ends; what follows it starts the next one
                        chunk, stream, fed = stream.unused_data, _gunzip(), False
        except zlib.error as e:
            where = "not a gzip file" if size == 0 else f"corrupt after line {lines}"
            raise BadInputError(f"{path}: {where} ({e})") from None
    if fed and not stream.eof:
        raise BadInputError(f"{path}: the gzip stream ends early (a truncated file?) after "
                            f"line {lines}")
    if not fed and size == 0 and not tf.io.gfile.stat(path).length:
        raise BadInputError(f"{path}: an empty file, not gzip")


def _gunzip():
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


def check_files(paths: list[str], fmt: TableFormat) -> None:
    """Every path is a readable file (a whole gzip stream if ".gz") with the format's header.

    Args:
        paths: the raw files (gzipped when their name ends with ".gz").
        fmt: the files' format.

    Raises:
        BadInputError: no paths are given, a path is missing or a folder, a ".gz" file is not
            whole gzip (`check_gzip`), or a header does not match FMT.
    """
    if not paths:
        raise BadInputError("no input files given")
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise BadInputError(f"{path}: no such file")
        if tf.io.gfile.isdir(path):
            raise BadInputError(f"{path}: a folder, not a file")
        try:
            _check_file(path, fmt)
        except tf.errors.OpError as e:  # unreadable (permissions, I/O errors)
            raise BadInputError(f"{path}: cannot be read: {e.message}") from None


def _check_file(path: str, fmt: TableFormat) -> None:
    """`check_files` of one readable path."""
    if _compression(path):
        check_gzip(path)
    if fmt.header:
        first = next(iter(tf.data.TextLineDataset(path, _compression(path)).take(1)), None)
        expected = fmt.delimiter.join(fmt.columns)
        got = first.numpy().decode("utf-8", "backslashreplace") if first is not None else ""
        if got != expected:
            raise BadInputError(
                f"{path}, line 1: the header does not match format {fmt.name!r}: "
                f"expected {expected[:200]!r}, got {got[:200]!r}"
            )


def read_table(paths: list[str], fmt: TableFormat,
               batch_size: int = READ_BATCH_SIZE) -> tf.data.Dataset:
    """Batches of parsed rows from raw files, in file order.

    Args:
        paths: the raw files (gzipped when their name ends with ".gz").
        fmt: the files' format.
        batch_size: lines per batch (a file's last batch may be smaller).

    Returns:
        A dataset of batches, each `parse_lines`'s output plus "file" (string), "line" (1-based
        line number in that file) and "raw" (the line itself). Rejected rows are included, with
        their reason code.

    Raises:
        BadInputError: `check_files` rejects PATHS.
    """
    check_files(paths, fmt)
    first_line = 2 if fmt.header else 1

    def numbered(path):
        lines = tf.data.TextLineDataset(path, _compression(path))
        if fmt.header:
            lines = lines.skip(1)
        # Batch first, then number whole batches: per-line tf.data work would dominate the cost.
        return lines.batch(batch_size).enumerate().map(
            lambda k, batch: (
                tf.fill(tf.shape(batch), path),
                first_line + k * batch_size + tf.range(tf.size(batch, tf.int64), dtype=tf.int64),
                batch,
            )
        )

    batches = numbered(paths[0])
    for path in paths[1:]:
        batches = batches.concatenate(numbered(path))

    def parse(files, line_numbers, lines):
        batch = parse_lines(lines, fmt)
        batch.update(file=files, line=line_numbers, raw=lines)
        return batch

    return batches.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


@dataclasses.dataclass
class ReadReport:
    """Counts from one pass over raw files.

    Attributes:
        rows_read: every row read.
        rows_accepted: the rows that passed validation.
        rows_quarantined: the rows rejected and written to the quarantine.
        by_reason: rejected rows per reason (`REASONS`), for the reasons that occurred.
        quarantine: the quarantine file's path.
    """

    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    by_reason: dict = dataclasses.field(default_factory=dict)
    quarantine: str = ""

    @property
    def bad_fraction(self) -> float:
        """The fraction of rows read that were quarantined (0.0 when no row was read)."""
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0

    def summary(self) -> str:
        """The counts as one line of text, with the quarantine's path when rows were rejected."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_reason.items())) or "none"
        return (
            f"rows read {self.rows_read}, accepted {self.rows_accepted}, "
            f"quarantined {self.rows_quarantined} ({self.bad_fraction:.4%}; {reasons})"
            + (f"; quarantine: {self.quarantine}" if self.rows_quarantined else "")
        )


def validate(
    paths: list[str],
    fmt: TableFormat,
    quarantine_path: str,
    max_bad_fraction: float = defaults.MAX_BAD_FRACTION,
    on_batch: Callable[[dict, np.ndarray], object] | None = None,
    batch_size: int = READ_BATCH_SIZE,
    progress: bool = False,
    allow_empty: bool = False,
) -> ReadReport:
    """Reads every row, writes rejected ones to QUARANTINE_PATH, and counts.

    Args:
        paths: the raw files.
        fmt: the files' format.
        quarantine_path: the quarantine file to write (JSON lines, `quarantine_record`); its
            folder is created if needed.
        max_bad_fraction: the highest fraction of rejected rows that passes.
        on_batch: on_batch(batch, accepted) is called for each batch (numpy values; `accepted` a
            boolean mask), for callers that keep the accepted rows.
        batch_size: lines per batch.
        progress: show a progress bar.
        allow_empty: input without data rows passes (`check_counts`).

    Returns:
        The counts.

    Raises:
        BadInputError: the quarantined fraction is above max_bad_fraction (the quarantine and
            counts are written first), no row was read (unless ALLOW_EMPTY), or `check_files`
            rejects PATHS.
        RuntimeError: rows read != rows accepted + rows quarantined (`check_counts`).
    """
    report = ReadReport(quarantine=quarantine_path)
    reasons = collections.Counter()
    os.makedirs(os.path.dirname(os.path.abspath(quarantine_path)), exist_ok=True)
    bar = _progress(progress)
    with open(quarantine_path, "w") as quarantine:
        for batch in read_table(paths, fmt, batch_size).as_numpy_iterator():
            codes = batch["reason"]
            accepted = codes == 0
            report.rows_read += len(codes)
            report.rows_accepted += int(accepted.sum())
            for i in (~accepted).nonzero()[0]:
                reason = REASONS[codes[i]]
                reasons[reason] += 1
                quarantine.write(quarantine_record(batch["file"][i].decode(), batch["line"][i],
                                                   reason, batch["raw"][i]) + "\n")
            if on_batch is not None:
                on_batch(batch, accepted)
            bar.update(len(codes))
    bar.close()
    report.rows_quarantined = sum(reasons.values())
    report.by_reason = dict(reasons)
    check_counts(report, max_bad_fraction, allow_empty)
    return report


def quarantine_record(file: str, line: int, reason: str, raw: bytes) -> str:
    """One quarantine line: a rejected row as JSON, with where it came from and why.

    Args:
        file: the raw file's path.
        line: the row's 1-based line number in that file.
        reason: the rejection reason, one of `REASONS`.
        raw: the row's bytes as read (undecodable bytes are kept as backslash escapes).

    Returns:
        `{"file", "line", "reason", "row"}` as one line of JSON, without its newline.
    """
    return json.dumps({"file": file, "line": int(line), "reason": reason,
                       "row": raw.decode("utf-8", "backslashreplace")})


def check_counts(report: ReadReport, max_bad_fraction: float, allow_empty: bool = False) -> None:
    """Checks a pass's counts once its quarantine is written.

    Args:
        report: the counts; `report.quarantine` names the quarantine file.
        max_bad_fraction: the highest fraction of rejected rows that passes.
        allow_empty: input without any data row passes.

    Raises:
        RuntimeError: rows read != rows accepted + rows quarantined (a bug: rows were lost).
        BadInputError: more than MAX_BAD_FRACTION of the rows were rejected, or no row was
            read and ALLOW_EMPTY is not set.
    """
    if report.rows_read != report.rows_accepted + report.rows_quarantined:
        raise RuntimeError(f"rows read != accepted + quarantined: {report.summary()}")
    if report.rows_read == 0 and not allow_empty:
        raise BadInputError("the input has no data rows (an empty file, or a header alone)")
    if report.bad_fraction > max_bad_fraction:
        raise BadInputError(
            f"too many bad rows: {report.summary()}, above max_bad_fraction {max_bad_fraction}; "
            f"see {report.quarantine} for each row, its file, line number and reason"
        )


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit=" rows", unit_scale=True, disable=not enabled, desc="reading")
