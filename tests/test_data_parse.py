"""Raw formats, the shared row parser, quarantine and counts, on hand-written rows."""

import json

import pytest
import tensorflow as tf

from ihas_keras.data import (
    AVAZU,
    CRITEO,
    REASONS,
    get_format,
    load_schema,
    parse_lines,
    validate,
)
from ihas_keras.data.parse import parse_columns
from ihas_keras.errors import BadInputError

# The first row of Criteo's train.txt, as published (I12 and C22 are empty).
CRITEO_ROW = (
    "0\t1\t1\t5\t0\t1382\t4\t15\t2\t181\t1\t2\t\t2\t68fd1e64\t80e26c9b\tfb936136\t7b4723c4\t"
    "25c83c98\t7e0ccccf\tde7995b8\t1f89b1b5\ta73ee510\ta8cd5504\tb2cb9c98\t37c9c164\t2824a5f7\t"
    "1adce6ef\t8ba8b39a\t891b62e1\te5ba7672\tf54016b9\t21ddcdc9\tb1252a9d\t07b5194c\t\t3a171ecb\t"
    "c5c50484\te8b83407\t9727dd16"
)
# The first row of Avazu's train file, as published; 2014-10-21 was a Tuesday.
AVAZU_HEADER = ",".join(AVAZU.columns)
AVAZU_ROW = (
    "1000009418151094273,0,14102100,1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,"
    "07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79"
)


def decoded(batch, i=0):
    return {k: (v[i].decode() if isinstance(v[i], bytes) else v[i]) for k, v in batch.items()}


def parse(rows, fmt):
    out = parse_lines([r.encode() if isinstance(r, str) else r for r in rows], fmt)
    return {
        "reason": out["reason"].numpy(),
        "label": out["label"].numpy() if "label" in out else None,
        "values": {k: v.numpy() for k, v in out["values"].items()},
        "present": {k: v.numpy() for k, v in out["present"].items()},
    }


def test_criteo_row_parses_with_empty_fields():
    out = parse([CRITEO_ROW], CRITEO)
    assert out["reason"].tolist() == [0]
    assert out["label"].tolist() == [0]
    values, present = decoded(out["values"]), decoded(out["present"])
    assert [values[f"I{i}"] for i in (1, 5, 9, 13)] == [1, 1382, 181, 2]
    assert not present["I12"] and present["I13"]
    assert values["C1"] == "68fd1e64" and values["C26"] == "9727dd16"
    assert not present["C22"] and values["C22"] == ""
    assert sum(present.values()) == 39 - 2


def test_criteo_test_layout_has_no_label():
    fmt = get_format("criteo-test")
    assert len(fmt.columns) == 39 and fmt.label is None
    out = parse([CRITEO_ROW.split("\t", 1)[1]], fmt)
    assert out["reason"].tolist() == [0] and out["label"] is None
    assert out["values"]["I5"].tolist() == [1382]
    # The labeled 40-column row is the wrong layout for the test format.
    assert REASONS[parse([CRITEO_ROW], fmt)["reason"][0]] == "column_count"


def test_avazu_row_derives_hour_of_day_and_day_of_week():
    out = parse([AVAZU_ROW, AVAZU_ROW.replace("14102100", "14102623")], AVAZU)
    assert out["reason"].tolist() == [0, 0]
    assert out["label"].tolist() == [0, 0]
    values = out["values"]
    assert [v.decode() for v in values["hour_of_day"]] == ["0", "23"]
    assert [v.decode() for v in values["day_of_week"]] == ["1", "6"]  # Tuesday, Sunday
    assert "id" not in values and "hour" not in values
    assert values["site_id"][0] == b"1fbe01fe" and values["C20"][0] == b"-1"
    assert AVAZU.feature_fields[-2:] == ("hour_of_day", "day_of_week")
    assert len(AVAZU.feature_fields) == 23


def test_every_kind_of_bad_row_is_quarantined_with_reason_and_line(tmp_path):
    good = CRITEO_ROW
    bad = {
        "empty_line": b"",
        "undecodable": CRITEO_ROW.replace("68fd1e64", "68fd").encode() + b"\xff\xfe",
        "column_count": "\t".join(CRITEO_ROW.split("\t")[:-1]).encode(),
        "bad_label": ("2" + CRITEO_ROW[1:]).encode(),
        "bad_numeric": CRITEO_ROW.replace("\t1382\t", "\t13.5\t").encode(),
    }
    lines = [good.encode()] * 3 + list(bad.values()) + [good.encode()]
    path = tmp_path / "day_0.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    quarantine = tmp_path / "q" / "quarantine.jsonl"

    report = validate([str(path)], CRITEO, str(quarantine), max_bad_fraction=1.0)

    assert report.rows_read == len(lines) == report.rows_accepted + report.rows_quarantined
    assert report.rows_accepted == 4
    assert report.by_reason == {reason: 1 for reason in bad}
    records = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [
        (4 + i, reason) for i, reason in enumerate(bad)
    ]
    assert all(r["file"] == str(path) for r in records)
    assert records[1]["row"].endswith("\\xff\\xfe")
    assert records[4]["row"] == bad["bad_numeric"].decode()


def test_bad_avazu_hour_and_header_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        "\n".join([AVAZU_HEADER, AVAZU_ROW, AVAZU_ROW.replace("14102100", "14132100"),
                   AVAZU_ROW.replace("14102100", "1410210")]) + "\n"
    )
    report = validate([str(path)], AVAZU, str(tmp_path / "q.jsonl"), max_bad_fraction=1.0)
    records = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [(3, "bad_hour"), (4, "bad_hour")]
    assert (report.rows_read, report.rows_accepted) == (3, 1)


@pytest.mark.parametrize("hour, bad", [
    ("14022900", True), ("14023112", True), ("14043100", True), ("16022900", False),
    ("00022900", False), ("14022800", False), ("14123123", False), ("14113100", True),
])
def test_avazu_hours_are_real_calendar_days(tmp_path, hour, bad):
    """29 February only in leap years (2000 and 2016 are), 31 days only in long months."""
    path = tmp_path / "train.csv"
    path.write_text("\n".join([AVAZU_HEADER, AVAZU_ROW.replace("14102100", hour)]) + "\n")
    report = validate([str(path)], AVAZU, str(tmp_path / "q.jsonl"), max_bad_fraction=1.0)
    assert report.by_reason == ({"bad_hour": 1} if bad else {})


def test_too_many_bad_rows_fails_after_writing_the_quarantine(tmp_path):
    path = tmp_path / "day_1.txt"
    path.write_text("\n".join([CRITEO_ROW] * 98 + ["x", "y"]) + "\n")
    quarantine = tmp_path / "q.jsonl"
    with pytest.raises(BadInputError, match=r"too many bad rows: rows read 100.*q\.jsonl"):
        validate([str(path)], CRITEO, str(quarantine), max_bad_fraction=0.01)
    assert len(quarantine.read_text().splitlines()) == 2
    report = validate([str(path)], CRITEO, str(quarantine), max_bad_fraction=0.02)
    assert report.rows_quarantined == 2


def test_line_numbers_count_per_file_across_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(CRITEO_ROW + "\nbad\n")
    b.write_text("bad\n" + CRITEO_ROW + "\n")
    quarantine = tmp_path / "q.jsonl"
    validate([str(a), str(b)], CRITEO, str(quarantine), max_bad_fraction=1.0)
    records = [json.loads(x) for x in quarantine.read_text().splitlines()]
    assert [(r["file"], r["line"]) for r in records] == [(str(a), 2), (str(b), 1)]


def test_gzip_input_is_read(tmp_path):
    import gzip

    path = tmp_path / "train.gz"
    with gzip.open(path, "wt") as f:
        f.write(AVAZU_HEADER + "\n" + AVAZU_ROW + "\n")
    report = validate([str(path)], AVAZU, str(tmp_path / "q.jsonl"))
    assert (report.rows_read, report.rows_accepted) == (1, 1)


def _gzip(path, text: str) -> bytes:
    import gzip

    data = gzip.compress(text.encode())
    path.write_bytes(data)
    return data


def test_a_truncated_or_fake_gzip_file_and_a_folder_are_named(tmp_path):
    """TensorFlow's gzip reader stops where a cut file ends without a word: an error here."""
    rows = "".join(CRITEO_ROW.replace("\t1\t1\t5", f"\t1\t1\t{i}", 1) + "\n"
                   for i in range(5000))
    data = _gzip(tmp_path / "whole.gz", rows)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"cut\.gz: the gzip stream ends early .* line \d+"):
        validate([str(cut)], CRITEO, str(tmp_path / "q.jsonl"))
    fake = tmp_path / "plain.gz"
    fake.write_text(rows[:1000])
    with pytest.raises(BadInputError, match=r"plain\.gz: not a gzip file"):
        validate([str(fake)], CRITEO, str(tmp_path / "q.jsonl"))
    with pytest.raises(BadInputError, match=r"a folder, not a file"):
        validate([str(tmp_path)], CRITEO, str(tmp_path / "q.jsonl"))
    assert validate([str(tmp_path / "whole.gz")], CRITEO,
                    str(tmp_path / "q.jsonl")).rows_read == 5000


def test_a_gzip_file_of_two_members_is_read_whole(tmp_path):
    """`cat a.gz b.gz > ab.gz` is one valid gzip file: every row of both is read."""
    _gzip(tmp_path / "a.gz", CRITEO_ROW + "\n")
    _gzip(tmp_path / "b.gz", CRITEO_ROW + "\n" + CRITEO_ROW + "\n")
    both = tmp_path / "ab.gz"
    both.write_bytes((tmp_path / "a.gz").read_bytes() + (tmp_path / "b.gz").read_bytes())
    report = validate([str(both)], CRITEO, str(tmp_path / "q.jsonl"))
    assert (report.rows_read, report.rows_accepted) == (3, 3)


def test_input_without_data_rows_is_an_error_unless_allowed(tmp_path, capsys):
    from ihas_cli import main as cli

    empty, header_only = tmp_path / "empty.txt", tmp_path / "header.csv"
    empty.write_text("")
    header_only.write_text(AVAZU_HEADER + "\n")
    for path, fmt in ((empty, CRITEO), (header_only, AVAZU)):
        with pytest.raises(BadInputError, match="no data rows"):
            validate([str(path)], fmt, str(tmp_path / "q.jsonl"))
        assert validate([str(path)], fmt, str(tmp_path / "q.jsonl"),
                        allow_empty=True).rows_read == 0
    assert cli.main(["data", "validate", "--format", "criteo", "--quiet",
                     "--quarantine", str(tmp_path / "q.jsonl"), str(empty)]) == 1
    err = capsys.readouterr().err
    assert "no data rows" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["data", "validate", "--format", "criteo", "--quiet", "--allow-empty",
                     "--quarantine", str(tmp_path / "q.jsonl"), str(empty)]) == 0


def test_wrong_header_and_missing_file_are_clear_errors(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(AVAZU_HEADER.replace("click", "clicked") + "\n" + AVAZU_ROW + "\n")
    with pytest.raises(BadInputError, match=r"train\.csv, line 1: the header does not match"):
        validate([str(path)], AVAZU, str(tmp_path / "q.jsonl"))
    with pytest.raises(BadInputError, match=r"nope\.txt: no such file"):
        validate([str(tmp_path / "nope.txt")], CRITEO, str(tmp_path / "q.jsonl"))


def test_generic_schema_file(tmp_path):
    schema = tmp_path / "shop.yaml"
    schema.write_text(
        "columns: [clicked, user, item, price_cents, note]\n"
        "label: clicked\ncategorical: [user, item]\nnumeric: [price_cents]\n"
        "dropped: [note]\ndelimiter: ';'\nheader: true\n"
    )
    fmt = load_schema(str(schema))
    assert fmt.feature_fields == ("price_cents", "user", "item")
    data = tmp_path / "shop.csv"
    data.write_text("clicked;user;item;price_cents;note\n1;u1;i9;1250;hi\n0;u2;;;\n1;u3;i1;x;\n")
    quarantine = tmp_path / "q.jsonl"
    report = validate([str(data)], fmt, str(quarantine), max_bad_fraction=1.0)
    assert (report.rows_accepted, report.by_reason) == (2, {"bad_numeric": 1})
    assert json.loads(quarantine.read_text())["line"] == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("label: y\n", "`columns`"),
        ("columns: [y, a]\nlabel: y\n", "every column must be exactly one of"),
        ("columns: [y]\nlabel: y\ncolour: red\n", "unknown keys \\['colour'\\]"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_schema_files_name_the_problem(tmp_path, text, message):
    schema = tmp_path / "s.yaml"
    schema.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_schema(str(schema))


@pytest.mark.parametrize("fmt, row, bad_cell", [
    (CRITEO, CRITEO_ROW, ("I5", "13.5", "bad_numeric")),
    (AVAZU, AVAZU_ROW, ("hour", "14132100", "bad_hour")),
])
def test_parse_columns_agrees_with_parse_lines(fmt, row, bad_cell):
    """The serving raw-feature signature parses cells already in columns: same values, same
    reasons for cell-level problems."""
    name, text, reason = bad_cell
    cells = row.split(fmt.delimiter)
    bad = list(cells)
    bad[fmt.columns.index(name)] = text
    rows = [row, fmt.delimiter.join(bad)]
    by_line = parse(rows, fmt)
    out = parse_columns({c: tf.constant([cells[i], bad[i]]) for i, c in enumerate(fmt.columns)},
                        fmt)
    assert [REASONS[r] for r in out["reason"].numpy()] == ["ok", reason]
    assert out["reason"].numpy().tolist() == by_line["reason"].tolist()
    for field in fmt.feature_fields:
        assert out["values"][field].numpy()[0] == by_line["values"][field][0], field
        assert out["present"][field].numpy().tolist() == by_line["present"][field].tolist()
