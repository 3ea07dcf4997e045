"""PNG figures: gate-probability histograms, the per-cluster, per-field widths heatmap, bars.

Drawn on `matplotlib.figure.Figure` objects, without pyplot: no global backend is chosen and
nothing is left open.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

GATE_BINS = 50


def gate_histogram(probabilities: ArrayLike, thresholds: ArrayLike | None = None) -> dict:
    """What a histogram panel draws, small to store.

    Args:
        probabilities: gate probabilities, any shape.
        thresholds: per-example thresholds, or None.

    Returns:
        {"counts": GATE_BINS bins over [0, 1], "median_threshold": float or None}.
    """
    counts, _ = np.histogram(np.ravel(probabilities), bins=GATE_BINS, range=(0, 1))
    return {"counts": counts.tolist(),
            "median_threshold": None if thresholds is None else float(np.median(thresholds))}


def gate_histograms(probabilities: Mapping[str, ArrayLike], path: str,
                    thresholds: Mapping[str, ArrayLike] | None = None) -> str:
    """One histogram panel per entry of PROBABILITIES, written to PATH.

    Args:
        probabilities: {title: gate probabilities, any shape}, for example
            {"with polarization": p1, "without": p2}.
        path: the PNG file to write.
        thresholds: {title: per-example thresholds}, drawn as their median.

    Returns:
        PATH.
    """
    thresholds = thresholds or {}
    return gate_histogram_panels(
        {t: gate_histogram(p, thresholds.get(t)) for t, p in probabilities.items()}, path)


def gate_histogram_panels(histograms: Mapping[str, dict], path: str) -> str:
    """One panel per entry of HISTOGRAMS, written to PATH.

    Args:
        histograms: {title: gate_histogram(...)}.
        path: the PNG file to write.

    Returns:
        PATH.
    """
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


def widths_heatmap(widths: ArrayLike, fields: Sequence[str], path: str,
                   sizes: Sequence[int] | None = None) -> str:
    """Heatmap of WIDTHS (clusters x fields), each cell annotated, written to PATH.

    Args:
        widths: [K, N] per-cluster, per-field widths.
        fields: the N field names, the columns' labels.
        path: the PNG file to write.
        sizes: [K] cluster sizes, to label the rows with; or None.

    Returns:
        PATH.
    """
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


def metric_bars(values: Mapping[str, float], path: str, label: str,
                errors: Mapping[str, float] | None = None) -> str:
    """Horizontal bars of VALUES, labelled LABEL, written to PATH.

    A LABEL starting with "auc" (any case) zooms the axis in around the values.

    Args:
        values: {name: number}.
        path: the PNG file to write.
        label: the value axis's label.
        errors: {name: half-width}, drawn as error bars when given.

    Returns:
        PATH.
    """
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
