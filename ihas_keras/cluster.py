"""The cluster stage: routing points of the search model -> K-Means -> kept dimensions."""

import dataclasses
import json

import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.cluster import KMeans
from tqdm import tqdm

from ihas_keras import defaults
from ihas_keras.layers.router import check_representation
from ihas_keras.layers.threshold import histogram_threshold
from ihas_keras.models.search import SearchModel


@dataclasses.dataclass
class ClusterPlan:
    """What the retrain stage needs: centroids, per-cluster kept dimensions and sizes.

    Attributes:
        fields: the search model's fields, in order.
        embedding_dim: the search model's full width of every field.
        centroids: [K, N*], in the space of REPRESENTATION.
        keep: [K, N*], the average deterministic mask of each cluster's examples.
        sizes: [K], the number of each cluster's examples.
        representation: what was clustered (`layers.router.REPRESENTATIONS`); plans written
            before it was recorded clustered the masked embeddings.
        threshold: one threshold of the gate probabilities for every example: the histogram
            threshold of the sample's probabilities pooled (`global_threshold`); None in plans
            written before it was recorded.
        threshold_agreement: the fraction of the sample's mask entries on which that threshold
            and each example's own histogram threshold agree.
    """

    fields: list[str]
    embedding_dim: int
    centroids: np.ndarray
    keep: np.ndarray
    sizes: np.ndarray
    representation: str = "masked_embedding"
    threshold: float | None = None
    threshold_agreement: float | None = None

    def serving_threshold(self) -> float | None:
        """The gate's threshold at serving: `threshold` where it agrees with the per-example
        thresholds on at least `defaults.GLOBAL_THRESHOLD_AGREEMENT` of the mask entries.

        Returns:
            The threshold, or None: each example's own histogram threshold.
        """
        if self.threshold_agreement is None or (
                self.threshold_agreement < defaults.GLOBAL_THRESHOLD_AGREEMENT):
            return None
        return self.threshold

    @property
    def num_clusters(self) -> int:
        """K, the number of clusters."""
        return len(self.centroids)

    def kept_dimensions(self) -> np.ndarray:
        """Which dimensions each cluster keeps: those its majority keeps (average mask >= 0.5).

        Returns:
            Booleans [K, N, embedding_dim]: cluster k keeps dimension j of field f.
        """
        kept = self.keep >= 0.5
        return kept.reshape(self.num_clusters, len(self.fields), self.embedding_dim)

    def widths(self) -> np.ndarray:
        """Per-cluster, per-field widths: the count of each field's kept dimensions.

        Returns:
            Widths [K, N].
        """
        return self.kept_dimensions().sum(-1)

    def save(self, path: str) -> None:
        """Writes the plan to PATH as JSON.

        Args:
            path: the file to write (any `tf.io.gfile` path).
        """
        data = {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(self).items()}
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(data, f)

    @classmethod
    def load(cls, path: str) -> "ClusterPlan":
        """Reads a plan that `save` wrote.

        Args:
            path: the JSON file (any `tf.io.gfile` path).

        Returns:
            The plan.
        """
        with tf.io.gfile.GFile(path) as f:
            data = json.load(f)
        return cls(
            data["fields"], int(data["embedding_dim"]), np.asarray(data["centroids"], "float32"),
            np.asarray(data["keep"], "float32"), np.asarray(data["sizes"], "int64"),
            str(data.get("representation", "masked_embedding")),
            data.get("threshold"), data.get("threshold_agreement"),
        )


def _points(model: SearchModel, dataset: tf.data.Dataset, representation: str):
    """Yields (points, masks) as numpy, batch by batch."""
    step = tf.function(lambda x: model.routing_points(x, representation))
    for x, *_ in dataset:
        points, mask = step(x)
        yield points.numpy(), mask.numpy()


def global_threshold(model: SearchModel, dataset: tf.data.Dataset,
                     rows: int = defaults.GLOBAL_THRESHOLD_ROWS) -> tuple[float, float]:
    """One threshold of the gate probabilities for all examples, and how it agrees.

    The histogram threshold (`layers.threshold.histogram_threshold`) of the gate probabilities
    of DATASET's first ROWS examples, pooled as one histogram; its agreement is the fraction of
    those examples' mask entries it decides as each example's own histogram threshold does.

    Args:
        model: the trained search model.
        dataset: (features, label) batches.
        rows: the examples read.

    Returns:
        (the threshold, the agreement).
    """
    gate = model.gate
    probabilities = tf.function(lambda x: ops.sigmoid(gate.logits(model.embedding(x))))
    parts, seen = [], 0
    for x, *_ in dataset:
        parts.append(probabilities(x).numpy())
        seen += len(parts[-1])
        if seen >= rows:
            break
    p = np.concatenate(parts)[:rows]
    pooled = histogram_threshold(p.reshape(1, -1), gate.bins, gate.smoothing)
    threshold = float(pooled.numpy()[0])
    own = histogram_threshold(p, gate.bins, gate.smoothing).numpy()[:, None]
    return threshold, float(np.mean((p > threshold) == (p > own)))


def uniform_sample(batches, size: int, seed: int) -> np.ndarray:
    """A uniform sample of SIZE rows (all if fewer) of a stream of row batches.

    Bottom-k sampling: each row draws a random key and the SIZE smallest keys are kept, in a
    buffer of at most 2 * SIZE rows, so memory does not grow with the stream.

    Args:
        batches: arrays [B_i, D] with the same D.
        size: the sample's rows.
        seed: the keys' random seed.

    Returns:
        The sampled rows [min(SIZE, rows), D].
    """
    rng = np.random.default_rng(seed)
    rows, keys, count = [], [], 0

    def shrink():
        all_rows, all_keys = np.concatenate(rows), np.concatenate(keys)
        keep = np.argpartition(all_keys, size - 1)[:size] if len(all_keys) > size else slice(None)
        return [all_rows[keep]], [all_keys[keep]]

    for batch in batches:
        rows.append(batch)
        keys.append(rng.random(len(batch)))
        count += len(batch)
        if count >= 2 * size:
            rows, keys = shrink()
            count = len(keys[0])
    if not rows:
        return np.zeros((0, 0), "float32")
    return shrink()[0][0]


def fit_clusters(model: SearchModel, dataset: tf.data.Dataset,
                 num_clusters: int = defaults.CLUSTERS, seed: int = 0,
                 progress: bool = True, representation: str = defaults.REPRESENTATION,
                 sample: int = defaults.CLUSTER_SAMPLE,
                 restarts: int = defaults.KMEANS_RESTARTS) -> ClusterPlan:
    """Clusters the routing points of a trained search model, in two streaming passes.

    The first pass draws a uniform sample of SAMPLE examples' points (REPRESENTATION: the gate
    probabilities, the masks or the masked embeddings) and fits scikit-learn's full-batch KMeans
    on it with RESTARTS initialisations (k-means++), keeping the best; the second assigns every
    example to its nearest centroid, to average the masks and count the examples per cluster.
    Memory does not grow with the data.

    Args:
        model: the trained search model.
        dataset: (features, label) batches.
        num_clusters: K.
        seed: the sample's and K-Means's random state.
        progress: show tqdm progress bars.
        representation: what is clustered, one of `layers.router.REPRESENTATIONS`.
        sample: the examples K-Means is fitted on.
        restarts: K-Means initialisations.

    Returns:
        The cluster plan.

    Raises:
        ValueError: REPRESENTATION is unknown, NUM_CLUSTERS < 1, or DATASET has fewer than
            NUM_CLUSTERS examples.
    """
    check_representation(representation, "fit_clusters")
    if num_clusters < 1:
        raise ValueError(f"fit_clusters: num_clusters must be at least 1, got {num_clusters}")
    points = uniform_sample(
        (p for p, _ in tqdm(_points(model, dataset, representation), desc="sampling",
                            unit=" batches", disable=not progress)), sample, seed)
    if len(points) < num_clusters:
        raise ValueError(f"fit_clusters: {len(points)} examples, fewer than the {num_clusters} "
                         "clusters asked for")
    kmeans = KMeans(num_clusters, n_init=restarts, random_state=seed).fit(points)

    keep_sum = np.zeros((num_clusters, model.gate.units))
    sizes = np.zeros(num_clusters, "int64")
    for batch, mask in tqdm(_points(model, dataset, representation), desc="assigning",
                            unit=" batches", disable=not progress):
        labels = kmeans.predict(batch)
        for k in range(num_clusters):
            keep_sum[k] += mask[labels == k].sum(0)
        sizes += np.bincount(labels, minlength=num_clusters)
    keep = keep_sum / np.maximum(sizes, 1)[:, None]
    threshold, agreement = global_threshold(model, dataset)
    return ClusterPlan(model.fields, model.embedding_dim,
                       kmeans.cluster_centers_.astype("float32"), keep.astype("float32"), sizes,
                       representation, threshold, agreement)
