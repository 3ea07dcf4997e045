"""RawExampleGen: its executor run with `Do()` on artifacts in tmp_path, compared with the library's
`ingest` on the same files; the component itself; and a LocalDagRunner pipeline with StatisticsGen.
"""

import gzip
import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_artifacts

from components.example_gen import RawExampleGen
from components.example_gen.executor import COUNTS_FILE, QUARANTINE_FILE, Executor
from components.types import Quarantine
from ihas_keras.data import AVAZU, CRITEO, synthesize
from ihas_keras.data.ingest import ingest
from ihas_keras.data.preprocess import SPLITS, raw_feature_spec
from ihas_keras.errors import BadInputError
from pipeline.selfcheck import artifacts_in_mlmd

GOOD_CRITEO = "\t".join(["1", "5", *[""] * 12, "68fd1e64", *[""] * 25])
BAD_CRITEO = {  # reason -> row
    "column_count": "1\t2\t3",
    "bad_label": "2" + GOOD_CRITEO[1:],
    "bad_numeric": GOOD_CRITEO.replace("\t5\t", "\t1.5\t"),
    "empty_line": "",
}


def artifact(kind, uri):
    os.makedirs(uri, exist_ok=True)
    result = kind()
    result.uri = str(uri)
    return result


def run_executor(input_base, out, **props):
    """Runs the executor; returns its examples and quarantine artifacts."""
    examples = artifact(standard_artifacts.Examples, out / "examples")
    quarantine = artifact(Quarantine, out / "quarantine")
    exec_properties = {"input_base": str(input_base), "format": "criteo", "schema": None,
                       "seed": 0, "max_bad_fraction": 0.001, **props}
    Executor().Do({}, {"examples": [examples], "quarantine": [quarantine]}, exec_properties)
    return examples, quarantine


def generate(path, rows, fmt, seed):
    """Generated rows at PATH, without the generator's side files (input_base takes every file)."""
    synthesize(str(path), rows=rows, format=fmt, segments=2, seed=seed)
    for side in (f"{path}.truth.tsv", f"{path}.meta.json"):
        os.remove(side)


def append(path, rows):
    with open(path, "a") as f:
        f.write("".join(row + "\n" for row in rows))


def serialized(folder) -> list[bytes]:
    """The tf.Examples in FOLDER's gzipped TFRecords, each serialized with sorted features."""
    files = tf.io.gfile.glob(os.path.join(folder, "*.gz"))
    return sorted(
        tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    )


def quarantine_records(folder) -> list[dict]:
    with open(os.path.join(folder, QUARANTINE_FILE)) as f:
        return sorted((json.loads(line) for line in f), key=lambda r: (r["file"], r["line"]))


def counts(folder) -> dict:
    with open(os.path.join(folder, COUNTS_FILE)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    """Two Criteo files (one gzipped), 4 bad rows appended to the first; the executor's outputs
    and the library's `ingest` of the same files."""
    root = tmp_path_factory.mktemp("criteo")
    raw = root / "raw"
    raw.mkdir()
    generate(raw / "day_0.txt", 2000, "criteo", seed=1)
    append(raw / "day_0.txt", BAD_CRITEO.values())
    generate(root / "day_1.txt", 500, "criteo", seed=2)
    with open(root / "day_1.txt", "rb") as f, gzip.open(raw / "day_1.txt.gz", "wb") as out:
        shutil.copyfileobj(f, out)
    examples, quarantine = run_executor(raw, root / "component", max_bad_fraction=0.01)
    files = [str(raw / "day_0.txt"), str(raw / "day_1.txt.gz")]
    ingest(files, CRITEO, str(root / "library"), seed=0, max_bad_fraction=0.01)
    return {"raw": raw, "examples": examples, "quarantine": quarantine.uri,
            "library": root / "library"}


def test_examples_artifact_is_laid_out_as_tfx_example_gen(criteo):
    examples = criteo["examples"]
    assert artifact_utils.decode_split_names(examples.split_names) == list(SPLITS)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    for split in SPLITS:
        files = os.listdir(os.path.join(examples.uri, f"Split-{split}"))
        assert files and all(f.startswith("data_tfrecord-") and f.endswith(".gz") for f in files)


def test_accepted_rows_split_80_10_10_exactly_once(criteo):
    per_split = {s: serialized(os.path.join(criteo["examples"].uri, f"Split-{s}")) for s in SPLITS}
    total = sum(len(rows) for rows in per_split.values())
    assert total == counts(criteo["quarantine"])["rows_accepted"] == 2500
    fractions = {s: len(rows) / total for s, rows in per_split.items()}
    assert fractions["train"] == pytest.approx(0.8, abs=0.03), fractions
    assert fractions["eval"] == pytest.approx(0.1, abs=0.03), fractions
    assert fractions["test"] == pytest.approx(0.1, abs=0.03), fractions
    parsed = tf.io.parse_example(per_split["eval"], raw_feature_spec(CRITEO))
    assert set(parsed["label"].numpy()) == {0, 1}


def test_same_examples_and_quarantine_as_the_library(criteo):
    for split in SPLITS:
        component = serialized(os.path.join(criteo["examples"].uri, f"Split-{split}"))
        library = serialized(criteo["library"] / f"Split-{split}")
        assert component == library, split
    assert quarantine_records(criteo["quarantine"]) == quarantine_records(criteo["library"])


def test_quarantine_holds_exactly_the_bad_rows(criteo):
    path = str(criteo["raw"] / "day_0.txt")
    expected = [
        {"file": path, "line": 2001 + i, "reason": reason, "row": row}
        for i, (reason, row) in enumerate(BAD_CRITEO.items())
    ]
    assert quarantine_records(criteo["quarantine"]) == expected
    assert counts(criteo["quarantine"]) == {
        "rows_read": 2504, "rows_accepted": 2500, "rows_quarantined": 4,
        "by_reason": {reason: 1 for reason in BAD_CRITEO},
        "quarantine": os.path.join(criteo["quarantine"], QUARANTINE_FILE),
    }


def test_avazu_line_numbers_count_the_header(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    generate(raw / "train.csv", 300, "avazu", seed=3)
    with open(raw / "train.csv") as f:
        good = f.readlines()[1].rstrip("\n").split(",")
    bad_hour = ",".join([*good[:2], "14102199", *good[3:]])
    append(raw / "train.csv", [bad_hour, ",".join(good)])
    examples, quarantine = run_executor(raw, tmp_path, format="avazu", max_bad_fraction=0.01)
    assert quarantine_records(quarantine.uri) == [
        {"file": str(raw / "train.csv"), "line": 302, "reason": "bad_hour", "row": bad_hour}
    ]
    report = counts(quarantine.uri)
    assert (report["rows_read"], report["rows_accepted"]) == (302, 301)
    parsed = tf.io.parse_example(
        serialized(os.path.join(examples.uri, "Split-train")), raw_feature_spec(AVAZU)
    )
    assert set(parsed) >= {"hour_of_day", "day_of_week", "click"}


def test_too_many_bad_rows_fail_after_the_quarantine_is_written(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    append(raw / "part.txt", [GOOD_CRITEO] * 96 + list(BAD_CRITEO.values()))
    with pytest.raises(BadInputError) as failure:
        run_executor(raw, tmp_path, max_bad_fraction=0.01)
    quarantine = str(tmp_path / "quarantine" / QUARANTINE_FILE)
    message = str(failure.value)
    assert "quarantined 4 (4.0000%" in message and "max_bad_fraction 0.01" in message
    assert quarantine in message
    assert [r["line"] for r in quarantine_records(tmp_path / "quarantine")] == [97, 98, 99, 100]


def test_bad_input_names_the_folder_or_file(tmp_path):
    with pytest.raises(BadInputError, match=f"{tmp_path / 'missing'}: no such folder"):
        run_executor(tmp_path / "missing", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match=f"{tmp_path / 'empty'}: no files in it"):
        run_executor(tmp_path / "empty", tmp_path)
    (tmp_path / "raw").mkdir()
    append(tmp_path / "raw" / "train.csv", ["id,click,hour", "1,0,14102100"])
    with pytest.raises(BadInputError, match=r"train\.csv, line 1: the header does not match"):
        run_executor(tmp_path / "raw", tmp_path, format="avazu")


def test_component_declares_its_outputs_and_beam_executor():
    component = RawExampleGen(input_base="/data/criteo", seed=3)
    assert component.outputs["examples"].type is standard_artifacts.Examples
    assert component.outputs["quarantine"].type is Quarantine
    assert component.exec_properties["seed"] == 3
    assert component.exec_properties["max_bad_fraction"] == 0.001
    assert isinstance(component.executor_spec, executor_spec.BeamExecutorSpec)
    component.with_beam_pipeline_args(["--direct_num_workers=1"])
    assert component.executor_spec.beam_pipeline_args == ["--direct_num_workers=1"]


def test_standard_statistics_gen_reads_the_output_in_a_local_pipeline(criteo, tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from tfx import v1 as tfx

    example_gen = RawExampleGen(input_base=str(criteo["raw"]), max_bad_fraction=0.01)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    metadata = str(tmp_path / "metadata.sqlite")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="raw-example-gen", pipeline_root=str(tmp_path / "root"),
        components=[example_gen, statistics_gen], enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata
        ),
    ))
    artifacts = artifacts_in_mlmd(metadata)
    assert len(artifacts[Quarantine.TYPE_NAME]) == 1
    (stats_uri,) = artifacts["ExampleStatistics"]
    for split in SPLITS:
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(os.path.join(stats_uri, f"Split-{split}", "FeatureStats.pb"), "rb") as f:
            stats.ParseFromString(f.read())
        expected = len(serialized(os.path.join(criteo["examples"].uri, f"Split-{split}")))
        assert stats.datasets[0].num_examples == expected, split
        fields = {f.path.step[0] for f in stats.datasets[0].features}
        assert fields == {"label", *CRITEO.feature_fields}
