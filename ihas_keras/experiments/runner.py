"""`ihas experiment`: every variant on one prepared split, for each seed, then the report."""

import os
import time

import numpy as np
import tensorflow as tf
from sklearn.metrics import adjusted_rand_score, log_loss, roc_auc_score

from ihas_keras import plots
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.read import BadInputError
from ihas_keras.data.transform import transformed_dataset, vocabulary_sizes
from ihas_keras.experiments import report as reporting
from ihas_keras.experiments.data import planted_truth, prepare, test_split
from ihas_keras.experiments.store import RunStore
from ihas_keras.experiments.variants import SeedRun, Settings, Trained
from ihas_keras.layers.threshold import histogram_threshold

GATE_ROWS = 2000  # test rows whose gate probabilities are drawn


def data_files(path: str) -> list[str]:
    """PATH itself, or the files of a folder (sorted); BadInputError when there is nothing."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if os.path.isfile(os.path.join(path, f)) and not f.endswith(
                           (".truth.tsv", ".meta.json")))
        if files:
            return files
        raise BadInputError(f"{path}: folder without data files")
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such data file")
    return [path]


def predict(model, x: dict, batch_size: int, passes: int = 3):
    """(probabilities, clusters or None, seconds) of MODEL over X in batches of BATCH_SIZE. One
    traced function for every batch size, warmed up on the first and last batch; the time is the
    fastest of PASSES passes over X (the machine is shared: the fastest pass is the least
    disturbed)."""
    spec = {f: tf.TensorSpec([None], tf.int64) for f in x}
    call = tf.function(lambda inputs: model(inputs, training=False), input_signature=[spec])
    rows = len(next(iter(x.values())))
    batches = [{f: tf.constant(v[i:i + batch_size]) for f, v in x.items()}
               for i in range(0, rows, batch_size)]
    call(batches[0])
    call(batches[-1])
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        outputs = [call(b) for b in batches]
        seconds.append(time.perf_counter() - start)
    if isinstance(outputs[0], dict):
        return (np.concatenate([o["probability"].numpy() for o in outputs]),
                np.concatenate([o["cluster"].numpy() for o in outputs]), min(seconds))
    return np.concatenate([o.numpy() for o in outputs]), None, min(seconds)


def evaluate(trained: Trained, x: dict, y: np.ndarray, batch_size: int,
             truth: dict | None) -> dict:
    """Test AUC, logloss, parameter count, inference seconds; clusters for routed models."""
    prob, clusters, seconds = predict(trained.model, x, batch_size)
    prob = np.clip(prob.astype("float64"), 1e-7, 1 - 1e-7)
    result = {"auc": float(roc_auc_score(y, prob)), "logloss": float(log_loss(y, prob)),
              "params": int(trained.model.count_params()), "inference_seconds": seconds,
              "details": trained.details}
    if clusters is not None and trained.plan is not None:
        k = trained.plan.num_clusters
        result["clusters"] = {
            "train_sizes": trained.plan.sizes.tolist(),
            "test_sizes": np.bincount(clusters, minlength=k).tolist(),
            "widths": trained.plan.widths().tolist(),
            "ari": None if truth is None else float(
                adjusted_rand_score(truth["segments"], clusters)),
        }
    return result


def gate_figure(searches: dict, x: dict, path: str) -> str | None:
    """Gate-probability histograms of the iHAS search and its ablations' searches."""
    titles = {"ihas": "iHAS", "ihas_3": "iHAS-3 (no polarization)",
              "ihas_4": "iHAS-4 (not instance-wise)"}
    sample = {f: v[:GATE_ROWS] for f, v in x.items()}
    probabilities = {titles[k]: m.gated(sample)[2].numpy() for k, m in searches.items()}
    if not probabilities:
        return None
    thresholds = {t: histogram_threshold(p).numpy() for t, p in probabilities.items()}
    return plots.gate_histograms(probabilities, path, thresholds)


def run(data: str, fmt: TableFormat, out: str, seeds: list[int], variants: list[str],
        settings: Settings | None = None) -> dict:
    """Prepares DATA into OUT/prepared (or reuses it), trains and evaluates every variant for
    every seed (or reads its result from OUT/runs: see store.py), writes OUT/report.json,
    OUT/report.md and the figures; returns the report."""
    s = settings or Settings()
    paths = data_files(data)
    os.makedirs(out, exist_ok=True)
    prepared = os.path.join(out, "prepared")
    transformed, rows = prepare(paths, fmt, prepared, progress=s.progress)
    sizes = vocabulary_sizes(transformed, fmt)
    train, validation = (transformed_dataset(transformed, split, fmt, s.batch_size)
                         for split in ("train", "eval"))
    x, y = test_split(prepared, fmt)
    if len(np.unique(y)) < 2:
        raise BadInputError("the test split has a single label: AUC is undefined")
    truth = planted_truth(paths[0], fmt) if len(paths) == 1 else None
    results = {name: [] for name in variants}
    figures = []
    store = RunStore(out, s, paths)
    for seed in seeds:
        seed_run = SeedRun(sizes, train, validation, s, seed)
        for name in variants:
            result = store.get(name, seed)
            if result is None:
                start = time.perf_counter()
                trained = seed_run.train(name)
                result = evaluate(trained, x, y, s.inference_batch_size, truth)
                result.update(seed=seed, train_seconds=time.perf_counter() - start)
                store.put(name, seed, result)
                print(reporting.progress_line(name, result), flush=True)
            else:
                print(reporting.progress_line(name, result), "(stored)", flush=True)
            results[name].append(result)
            if seed == seeds[0] and "clusters" in result:
                c = result["clusters"]
                figures.append(plots.widths_heatmap(
                    c["widths"], list(sizes), os.path.join(out, f"widths_{name}.png"),
                    c["test_sizes"]))
        if seed == seeds[0]:
            gates = os.path.join(out, "gates.png")
            if seed_run.searches:
                figures.append(gate_figure(seed_run.searches, x, gates))
            elif any(n.startswith("ihas") for n in variants) and os.path.exists(gates):
                figures.append(gates)  # drawn by the run that trained this seed's searches
    report = reporting.build(results, seeds, s, {
        "paths": paths, "format": fmt.name, "rows": rows, "test_rows": int(len(y)),
        "fields": len(sizes), **reporting.truth_summary(truth, y)})
    report["figures"] = [os.path.basename(f) for f in figures if f]
    reporting.write(report, out)
    return report
