"""The experiment's report: per-variant means and deviations, the clusters, an automatic
reading of where iHAS wins, ties or loses, as report.json, report.md and bar charts."""

import dataclasses
import json
import os

import numpy as np
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from experiments.variants import RQ1, RQ3, Settings, describe, parse_variant, research_question
from ihas_keras import plots

SINGLE_SEED_TIE = 0.001  # AUC / logloss difference counted as a tie with one seed


def _stats(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": values}


def truth_summary(truth: dict | None, labels: np.ndarray) -> dict:
    """Oracle AUCs of generated data: on the test rows (true probabilities) and over all rows.

    Args:
        truth: `planted_truth`'s result, or None for data that was not generated.
        labels: the test rows' labels [n].

    Returns:
        {"oracle_auc", "oracle_auc_all_rows", "planted_segments", "marker_ari"}; {} without
        TRUTH. "marker_ari" is the ceiling the markers allow the clusters: the adjusted Rand
        index of the segments their marker fields show against the planted ones (None for
        files generated before the truth recorded it).
    """
    if truth is None:
        return {}
    marked = truth.get("marked")
    return {"oracle_auc": float(roc_auc_score(labels, truth["probability"])),
            "oracle_auc_all_rows": truth["meta"]["oracle_auc"],
            "planted_segments": truth["meta"]["segments"],
            "marker_ari": None if marked is None else float(
                adjusted_rand_score(truth["segments"], marked))}


def build(results: dict, seeds: list, settings: Settings, data: dict) -> dict:
    """The report from RESULTS ({variant: [one result per seed]}).

    Args:
        results: {variant: [one result per seed]}, each result a run's stored dict.
        seeds: the seeds, in order.
        settings: the experiment's settings.
        data: what the data is (paths, format, rows, ...).

    Returns:
        {"data", "seeds", "settings", "variants", "clusters", "reading"}: per variant the mean,
        deviation and runs of each number, the clusters of the routed variants, and `reading`.
    """
    variants, clusters = {}, {}
    for name, runs in results.items():
        variants[name] = {
            "rq": research_question(name),
            "description": describe(name),
            **{k: _stats(r[k] for r in runs) for k in
               ("auc", "logloss", "params", "inference_seconds", "train_seconds")},
            "details": [r["details"] for r in runs],
        }
        if "clusters" in runs[0]:
            clusters[name] = [{"seed": r["seed"], **r["clusters"]} for r in runs]
    report = {"data": data, "seeds": list(seeds), "settings": dataclasses.asdict(settings),
              "variants": variants, "clusters": clusters}
    report["reading"] = reading(report)
    return report


def _verdict(a: dict, b: dict, higher_is_better: bool, single_seed: bool) -> str:
    diff = a["mean"] - b["mean"]
    margin = SINGLE_SEED_TIE if single_seed else max(a["std"], b["std"])
    if abs(diff) <= margin:
        return "ties"
    return "wins" if (diff > 0) == higher_is_better else "loses"


def compare(report: dict, a: str, b: str) -> str:
    """One line: how variant A fares against B on AUC and logloss.

    A difference within the larger standard deviation over seeds (with one seed: within
    SINGLE_SEED_TIE) is a tie.

    Args:
        report: the report (`build`).
        a: a variant's name.
        b: the variant it is compared with.

    Returns:
        `A vs B: wins|ties|loses on AUC (+d), wins|ties|loses on logloss (+d)`.
    """
    va, vb = report["variants"][a], report["variants"][b]
    single = len(report["seeds"]) == 1
    auc = _verdict(va["auc"], vb["auc"], True, single)
    loss = _verdict(va["logloss"], vb["logloss"], False, single)
    return (f"{a} vs {b}: {auc} on AUC ({va['auc']['mean'] - vb['auc']['mean']:+.4f}), "
            f"{loss} on logloss ({va['logloss']['mean'] - vb['logloss']['mean']:+.4f})")


def reading(report: dict) -> list[str]:
    """Where iHAS wins, ties or loses, question by question, from the numbers alone.

    Args:
        report: the report (`build`).

    Returns:
        One line per comparison, each starting with its research question (RQ1 to RQ5).
    """
    names = report["variants"]
    lines = [f"RQ1 {compare(report, 'ihas', b)}" for b in RQ1 if b != "ihas" and b in names
             and "ihas" in names]
    for name in names:
        kind, backbone = parse_variant(name)
        if kind == "ihas" and backbone != "dnn" and f"base@{backbone}" in names:
            lines.append(f"RQ2 {compare(report, name, f'base@{backbone}')}")
    lines += [f"RQ3 {compare(report, 'ihas', b)}" for b in RQ3 if b in names and "ihas" in names]
    times = {n: v["inference_seconds"]["mean"] for n, v in names.items()}
    if "ihas" in times and len(times) > 1:
        order = sorted(times, key=times.get)
        ratio = ", ".join(f"{times['ihas'] / times[n]:.2f}x {n}" for n in order if n != "ihas")
        lines.append(f"RQ4 ihas scores the test split in {times['ihas']:.3f} s, rank "
                     f"{order.index('ihas') + 1} of {len(order)} (time as a multiple of: {ratio})")
    for name, runs in report["clusters"].items():
        first = runs[0]
        ari = [r["ari"] for r in runs if r["ari"] is not None]
        text = f"RQ5 {name}: seed {first['seed']}'s test cluster sizes {first['test_sizes']}, " \
               f"widths per cluster (sum over fields) {[int(sum(w)) for w in first['widths']]}"
        if ari:
            text += (f"; ARI against the planted segments by seed "
                     f"{', '.join(f'{a:.3f}' for a in ari)} (mean {np.mean(ari):.3f}; chance: 0)")
        lines.append(text)
    return lines


def progress_line(name: str, result: dict) -> str:
    """One run on one line: seed, variant, AUC, logloss, parameters and training time.

    Args:
        name: the variant's name.
        result: the run's result.

    Returns:
        The line.
    """
    return (f"seed {result['seed']} {name}: AUC {result['auc']:.4f} logloss "
            f"{result['logloss']:.4f} params {result['params']:,} (trained in "
            f"{result['train_seconds']:.0f} s)")


def _cell(stats: dict, digits: int) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown(report: dict) -> str:
    """The report as Markdown (report.md).

    The data, the table of variants, the clusters of routed variants, the reading and the
    figures.

    Args:
        report: the report (`build`).

    Returns:
        The Markdown text.
    """
    data, settings = report["data"], report["settings"]
    lines = ["# iHAS experiment", "",
             f"Data: {', '.join(data['paths'])} ({data['format']}, {data['fields']} fields); "
             f"rows {data['rows']}; seeds {report['seeds']}; K = {settings['clusters']}; "
             f"embedding width {settings['embedding_dim']}; batch {settings['batch_size']}; "
             f"every model trained to early stop on validation AUC (patience "
             f"{settings['patience']}); clustered on {settings['representation']}."]
    if "oracle_auc" in data:
        lines.append(f"Generated data, {data['planted_segments']} planted segments: oracle AUC "
                     f"{data['oracle_auc']:.4f} on the test rows.")
        if data.get("marker_ari") is not None:
            lines.append(f"The ceiling of the clusters' adjusted Rand index (each test row "
                         f"assigned by its marker fields' bands): {data['marker_ari']:.3f}.")
    lines += ["", "| variant | RQ | test AUC | test logloss | parameters | inference s | "
              "training s | what it is |", "|---|---|---|---|---|---|---|---|"]
    for name, v in report["variants"].items():
        lines.append(f"| {name} | {v['rq']} | {_cell(v['auc'], 4)} | {_cell(v['logloss'], 4)} "
                     f"| {v['params']['mean']:,.0f} | {_cell(v['inference_seconds'], 3)} | "
                     f"{v['train_seconds']['mean']:.0f} | {v['description']} |")
    lines += ["", "Mean ± standard deviation over seeds. Every number comes from the variant's "
              "serving export (`serving_default`: serialized raw tf.Examples, the TF Transform "
              "graph, the model). Inference: the whole test split in batches of "
              f"{settings['inference_batch_size']}, the fastest of 3 passes after a warm-up, "
              "all exports timed one after another in one process after training."]
    for name, runs in report["clusters"].items():
        first = runs[0]
        lines += ["", f"## Clusters of {name} (seed {first['seed']})", "",
                  "| cluster | train examples | test examples | kept dimensions |",
                  "|---|---|---|---|"]
        for k, (tr, te, w) in enumerate(zip(first["train_sizes"], first["test_sizes"],
                                            first["widths"], strict=True)):
            lines.append(f"| {k} | {tr} | {te} | {int(sum(w))} |")
    lines += ["", "## Reading", "",
              "Automatic: a difference within one standard deviation over seeds (with one seed: "
              f"within {SINGLE_SEED_TIE}) is a tie.", ""]
    lines += [f"- {line}" for line in report["reading"]]
    figures = report.get("figures", [])
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write(report: dict, out: str) -> list[str]:
    """Writes the bar charts, OUT/report.json and OUT/report.md; returns the charts' names.

    The charts' names are added to the report's "figures" first.

    Args:
        report: the report (`build`).
        out: the experiment's folder.

    Returns:
        The charts' file names (auc.png, inference.png).
    """
    variants = report["variants"]
    charts = [
        plots.metric_bars({n: v["auc"]["mean"] for n, v in variants.items()},
                          os.path.join(out, "auc.png"), "AUC (test)",
                          {n: v["auc"]["std"] for n, v in variants.items()}),
        plots.metric_bars({n: v["inference_seconds"]["mean"] for n, v in variants.items()},
                          os.path.join(out, "inference.png"), "inference seconds (test split)"),
    ]
    names = [os.path.basename(c) for c in charts]
    report["figures"] = report.get("figures", []) + names
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(report))
    return names
