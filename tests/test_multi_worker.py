"""MultiWorkerMirroredStrategy: 2 worker processes on 127.0.0.1 against one device.

The test starts 2 workers of one cluster (TF_CONFIG naming 2 free local ports) and a third
process without TF_CONFIG, the one-device reference, each running tests/multi_worker_job.py:
the search model (bi-level, gate steps through `strategy.run`), a recommender through
`fit_recommender`, and the routed model through `ihas_keras.retrain`. Every process ends by
itself; each wait is bounded, and a process still running at its deadline is killed and named.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from ihas_keras import distribute_fixes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 600  # seconds for all three processes together; they take far less
# What Keras 3.15 raises without each fix (ihas_keras/distribute_fixes.py).
KERAS_FAILURES = {
    "symbolic_build": "",
    "metric_reduction": "Invalid reduction dimension 0 for input with 0 dimensions",
}
METRICS = ("search_auc", "recommender_auc", "routed_auc")


def free_ports(n: int) -> list[int]:
    """N distinct free TCP ports on 127.0.0.1 (held open together while they are chosen)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(out, name: str, tf_config: dict | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log = open(out / f"{name}.log", "w")  # a file: a full pipe would stall a worker
    process = subprocess.Popen([sys.executable, "-m", "tests.multi_worker_job", str(out)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{process name: (its result, {weight name: array})}; every process must exit 0."""
    out = tmp_path_factory.mktemp("multi_worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = {f"worker-{i}": start(out, f"worker-{i}",
                                      {"cluster": cluster, "task": {"type": "worker", "index": i}})
                 for i in range(2)}
    processes["one-device"] = start(out, "one-device", None)
    deadline = time.monotonic() + DEADLINE
    # Until all have ended, one has failed (its peer would wait for it) or the deadline.
    while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
        if any(p.poll() not in (None, 0) for p in processes.values()):
            break
        time.sleep(0.5)
    stopped = [name for name, p in processes.items() if p.poll() is None]
    for name in stopped:
        processes[name].kill()
        processes[name].wait()
    logs = {name: (out / f"{name}.log").read_text()[-3000:] for name in processes}
    failed = [name for name, p in processes.items() if p.returncode != 0]
    assert not failed, "\n".join(
        f"{name}: {'killed (past the deadline, or a peer failed)' if name in stopped else 'exit'}"
        f" {processes[name].returncode}\n{logs[name]}" for name in failed)
    results = {}
    for name in processes:
        result = json.loads((out / f"result-{name}.json").read_text())
        with np.load(out / f"weights-{name}.npz") as weights:
            results[name] = (result, dict(weights))
    return results


def test_multi_worker_training_matches_one_device(runs):
    workers = [runs[f"worker-{i}"][0] for i in range(2)]
    one = runs["one-device"][0]
    assert [w["replicas"] for w in workers] == [2, 2] and one["replicas"] == 1
    assert [w["chief"] for w in workers] == [True, False] and one["chief"]
    assert [w["fixes_applied"] for w in workers] == [list(distribute_fixes.FIXES)] * 2
    # One gate step after every 2nd of the 16 global batches an epoch, counted once a step.
    assert workers[0]["arch_steps"] == workers[1]["arch_steps"] == one["arch_steps"] == [8.0] * 4
    # The routed models retrain from the same search and plan in every process.
    assert workers[0]["plan"] == workers[1]["plan"] == one["plan"]
    assert workers[0]["routed_kind"] == one["routed_kind"] == "RoutedModel"
    for key in METRICS:
        assert workers[0][key] == workers[1][key], (key, workers)  # reduced over the cluster
        assert one[key] > 0.65 and abs(workers[0][key] - one[key]) < 0.05, (key, workers, one)


def test_both_workers_end_with_identical_weights(runs):
    first, second = runs["worker-0"][1], runs["worker-1"][1]
    assert sorted(first) == sorted(second) == sorted(runs["one-device"][1])
    assert {name.split("/")[0] for name in first} == {"search", "recommender", "routed"}
    differ = [name for name in first if not np.array_equal(first[name], second[name])]
    assert not differ, f"weights that differ between the workers: {differ}"


@pytest.mark.parametrize("fix", distribute_fixes.FIXES)
def test_keras_still_needs_each_multi_worker_fix(runs, fix):
    """Keras's own code, with this fix undone (the other applied), still fails on a worker; when
    it no longer does, upstream fixed the bug and the fix should go."""
    for i in range(2):
        failure = runs[f"worker-{i}"][0]["upstream_failures"][fix]
        assert failure is not None, (
            f"Keras now trains under MultiWorkerMirroredStrategy without the {fix!r} fix: "
            f"delete it from ihas_keras/distribute_fixes.py (and this test's entry)")
        assert KERAS_FAILURES[fix] in failure, (fix, failure)
