"""What routing can gain on generated data: one model against one per segment.

    ./ihas-env python benchmarks/planted_ceiling.py --data DATA --prepared OUT/prepared \
        --format criteo --models logistic,dnn --out benchmarks/results/NAME.json

On a file written by `ihas data synth` (its truth beside it) and its prepared splits (the same TF
Transform ids the library's models see), fits each model kind three ways: one model for every
row; one model per planted segment, each row scored by its own segment's model (routing by the
truth, which no model has); and one model per segment as the row's markers show it (hard
routing by the markers, the best a clustering can do, since only the markers tell the segments
apart; files generated before the truth recorded it have none). Kinds: `logistic`,
scikit-learn's logistic regression on one-hot ids (C chosen on the eval split from 0.01, 0.1,
1), which has the planted model's form within a segment (its logit is additive in the field
values); `dnn`, the library's base model (every field at width 16, DNN 16-8) trained by the
library's rule (`fit_recommender`: early stop on the group's eval rows; batch by
`schedule.batch_size` of all training rows; seed 1). The gap between one model and routing by
the markers is what any routed model can gain on this data; the oracle AUC (the true
probabilities) is what no model can pass.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.reference_models import best_logistic, load, machine, write_report  # noqa: E402
from experiments.data import planted_truth  # noqa: E402
from ihas_keras import schedule  # noqa: E402
from ihas_keras.data import get_format  # noqa: E402
from ihas_keras.data.preprocess import RESERVED_IDS  # noqa: E402
from ihas_keras.models.recommender import Recommender  # noqa: E402
from ihas_keras.retraining import fit_recommender  # noqa: E402

SPLITS = ("train", "eval", "test")


def fit_logistic(x: dict, y: dict, rows: dict) -> tuple[np.ndarray, dict]:
    """Logistic regression on the ROWS of each split, C chosen on eval; (test scores, C)."""
    model, c = best_logistic({s: x[s][rows[s]] for s in SPLITS},
                             {s: y[s][rows[s]] for s in SPLITS})
    return model.predict_proba(x["test"][rows["test"]])[:, 1], {"C": c}


def fit_dnn(ids: dict, y: dict, rows: dict, fields: list[str], sizes: list[int],
            batch: int) -> tuple[np.ndarray, dict]:
    """The library's base model on the ROWS of each split, by the training rule."""
    def batches(split, shuffle=False):
        x = {f: ids[split][rows[split], i] for i, f in enumerate(fields)}
        data = tf.data.Dataset.from_tensor_slices((x, y[split][rows[split]].astype("float32")))
        return (data.shuffle(100_000, seed=1) if shuffle else data).batch(batch)

    keras.utils.set_random_seed(1)
    model = fit_recommender(Recommender(fields, sizes, [16] * len(fields)),
                            batches("train", True), batches("eval"), verbose=0)
    scores = model.predict(batches("test"), verbose=0).reshape(-1)
    return scores, {"epochs": len(model.history.history["val_auc"])}


def routed(fit, y: dict, groups: dict) -> dict:
    """FIT per group (each test row scored by its group's model): test AUC and what each fit
    reports."""
    scores, fits = np.zeros(len(y["test"])), []
    for g in np.unique(groups["train"]):
        rows = {s: groups[s] == g for s in SPLITS}
        scores[rows["test"]], info = fit(rows)
        fits.append(info)
    return {"auc": float(roc_auc_score(y["test"], scores)), "fits": fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the file `ihas data synth` wrote")
    parser.add_argument("--prepared", required=True, help="its `ihas data prepare` OUT")
    parser.add_argument("--format", required=True)
    parser.add_argument("--models", default="logistic,dnn", help="logistic, dnn or both")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fmt = get_format(args.format)
    start = time.perf_counter()
    transformed = os.path.join(args.prepared, "transformed")
    data = {s: load(transformed, s, fmt) for s in SPLITS}
    truth = {s: planted_truth(args.data, fmt, split=s) for s in SPLITS}
    if truth["test"] is None:
        raise SystemExit(f"{args.data}: no planted truth beside it (not from ihas data synth)")
    for s in SPLITS:
        if len(truth[s]["segments"]) != len(data[s][1]):
            raise SystemExit(f"split {s}: {len(data[s][1])} prepared rows, "
                             f"{len(truth[s]['segments'])} in the file; prepare it again")
    y = {s: data[s][1].reshape(-1) for s in SPLITS}
    ids = {s: data[s][0] for s in SPLITS}
    fits = {}
    if "logistic" in args.models.split(","):
        encoder = OneHotEncoder(handle_unknown="ignore").fit(ids["train"])
        x = {s: encoder.transform(ids[s]).tocsr() for s in SPLITS}
        fits["logistic"] = lambda rows: fit_logistic(x, y, rows)
    if "dnn" in args.models.split(","):
        output = tft.TFTransformOutput(transformed)
        sizes = [output.vocabulary_size_by_name(f) + RESERVED_IDS for f in fmt.feature_fields]
        batch = schedule.batch_size(len(y["train"]))
        fits["dnn"] = lambda rows: fit_dnn(ids, y, rows, fmt.feature_fields, sizes, batch)
    groupings = {"one_model": {s: np.zeros(len(y[s]), int) for s in SPLITS},
                 "per_segment": {s: truth[s]["segments"] for s in SPLITS}}
    if truth["test"]["marked"] is not None:
        groupings["per_marked_segment"] = {s: truth[s]["marked"] for s in SPLITS}
    report = {
        "data": args.data, "prepared": args.prepared, "format": fmt.name,
        "rows": {s: int(len(y[s])) for s in SPLITS},
        "oracle_auc": float(roc_auc_score(y["test"], truth["test"]["probability"])),
        **{kind: {name: routed(fit, y, groups) for name, groups in groupings.items()}
           for kind, fit in fits.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine(),
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
