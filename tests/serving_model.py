"""A small real serving model for the serving tests: generated Criteo rows read through a
5-field generic schema (TF Transform costs about 1 s per field), ingested, transformed, searched,
clustered (K=2), retrained and exported with `export_serving_model` as version 1 of a model base
path, as TF Serving expects it."""

import dataclasses
import os

import keras
import tensorflow as tf

import ihas_keras
from ihas_keras.data import get_format, read_table, synthesize
from ihas_keras.data.ingest import ingest, serialized_examples
from ihas_keras.data.transform import transform, transformed_dataset, vocabulary_sizes
from ihas_keras.export.saved_model import export_serving_model
from tests.planted import criteo5_schema

ROWS = 3000


@dataclasses.dataclass
class ServedModel:
    fmt: object  # the labeled format of the raw file
    schema: str  # its schema file (format "generic")
    raw_file: str
    base_path: str  # BASE/1 holds the SavedModel
    export_dir: str
    transform_dir: str
    model: object  # the RoutedModel in memory
    search: object  # the search model it was made from

    def raw_lines(self, n: int) -> list[str]:
        with open(self.raw_file) as f:
            return [next(f).rstrip("\n") for _ in range(n)]

    def raw_examples(self, n: int) -> list[bytes]:
        """The first N rows of the raw file as serialized tf.Examples without the label."""
        batch = next(iter(read_table([self.raw_file], self.fmt, batch_size=n)))
        batch = tf.nest.map_structure(lambda t: t.numpy(), batch)
        rows = batch["reason"] == 0
        return serialized_examples(batch, rows, self.fmt.unlabeled())


def build_served_model(root) -> ServedModel:
    root = str(root)
    schema = criteo5_schema(os.path.join(root, "criteo5.yaml"))
    fmt = get_format("generic", schema)
    raw_file = os.path.join(root, "criteo.txt")
    synthesize(raw_file, rows=ROWS, format="criteo", segments=2, seed=1)
    examples, transformed = os.path.join(root, "examples"), os.path.join(root, "transformed")
    ingest([raw_file], fmt, examples, seed=1)
    transform(examples, fmt, transformed)

    keras.utils.set_random_seed(0)
    train = transformed_dataset(transformed, "train", fmt, batch_size=256)
    val = transformed_dataset(transformed, "eval", fmt, batch_size=256)
    search = ihas_keras.build_model(vocabulary_sizes(transformed, fmt), embedding_dim=4, seed=0)
    ihas_keras.search(search, train, val, pretrain_epochs=1, epochs=1, gate_every=5, verbose=0)
    plan = ihas_keras.fit_clusters(search, train, num_clusters=2, progress=False)
    routed = ihas_keras.retrain(search, plan, train, val, epochs=1, batch_size=256, verbose=0)

    base_path = os.path.join(root, "models", "ihas")
    export_dir = export_serving_model(routed, transformed, fmt, os.path.join(base_path, "1"))
    return ServedModel(fmt, schema, raw_file, base_path, export_dir, transformed, routed, search)
