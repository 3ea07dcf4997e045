"""The one row parser and validator, in TensorFlow ops over a batch of raw lines.

`parse_lines` is used by every reader: tf.data in the library (`read_table`) and Beam in the
pipeline (which calls it on batches of lines), so both accept and reject exactly the same rows;
`parse_columns`, its part after the split into columns, is the serving raw-feature signature's.
Each row gets a reason code; 0 means accepted. When several problems apply, the first in `REASONS`
order is reported.
"""

import tensorflow as tf

from ihas_keras.data.formats import TableFormat

REASONS = (
    "ok",
    "empty_line",  # nothing on the line
    "undecodable",  # bytes that are not UTF-8
    "column_count",  # more or fewer columns than the format has
    "bad_label",  # label not exactly 0 or 1
    "bad_numeric",  # a numeric column that is neither empty nor an integer
    "bad_hour",  # an Avazu hour that is not YYMMDDHH
)
REASON_CODE = {name: code for code, name in enumerate(REASONS)}

INTEGER_PATTERN = r"-?[0-9]{1,18}"  # 18 digits always fit int64


def parse_lines(lines: tf.Tensor, fmt: TableFormat) -> dict:
    """Parses a [B] string tensor of raw lines (without line ends).

    Args:
        lines: the raw lines [B].
        fmt: the table's format.

    Returns:
        {"reason": int32[B], "label": int64[B] (labeled formats), "values": {field: [B]},
        "present": {field: bool[B]}}: numeric fields are int64, categorical and derived fields are
        strings; a field that is empty in the row is not present. Values of rejected rows are
        meaningless.
    """
    lines = tf.convert_to_tensor(lines, tf.string)
    ncols = len(fmt.columns)
    cells = tf.strings.split(lines, sep=fmt.delimiter)
    counts = cells.row_lengths()
    table = cells.to_tensor(default_value="", shape=[None, ncols])
    out = parse_columns({name: table[:, i] for i, name in enumerate(fmt.columns)}, fmt)
    line_checks = [
        ("empty_line", tf.strings.length(lines) == 0),
        ("undecodable", _invalid_utf8(lines)),
        ("column_count", counts != ncols),
    ]
    for name, failed in reversed(line_checks):  # these come first in REASONS order
        out["reason"] = tf.where(failed, REASON_CODE[name], out["reason"])
    return out


def parse_columns(column: dict[str, tf.Tensor], fmt: TableFormat) -> dict:
    """Parses raw cells already split into columns.

    Args:
        column: {column: [B] string}, every input column of FMT (and its label, when FMT has
            one).
        fmt: the table's format.

    Returns:
        The same output as `parse_lines`, with the reasons that concern single cells only
        (bad_label, bad_numeric, bad_hour).
    """
    checks = []
    out = {"values": {}, "present": {}}
    if fmt.label:
        label = column[fmt.label]
        checks.append(("bad_label", ~((label == "0") | (label == "1"))))
        out["label"] = tf.cast(label == "1", tf.int64)

    bad_numeric = tf.zeros_like(next(iter(column.values())), tf.bool)
    for name in fmt.numeric:
        text = column[name]
        present = text != ""
        is_int = tf.strings.regex_full_match(text, INTEGER_PATTERN)
        bad_numeric |= present & ~is_int
        out["values"][name] = tf.strings.to_number(tf.where(is_int, text, "0"), tf.int64)
        out["present"][name] = present
    checks.append(("bad_numeric", bad_numeric))

    for name in fmt.categorical:
        out["values"][name] = column[name]
        out["present"][name] = column[name] != ""

    if fmt.hour:
        hour_of_day, day_of_week, bad_hour = _split_hour(column[fmt.hour])
        checks.append(("bad_hour", bad_hour))
        for name, value in (("hour_of_day", hour_of_day), ("day_of_week", day_of_week)):
            out["values"][name] = value
            out["present"][name] = ~bad_hour

    reason = tf.zeros_like(bad_numeric, tf.int32)
    for name, failed in reversed(checks):  # the first failing check in REASONS order wins
        reason = tf.where(failed, REASON_CODE[name], reason)
    out["reason"] = reason
    return out


def _invalid_utf8(lines: tf.Tensor) -> tf.Tensor:
    """True where a line has bytes that are not UTF-8 (transcoding changes only those)."""
    repaired = tf.strings.unicode_transcode(
        lines, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return repaired != lines


def _split_hour(hour: tf.Tensor):
    """YYMMDDHH (20YY) -> hour of day "0".."23", day of week "0" (Monday).."6", and bad rows."""
    well_formed = tf.strings.regex_full_match(hour, r"[0-9]{8}")
    digits = tf.strings.to_number(tf.where(well_formed, hour, "00010100"), tf.int64)
    year = 2000 + digits // 1000000
    month = digits // 10000 % 100
    day = digits // 100 % 100
    hh = digits % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = tf.gather(tf.constant([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
                                       tf.int64), tf.clip_by_value(month - 1, 0, 11))
    month_days += tf.cast(leap & (month == 2), tf.int64)
    bad = ~well_formed | (month < 1) | (month > 12) | (day < 1) | (day > month_days) | (hh > 23)
    # Days since 1970-01-01 (a Thursday), by H. Hinnant's days_from_civil.
    y = year - tf.cast(month <= 2, tf.int64)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + tf.where(month > 2, tf.constant(-3, tf.int64), 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    weekday = (days + 3) % 7
    return tf.strings.as_string(hh), tf.strings.as_string(weekday), bad
