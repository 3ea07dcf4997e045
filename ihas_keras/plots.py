"""PNG figures: gate-probability histograms, the per-cluster, per-field widths heatmap, bars.

Drawn on `matplotlib.figure.Figure` objects, without pyplot: no global backend is chosen and
nothing is left open.
"""

import numpy as np
from matplotlib.figure import Figure

GATE_BINS = 50


def gate_histogram(probabilities, thresholds=None) -> dict:
    """{"counts": GATE_BINS bins over [0, 1], "median_threshold": float or None} of gate
    PROBABILITIES (any shape) and per-example THRESHOLDS: what a panel draws, small to store."""
    counts, _ = np.histogram(np.ravel(probabilities), bins=GATE_BINS, range=(0, 1))
    return {"counts": counts.tolist(),
            "median_threshold": None if thresholds is None else float(np.median(thresholds))}


def gate_histograms(probabilities: dict, path: str, thresholds: dict | None = None) -> str:
    """One histogram panel per entry of PROBABILITIES ({title: gate probabilities, any shape}),
    for example {"with polarization": p1, "without": p2}; THRESHOLDS ({title: per-example
    thresholds}) are drawn as their median. Writes PATH and returns it."""
    thresholds = thresholds or {}
    return gate_histogram_panels(
        {t: gate_histogram(p, thresholds.get(t)) for t, p in probabilities.items()}, path)


def gate_histogram_panels(histograms: dict, path: str) -> str:
    """One panel per entry of HISTOGRAMS ({title: gate_histogram(...)}). Writes PATH, returns it."""
    fig = Figure(figsize=(4.5 * len(histograms), 3.2))
    axes = fig.subplots(1, len(histograms), squeeze=False)
    for ax, (title, h) in zip(axes[0], histograms.items(), strict=True):
        edges = np.linspace(0, 1, len(h["counts"]) + 1)
        ax.hist(edges[:-1], bins=edges, weights=h["counts"], color="#4477aa")
        t = h["median_threshold"]
        if t is not None:
            ax.axvline(t, color="#cc3311", linestyle="--", label=f"median threshold {t:.2f}")
            ax.legend(loc="upper center")
        ax.set(title=title, xlabel="keep probability", ylabel="dimensions x examples")
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def widths_heatmap(widths, fields, path: str, sizes=None) -> str:
    """Heatmap of WIDTHS [K, N] (clusters x fields), each cell annotated; SIZES label the rows.
    Writes PATH and returns it."""
    widths = np.asarray(widths)
    k, n = widths.shape
    fig = Figure(figsize=(max(6, 0.38 * n + 2), 0.6 * k + 1.6))
    ax = fig.subplots()
    image = ax.imshow(widths, cmap="viridis", aspect="auto", vmin=0)
    for (i, j), w in np.ndenumerate(widths):
        ax.text(j, i, str(w), ha="center", va="center", fontsize=7,
                color="white" if w < widths.max() / 2 else "black")
    rows = [f"cluster {i}" + (f" ({sizes[i]})" if sizes is not None else "") for i in range(k)]
    ax.set(xticks=range(n), yticks=range(k), title="embedding width per cluster and field")
    ax.set_xticklabels(fields, rotation=90, fontsize=7)
    ax.set_yticklabels(rows)
    fig.colorbar(image, ax=ax, fraction=0.03, label="width")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def metric_bars(values: dict, path: str, label: str, errors: dict | None = None) -> str:
    """Horizontal bars of VALUES ({name: number}), with ERRORS ({name: half-width}) as error
    bars when given, labelled LABEL. Writes PATH and returns it."""
    names = list(values)
    fig = Figure(figsize=(6.5, 0.35 * len(names) + 1.4))
    ax = fig.subplots()
    xerr = [errors.get(n, 0) for n in names] if errors else None
    ax.barh(range(len(names)), [values[n] for n in names], xerr=xerr, color="#4477aa")
    ax.set(yticks=range(len(names)), xlabel=label)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    low = min(values.values())
    if label.lower().startswith("auc"):  # AUCs differ in the third decimal: zoom in
        ax.set_xlim(max(0.0, low - 0.02), min(1.0, max(values.values()) + 0.01))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
