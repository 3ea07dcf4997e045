"""`ihas experiment`: every variant on one prepared split, for each seed, then the report."""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from sklearn.metrics import adjusted_rand_score

from experiments import report as reporting
from experiments.data import planted_truth, prepare, test_split
from experiments.store import RunStore
from experiments.variants import SeedRun, Settings, Trained, check_strategy, search_kind
from ihas_keras import distribute, plots, schedule
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.transform import transformed_dataset, vocabulary_sizes
from ihas_keras.errors import BadInputError
from ihas_keras.export import scoring
from ihas_keras.export.saved_model import export_serving_model
from ihas_keras.layers.threshold import histogram_threshold
from ihas_keras.models import SearchModel

GATE_ROWS = 2000  # test rows whose gate probabilities are drawn
GATE_TITLES = {"ihas": "iHAS", "ihas_3": "iHAS-3 (no polarization)",
               "ihas_4": "iHAS-4 (not instance-wise)"}


@dataclasses.dataclass(frozen=True)
class TestSplit:
    """The raw test examples, read once, and their label's name.

    Attributes:
        batches: the test split's serialized raw tf.Examples, in file order, in batches of the
            inference batch size (`scoring.raw_batches`).
        label: the label's feature name.
    """

    batches: list
    label: str


def load_signature(export_dir: str) -> tf.types.experimental.ConcreteFunction:
    """The `serving_default` signature of a stored run's export.

    Args:
        export_dir: the run's export (`RunStore.export_dir`).

    Returns:
        The signature (`scoring.load_signature`).

    Raises:
        BadInputError: naming the folder, and what to do, when it is missing or damaged.
    """
    try:
        return scoring.load_signature(export_dir)
    except BadInputError as e:
        raise BadInputError(f"{e}; delete its run to train it again") from None


def data_files(path: str) -> list[str]:
    """PATH itself, or the files of a folder (sorted).

    A folder's `.truth.tsv` and `.meta.json` files are left out.

    Args:
        path: a data file or a folder of data files.

    Returns:
        The data files.

    Raises:
        BadInputError: when there is nothing: no such file, or a folder without data files.
    """
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


def evaluate(trained: Trained, export_dir: str, test: TestSplit, truth: dict | None) -> dict:
    """Test AUC and logloss of the serving export in EXPORT_DIR, the model's parameter count.

    For routed models also the clusters: their train and test sizes, their widths, and the
    adjusted Rand index against the planted segments when TRUTH is given.

    Args:
        trained: the trained variant.
        export_dir: its serving export.
        test: the raw test split.
        truth: `planted_truth`'s result, or None.

    Returns:
        {"auc", "logloss", "params", "details"}, and "clusters" for routed models.

    Raises:
        BadInputError: the export cannot be loaded, or the test labels are all equal.
    """
    predictions = scoring.predict(load_signature(export_dir), test.batches, test.label)
    metrics = scoring.binary_metrics(predictions.labels, predictions.probability)
    clusters = predictions.cluster
    result = {"auc": metrics["auc"], "logloss": metrics["logloss"],
              "params": int(trained.model.count_params()), "details": trained.details}
    if trained.plan is not None:
        k = trained.plan.num_clusters
        result["clusters"] = {
            "train_sizes": trained.plan.sizes.tolist(),
            "test_sizes": np.bincount(clusters, minlength=k).tolist(),
            "widths": trained.plan.widths().tolist(),
            "ari": None if truth is None else float(
                adjusted_rand_score(truth["segments"], clusters)),
        }
    return result


def train_and_evaluate(seed_run: SeedRun, name: str, store: RunStore, prepared: str,
                       fmt: TableFormat, test: TestSplit, truth: dict | None) -> dict:
    """Trains variant NAME on SEED_RUN's seed, exports it into STORE and evaluates the export.

    The export is evaluated on the TEST split's raw examples; the result, with the seed and the
    training time, is stored and returned.

    Args:
        seed_run: the seed's data, settings and shared searches.
        name: the variant's name.
        store: where the export and the result go.
        prepared: the prepared folder (OUT/prepared).
        fmt: the data's format.
        test: the raw test split.
        truth: `planted_truth`'s result, or None.

    Returns:
        `evaluate`'s result, plus "seed" and "train_seconds".
    """
    start = time.perf_counter()
    trained = seed_run.train(name)
    seconds = time.perf_counter() - start
    seed = seed_run.seed
    export_dir = export_serving_model(trained.model, os.path.join(prepared, "transformed"), fmt,
                                      store.export_dir(name, seed))
    result = evaluate(trained, export_dir, test, truth)
    result.update(seed=seed, train_seconds=seconds)
    store.put(name, seed, result)
    return result


def time_exports(results: dict, store: RunStore, batches: list) -> None:
    """RQ4: sets each run's "inference_seconds" from its export's timing.

    A run's "inference_seconds" is its export's fastest of 3 passes over the test split; the
    exports are timed one after another, in this process.

    Args:
        results: {variant: [one result per seed]}, updated in place.
        store: where the runs' exports are.
        batches: the test split's serialized raw tf.Examples (`scoring.raw_batches`).
    """
    for name, runs in results.items():
        for r in runs:
            signature = load_signature(store.export_dir(name, r["seed"]))
            r["inference_seconds"] = scoring.time_passes(signature, batches, passes=3)


def gate_histogram(search: SearchModel, x: dict) -> dict:
    """SEARCH's gate probabilities on the first GATE_ROWS test rows, as a histogram.

    The histogram carries the median per-example threshold.

    Args:
        search: a search model.
        x: the test split's {field: int64 ids [n]} (`test_split`).

    Returns:
        The histogram (`plots.gate_histogram`).
    """
    p = search.gated({f: v[:GATE_ROWS] for f, v in x.items()})[2].numpy()
    return plots.gate_histogram(p, histogram_threshold(p).numpy())


def gate_figure(store: RunStore, variants: list[str], seed: int, path: str) -> str | None:
    """Gate histograms of the searches behind VARIANTS on SEED, drawn into PATH.

    The histograms are those stored by the runs that trained the searches (this one or an
    earlier one).

    Args:
        store: where the histograms are.
        variants: the experiment's variants.
        seed: the seed whose searches are drawn.
        path: the figure's file.

    Returns:
        The figure's path; None when there are no histograms.
    """
    kinds = {search_kind(name) for name in variants}
    histograms = {title: h for kind, title in GATE_TITLES.items()
                  if kind in kinds and (h := store.get(kind, seed, "gates")) is not None}
    return plots.gate_histogram_panels(histograms, path) if histograms else None


def run(data: str, fmt: TableFormat, out: str, seeds: list[int], variants: list[str],
        settings: Settings | None = None) -> dict:
    """Runs the experiment on DATA into OUT, and writes its report.

    Prepares DATA into OUT/prepared (or reuses it), trains and evaluates every variant for every
    seed (or reads its result from OUT/runs: see store.py), writes OUT/report.json, OUT/report.md
    and the figures.

    Args:
        data: a data file or a folder of data files.
        fmt: their format.
        out: the experiment's folder.
        seeds: the seeds, in order.
        variants: the variants' names (`variants.expand`).
        settings: how every variant is trained and measured; None for the defaults.

    Returns:
        The report (`report.build`).

    Raises:
        BadInputError: there are no data files; OUT/prepared or a stored run was made from
            other data or settings, or a stored run or export is unreadable; or the test split
            has a single label.
        ValueError: the settings' strategy is not one the runner takes (`check_strategy`).
    """
    s = settings or Settings()
    strategy = distribute.strategy(check_strategy(s.strategy, "Settings.strategy"))
    paths = data_files(data)
    os.makedirs(out, exist_ok=True)
    prepared = os.path.join(out, "prepared")
    transformed, rows = prepare(paths, fmt, prepared, progress=s.progress)
    if s.batch_size is None:
        s = dataclasses.replace(s, batch_size=schedule.batch_size(rows["train"]))
    sizes = vocabulary_sizes(transformed, fmt)
    train, validation = (transformed_dataset(transformed, split, fmt, s.batch_size)
                         for split in ("train", "eval"))
    x, y = test_split(prepared, fmt)
    test = TestSplit(scoring.raw_batches(os.path.join(prepared, "examples"), "test",
                                         s.inference_batch_size), fmt.label)
    if len(np.unique(y)) < 2:
        raise BadInputError("the test split has a single label: AUC is undefined")
    truth = planted_truth(paths[0], fmt) if len(paths) == 1 else None
    results = {name: [] for name in variants}
    figures = []
    store = RunStore(out, s, paths)
    for seed in seeds:
        seed_run = SeedRun(sizes, train, validation, s, seed, store, strategy)
        for name in variants:
            result, how = store.get(name, seed), " (stored)"
            if result is None:
                result, how = train_and_evaluate(seed_run, name, store, prepared, fmt, test,
                                                 truth), ""
            print(reporting.progress_line(name, result) + how, flush=True)
            results[name].append(result)
            if seed == seeds[0] and "clusters" in result:
                c = result["clusters"]
                figures.append(plots.widths_heatmap(
                    c["widths"], list(sizes), os.path.join(out, f"widths_{name}.png"),
                    c["test_sizes"]))
        for kind, search in seed_run.searches.items():
            store.put(kind, seed, gate_histogram(search, x), "gates")
    figures.append(gate_figure(store, variants, seeds[0], os.path.join(out, "gates.png")))
    time_exports(results, store, test.batches)
    report = reporting.build(results, seeds, s, {
        "paths": paths, "format": fmt.name, "rows": rows, "test_rows": int(len(y)),
        "fields": len(sizes), **reporting.truth_summary(truth, y)})
    report["figures"] = [os.path.basename(f) for f in figures if f]
    reporting.write(report, out)
    return report
