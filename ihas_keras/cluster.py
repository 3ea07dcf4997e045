"""The cluster stage: deterministic masks -> masked embeddings -> mini-batch K-Means."""

import dataclasses
import json

import numpy as np
import tensorflow as tf
from sklearn.cluster import MiniBatchKMeans
from tqdm import tqdm

from ihas_keras import defaults
from ihas_keras.models.search import SearchModel


@dataclasses.dataclass
class ClusterPlan:
    """What the retrain stage needs: centroids, per-cluster mask averages and sizes.

    Attributes:
        fields: the search model's fields, in order.
        embedding_dim: the search model's full width of every field.
        centroids: [K, N*], in the space of masked embeddings E * m.
        keep: [K, N*], the average deterministic mask of each cluster's examples.
        sizes: [K], the number of each cluster's examples.
    """

    fields: list[str]
    embedding_dim: int
    centroids: np.ndarray
    keep: np.ndarray
    sizes: np.ndarray

    @property
    def num_clusters(self) -> int:
        """K, the number of clusters."""
        return len(self.centroids)

    def widths(self) -> np.ndarray:
        """Per-cluster, per-field widths: the dimensions kept by the majority (avg >= 0.5).

        Returns:
            Widths [K, N], each field's count of such dimensions in each cluster.
        """
        kept = self.keep >= 0.5
        return kept.reshape(self.num_clusters, len(self.fields), self.embedding_dim).sum(-1)

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
        )


def _masked(model: SearchModel, dataset):
    """Yields (masked embeddings, masks) as numpy, batch by batch."""
    step = tf.function(model.masked_embeddings)
    for x, *_ in dataset:
        masked, mask = step(x)
        yield masked.numpy(), mask.numpy()


def fit_clusters(model: SearchModel, dataset: tf.data.Dataset,
                 num_clusters: int = defaults.CLUSTERS, seed: int = 0,
                 progress: bool = True) -> ClusterPlan:
    """Clusters the masked embeddings of a trained search model, in two streaming passes.

    The first pass over DATASET runs `partial_fit` of scikit-learn's MiniBatchKMeans on the
    masked embeddings; the second finds each example's cluster, to average the masks and count
    the examples per cluster. Memory does not grow with the data.

    Args:
        model: the trained search model.
        dataset: (features, label) batches.
        num_clusters: K.
        seed: the K-Means random state.
        progress: show tqdm progress bars.

    Returns:
        The cluster plan.

    Raises:
        ValueError: DATASET has fewer than max(NUM_CLUSTERS, 256) examples.
    """
    kmeans = MiniBatchKMeans(n_clusters=num_clusters, random_state=seed, n_init=3)
    pending = []  # partial_fit's first call needs at least num_clusters points
    for masked, _ in tqdm(_masked(model, dataset), desc="k-means", unit=" batches",
                          disable=not progress):
        pending.append(masked)
        if sum(len(m) for m in pending) >= max(num_clusters, 256):
            kmeans.partial_fit(np.concatenate(pending))
            pending = []
    if pending and hasattr(kmeans, "cluster_centers_"):
        kmeans.partial_fit(np.concatenate(pending))
    if not hasattr(kmeans, "cluster_centers_"):
        raise ValueError(f"fit_clusters: need at least {max(num_clusters, 256)} examples")

    keep_sum = np.zeros((num_clusters, model.gate.units))
    sizes = np.zeros(num_clusters, "int64")
    for masked, mask in tqdm(_masked(model, dataset), desc="assigning", unit=" batches",
                             disable=not progress):
        labels = kmeans.predict(masked)
        np.add.at(keep_sum, labels, mask)
        sizes += np.bincount(labels, minlength=num_clusters)
    keep = keep_sum / np.maximum(sizes, 1)[:, None]
    return ClusterPlan(model.fields, model.embedding_dim,
                       kmeans.cluster_centers_.astype("float32"), keep.astype("float32"), sizes)
