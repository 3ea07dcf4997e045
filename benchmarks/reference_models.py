"""References the library did not tune: a plain Keras DNN and logistic regression, on a prepared
split (`ihas data prepare` OUT, or an experiment's OUT/prepared), per seed.

    ./ihas-env python benchmarks/reference_models.py --prepared OUT/prepared --format criteo \
        --seeds 1,2,3 --out benchmarks/results/reference-NAME.json

The DNN has the base model's shape, written with Keras's own layers only (one Embedding of width
16 per field, concatenated, Dense 16 and 8 with ReLU, a sigmoid unit), Adam(1e-3), batch 2048,
trained until validation AUC has not improved for 3 epochs (best weights restored), at most 100
epochs. Logistic regression: scikit-learn's, on one-hot ids, fitted on train, C chosen on the
eval split from (0.01, 0.1, 1). Both are scored on the test split's ids (the same TF Transform
ids the library's models see), so the comparison with `ihas experiment`'s base model is on the
same rows.
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow_transform as tft
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from ihas_keras.data import get_format
from ihas_keras.data.preprocess import RESERVED_IDS
from ihas_keras.data.transform import transformed_dataset


def load(transformed: str, split: str, fmt) -> tuple[np.ndarray, np.ndarray]:
    """The split's ids [n, fields] and labels [n]."""
    parts, labels = [], []
    for x, y in transformed_dataset(transformed, split, fmt, 8192):
        parts.append(np.stack([x[f].numpy() for f in fmt.feature_fields], axis=1))
        labels.append(y.numpy())
    return np.concatenate(parts), np.concatenate(labels)


def dnn(sizes: list[int], width: int = 16) -> keras.Model:
    inputs = keras.Input((len(sizes),), dtype="int64")
    embedded = [keras.layers.Flatten()(keras.layers.Embedding(size, width)(inputs[:, i:i + 1]))
                for i, size in enumerate(sizes)]
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()(embedded))
    hidden = keras.layers.Dense(8, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))


def fit_dnn(data: dict, sizes: list[int], seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    model = dnn(sizes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    stop = keras.callbacks.EarlyStopping("val_auc", patience=3, mode="max",
                                         restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(*data["train"], batch_size=2048, epochs=100, verbose=0,
                        validation_data=data["eval"], callbacks=[stop])
    p = model.predict(data["test"][0], batch_size=8192, verbose=0)[:, 0]
    return {"auc": float(roc_auc_score(data["test"][1], p)),
            "epochs": len(history.history["loss"]),
            "best_epoch": int(np.argmax(history.history["val_auc"])) + 1,
            "seconds": round(time.perf_counter() - start, 1)}


def best_logistic(x: dict, y: dict) -> tuple[LogisticRegression, float]:
    """Logistic regression fitted on X["train"], C chosen by AUC on X["eval"] from (0.01, 0.1,
    1); (the model, its C)."""
    best = None
    for c in (0.01, 0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        val = roc_auc_score(y["eval"], model.predict_proba(x["eval"])[:, 1])
        if best is None or val > best[0]:
            best = (val, c, model)
    _, c, model = best
    return model, c


def fit_logistic(data: dict) -> dict:
    encoder = OneHotEncoder(handle_unknown="ignore").fit(data["train"][0])
    x = {split: encoder.transform(data[split][0]) for split in data}
    model, c = best_logistic(x, {split: data[split][1] for split in data})
    return {"auc": float(roc_auc_score(data["test"][1], model.predict_proba(x["test"])[:, 1])),
            "C": c}


def machine() -> dict:
    """The machine and date a result was measured on."""
    return {"arch": platform.machine(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}


def write_report(report: dict, out: str) -> None:
    """Writes REPORT as JSON to OUT (its folder made) and prints it."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", required=True, help="OUT of `ihas data prepare`")
    parser.add_argument("--format", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fmt = get_format(args.format, args.schema)
    transformed = os.path.join(args.prepared, "transformed")
    output = tft.TFTransformOutput(transformed)
    sizes = [output.vocabulary_size_by_name(f) + RESERVED_IDS for f in fmt.feature_fields]
    data = {split: load(transformed, split, fmt) for split in ("train", "eval", "test")}
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [{"seed": s, **fit_dnn(data, sizes, s)} for s in seeds]
    aucs = [r["auc"] for r in runs]
    report = {
        "prepared": args.prepared, "format": fmt.name,
        "rows": {split: int(len(v[1])) for split, v in data.items()},
        "dnn": {"runs": runs, "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs))},
        "logistic_regression": fit_logistic(data),
        "machine": machine(),
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
