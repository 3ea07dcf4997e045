"""What K-Means should cluster: the adjusted Rand index of each representation's clusters
against the planted segments, on the test rows of an `ihas experiment` on generated data.

    ./ihas-env python benchmarks/cluster_representations.py --experiment OUT --data FILE \
        --format criteo --seeds 1,2,3 --clusters 2,3 --out benchmarks/results/NAME.json

It reads the search models the experiment kept (OUT/runs/ihas/seed-S.search.keras), clusters
the train split with `ihas_keras.fit_clusters` on each representation (the gate probabilities,
the deterministic masks, the masked embeddings E * m) and K, routes the test rows with the
`RoutedModel` graph that would serve them, and scores the routes against the planted segments.
The ceiling is the index of the segments the marker fields show (see `ihas data synth`).
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ihas_keras  # noqa: E402
from experiments.data import planted_truth, test_split  # noqa: E402
from ihas_keras import schedule  # noqa: E402
from ihas_keras.data import get_format  # noqa: E402
from ihas_keras.data.transform import transformed_dataset  # noqa: E402
from ihas_keras.layers.router import REPRESENTATIONS  # noqa: E402


def main() -> None:
    """Clusters every kept search on every representation and K; writes the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="the experiment's OUT folder")
    parser.add_argument("--data", required=True, help="the generated file it was run on")
    parser.add_argument("--format", required=True)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--clusters", default="2,3")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fmt = get_format(args.format)
    transformed = os.path.join(args.experiment, "prepared", "transformed")
    with open(os.path.join(args.experiment, "prepared", "READY")) as f:
        rows = json.load(f)["rows"]
    batch = schedule.batch_size(rows["train"])
    train = transformed_dataset(transformed, "train", fmt, batch)
    x, _ = test_split(os.path.join(args.experiment, "prepared"), fmt)  # in file order
    n = len(next(iter(x.values())))
    truth = planted_truth(args.data, fmt)
    ceiling = float(adjusted_rand_score(truth["segments"], truth["marked"]))
    results = []
    for seed in map(int, args.seeds.split(",")):
        search = ihas_keras.load_model(
            os.path.join(args.experiment, "runs", "ihas", f"seed-{seed}.search.keras"))
        for k in map(int, args.clusters.split(",")):
            for representation in REPRESENTATIONS:
                start = time.perf_counter()
                plan = ihas_keras.fit_clusters(search, train, k, seed, False, representation)
                routed = ihas_keras.RoutedModel.from_search(search, plan)
                routes = np.concatenate([
                    routed.route({f: v[i:i + 8192] for f, v in x.items()}).numpy()
                    for i in range(0, n, 8192)])
                ari = float(adjusted_rand_score(truth["segments"], routes))
                results.append({"seed": seed, "clusters": k, "representation": representation,
                                "ari": ari, "ari_over_ceiling": ari / ceiling,
                                "widths": plan.widths().sum(1).tolist(),
                                "seconds": time.perf_counter() - start})
                print(json.dumps(results[-1]), flush=True)
    report = {"experiment": args.experiment, "data": args.data, "marker_ari": ceiling,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": results,
              "date": time.strftime("%Y-%m-%d")}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
