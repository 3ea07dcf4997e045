"""Generated CTR data in the real raw formats, with planted heterogeneity.

K latent segments. Each segment shows in its own values of two marker fields; in each segment a
different subset of fields drives the click probability, with a different amount of structure
(segment 0: few fields with strong effects; later segments: more fields with weaker effects). All
other fields are noise. Values follow Zipf-like frequencies, Criteo's numerics are heavy-tailed,
some fields have missing values, and the label rate is 15-30 % in every segment.

Rows are written chunk by chunk (memory does not grow with the row count). Beside the data, a
sidecar `PATH.truth.tsv` gives each row's segment, true click probability and the segment its
markers show (their best guess, which bounds how well any clustering can find the segments), and
`PATH.meta.json` the oracle AUC (the AUC of the true probabilities), label rate and segment sizes.
"""

import dataclasses
import json

import numpy as np

from ihas_keras.data.formats import TableFormat, get_format

MARKERS = {"criteo": ("C1", "C2"), "avazu": ("C1", "site_category")}
_AUC_BINS = 1 << 17


@dataclasses.dataclass
class Field:
    """One generated field.

    Attributes:
        name: the field's name.
        vocab: distinct values.
        cdf: Zipf-like cumulative frequencies of the value ids.
        missing: fraction of rows where the field is empty.
        tokens: value id -> the string written to the file.
    """

    name: str
    vocab: int
    cdf: np.ndarray
    missing: float
    tokens: np.ndarray


@dataclasses.dataclass
class Segment:
    """One latent segment.

    Attributes:
        weight: share of rows.
        signal: field name -> effect of each value id on the logit.
        bias: the logit's bias, which gives the segment its target label rate.
    """

    weight: float
    signal: dict
    bias: float = 0.0


def _zipf_cdf(vocab: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, vocab + 1) ** exponent
    return np.cumsum(p) / p.sum()


def _tokens(fmt_name: str, name: str, vocab: int, salt: int) -> np.ndarray:
    ids = np.arange(vocab, dtype=np.uint64)
    if fmt_name == "criteo" and name.startswith("I"):
        # Heavy-tailed counts; I2 also takes small negatives, as in Criteo.
        offset = 3 if name == "I2" else 0
        return np.array([str(int(v) - offset) for v in ids], dtype=object)
    if fmt_name == "avazu" and not name.endswith(("_id", "_domain", "_category", "_ip", "_model")):
        return np.array([str(int(v) + (salt % 7) * 1000) for v in ids], dtype=object)
    salt = np.uint64((salt + 1) * 0x85EBCA6B & 0xFFFFFFFF)
    hashed = (ids * np.uint64(2654435761) + salt) & np.uint64(0xFFFFFFFF)
    return np.array([f"{int(h):08x}" for h in hashed], dtype=object)


class Generator:
    """Draws rows for one format; all randomness comes from `seed`.

    Args:
        fmt: the format, criteo or avazu (those of `MARKERS`).
        segments: the number of latent segments K.
        seed: the seed of every random draw.

    Attributes:
        fmt: the format.
        rng: the random generator.
        fields: field name -> `Field`, for the generated fields.
        segments: the `Segment`s.

    Raises:
        ValueError: FMT has no synthetic data, or SEGMENTS is below 1.
    """

    def __init__(self, fmt: TableFormat, segments: int, seed: int) -> None:
        if fmt.name not in MARKERS:
            raise ValueError(f"synthetic data exists for criteo and avazu, not {fmt.name!r}")
        if segments < 1:
            raise ValueError("segments must be at least 1")
        self.fmt = fmt
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        names = [f for f in fmt.feature_fields if f not in fmt.derived] + (
            ["hour_of_day", "day"] if fmt.hour else []
        )
        self.fields = {}
        for i, name in enumerate(names):
            if name == "hour_of_day":
                vocab, exponent = 24, 0.3
            elif name == "day":
                vocab, exponent = 10, 0.1
            elif name.startswith("I") and fmt.name == "criteo":
                vocab, exponent = int(rng.integers(50, 3000)), rng.uniform(1.1, 1.6)
            else:
                vocab = int(np.exp(rng.uniform(np.log(4), np.log(20000))))
                exponent = rng.uniform(1.0, 1.5)
            missing = rng.uniform(0.02, 0.3) if rng.random() < 0.3 else 0.0
            if name in MARKERS[fmt.name]:
                vocab = max(vocab, 8 * segments)
            if name in (*MARKERS[fmt.name], "hour_of_day", "day"):
                missing = 0.0
            self.fields[name] = Field(
                name, vocab, _zipf_cdf(vocab, exponent), missing, _tokens(fmt.name, name, vocab, i)
            )
        candidates = [n for n in names if n not in MARKERS[fmt.name] and n != "day"]
        shares = 0.5 / segments + 0.5 * rng.dirichlet(np.full(segments, 4.0))
        self.segments = []
        for s in range(segments):
            n_signal = min(len(candidates), 3 + 3 * s)
            strength = 1.6 / np.sqrt(n_signal)  # fewer fields, each with a stronger effect
            chosen = rng.choice(candidates, size=n_signal, replace=False)
            signal = {
                str(f): rng.normal(0.0, strength, size=self.fields[f].vocab) for f in chosen
            }
            self.segments.append(Segment(float(shares[s]), signal))
        for s, segment in enumerate(self.segments):
            target = 0.15 + 0.15 * (s / max(1, segments - 1))
            segment.bias = self._calibrate(s, target)

    def _values(self, name: str, n: int) -> np.ndarray:
        return np.searchsorted(self.fields[name].cdf, self.rng.random(n))

    def _logit(self, segment: int, ids: dict, present: dict) -> np.ndarray:
        seg = self.segments[segment]
        n = len(next(iter(ids.values())))
        logit = np.full(n, seg.bias)
        for name, effect in seg.signal.items():
            logit += np.where(present[name], effect[ids[name]], 0.0)
        return logit

    def _calibrate(self, segment: int, target: float) -> float:
        """The bias that gives this segment the target label rate."""
        n = 20000
        ids = {f: self._values(f, n) for f in self.segments[segment].signal}
        present = {f: self.rng.random(n) >= self.fields[f].missing for f in ids}
        base = self._logit(segment, ids, present) - self.segments[segment].bias
        lo, hi = -10.0, 10.0
        for _ in range(50):
            mid = (lo + hi) / 2
            if (1 / (1 + np.exp(-(base + mid)))).mean() < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    def chunk(self, n: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """Draws n rows.

        Args:
            n: how many rows to draw.

        Returns:
            (the file's columns in order, each an array of n tokens; segment ids [n]; true
            probabilities [n]; labels [n]; each row's segment as its markers show it [n]).
        """
        rng = self.rng
        weights = np.array([s.weight for s in self.segments])
        segment = rng.choice(len(self.segments), size=n, p=weights)
        ids, present = {}, {}
        for name, field in self.fields.items():
            ids[name] = self._values(name, n)
            present[name] = rng.random(n) >= field.missing
        k = len(self.segments)
        for name in MARKERS[self.fmt.name]:
            # A marker's values are split into K bands; a row shows its segment's band 90 % of
            # the time (Zipf-like within the band).
            band = self.fields[name].vocab // k
            within = np.minimum(ids[name], band - 1)
            honest = rng.random(n) < 0.9
            shown = np.where(honest, segment, rng.integers(0, k, size=n))
            ids[name] = shown * band + within
        # The best guess from the markers alone is the first marker's band: where the two agree
        # it is theirs, and where they disagree either is as likely to be the honest one.
        first = MARKERS[self.fmt.name][0]
        marked = ids[first] // (self.fields[first].vocab // k)
        prob = np.empty(n)
        for s in range(k):
            rows = segment == s
            sub_ids = {f: v[rows] for f, v in ids.items()}
            sub_present = {f: v[rows] for f, v in present.items()}
            prob[rows] = 1 / (1 + np.exp(-self._logit(s, sub_ids, sub_present)))
        label = (rng.random(n) < prob).astype(np.int64)
        columns = {}
        for name, field in self.fields.items():
            columns[name] = np.where(present[name], field.tokens[ids[name]], "")
        if self.fmt.hour:  # YYMMDDHH over 2014-10-21 .. 2014-10-30, as in Avazu
            columns.pop("day"), columns.pop("hour_of_day")
            columns[self.fmt.hour] = np.char.add(
                np.char.add("1410", np.char.zfill((21 + ids["day"]).astype(str), 2)),
                np.char.zfill(ids["hour_of_day"].astype(str), 2),
            ).astype(object)
        return self._layout(columns, label, n), segment, prob, label, marked

    def _layout(self, columns: dict, label: np.ndarray, n: int) -> list[np.ndarray]:
        """The file's columns, in order."""
        fmt = self.fmt
        if fmt.dropped:
            start = int(self.rng.integers(10**18, 9 * 10**18))
            for name in fmt.dropped:
                columns[name] = np.array([str(start + i) for i in range(n)], dtype=object)
        columns[fmt.label] = label.astype(str).astype(object)
        return [columns[name] for name in fmt.columns]


@dataclasses.dataclass
class SynthReport:
    """What `synthesize` wrote, as `PATH.meta.json` holds it.

    Attributes:
        path: the data file.
        rows: rows written.
        format: the format's name.
        segments: the number of latent segments.
        seed: the generator's seed.
        label_rate: the fraction of rows labeled 1.
        oracle_auc: the AUC of the true probabilities.
        segment_sizes: rows per segment.
        signal_fields: per segment, the sorted names of the fields that drive its click
            probability.
    """

    path: str
    rows: int
    format: str
    segments: int
    seed: int
    label_rate: float
    oracle_auc: float
    segment_sizes: list
    signal_fields: list

    def summary(self) -> str:
        """The report as one line of text."""
        return (
            f"wrote {self.rows} {self.format} rows to {self.path} ({self.segments} segments, "
            f"sizes {self.segment_sizes}); label rate {self.label_rate:.3f}; "
            f"oracle AUC {self.oracle_auc:.4f}; truth in {self.path}.truth.tsv"
        )


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from per-bin counts of positives and negatives (ties within a bin count one half).

    Args:
        pos: positives per bin, bins in increasing score order.
        neg: negatives per bin, over the same bins.

    Returns:
        The AUC.
    """
    neg_below = np.cumsum(neg) - neg
    wins = (pos * neg_below).sum() + 0.5 * (pos * neg).sum()
    return float(wins / (pos.sum() * neg.sum()))


def synthesize(
    path: str,
    rows: int,
    format: str = "criteo",
    segments: int = 3,
    seed: int = 0,
    chunk_rows: int = 100_000,
    progress: bool = False,
) -> SynthReport:
    """Writes ROWS generated rows to PATH, plus the truth sidecar and metadata.

    Args:
        path: the data file to write; `PATH.truth.tsv` and `PATH.meta.json` are written beside it.
        rows: how many rows to write.
        format: "criteo" or "avazu".
        segments: the number of latent segments.
        seed: the seed of every random draw.
        chunk_rows: rows generated and written at a time.
        progress: show a progress bar.

    Returns:
        The report, as written to `PATH.meta.json`.

    Raises:
        ValueError: the format is unknown or has no synthetic data, or SEGMENTS is below 1.
    """
    from tqdm import tqdm

    gen = Generator(get_format(format), segments, seed)  # Generator rejects other formats
    fmt = gen.fmt
    pos = np.zeros(_AUC_BINS)
    neg = np.zeros(_AUC_BINS)
    sizes = np.zeros(segments, dtype=np.int64)
    clicks = 0
    with (
        open(path, "w") as data,
        open(path + ".truth.tsv", "w") as truth,
        tqdm(total=rows, unit=" rows", unit_scale=True, disable=not progress, desc="synth") as bar,
    ):
        if fmt.header:
            data.write(fmt.delimiter.join(fmt.columns) + "\n")
        truth.write("segment\tprobability\tmarker_segment\n")
        done = 0
        while done < rows:
            n = min(chunk_rows, rows - done)
            columns, segment, prob, label, marked = gen.chunk(n)
            data.write("\n".join(map(fmt.delimiter.join, zip(*columns, strict=True))) + "\n")
            truth.write("".join(f"{s}\t{p:.6f}\t{m}\n"
                                for s, p, m in zip(segment, prob, marked, strict=True)))
            bins = np.minimum((prob * _AUC_BINS).astype(np.int64), _AUC_BINS - 1)
            pos += np.bincount(bins, weights=label, minlength=_AUC_BINS)
            neg += np.bincount(bins, weights=1 - label, minlength=_AUC_BINS)
            sizes += np.bincount(segment, minlength=segments)
            clicks += int(label.sum())
            done += n
            bar.update(n)
    report = SynthReport(
        path=path,
        rows=rows,
        format=format,
        segments=segments,
        seed=seed,
        label_rate=clicks / rows,
        oracle_auc=histogram_auc(pos, neg),
        segment_sizes=sizes.tolist(),
        signal_fields=[sorted(s.signal) for s in gen.segments],
    )
    with open(path + ".meta.json", "w") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)
    return report
