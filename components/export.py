"""The serving export: a Keras model behind the TF Transform graph, as a TF SavedModel.

`serving_default` takes serialized raw tf.Examples (input "examples", the TFX convention), parses
them with the format's raw feature spec (the label left out), applies the transform graph and the
model, and returns "probability" [B] (and "cluster" [B] for a routed model). Standard TF ops only.
"""

import tensorflow as tf
import tensorflow_transform as tft

from ihas_keras.data.formats import TableFormat
from ihas_keras.data.preprocess import raw_feature_spec


class ServingModule(tf.Module):
    """Tracks the model and the TFT layer (its vocabulary tables and assets) for saving."""

    def __init__(self, model, transform_graph_dir: str, fmt: TableFormat):
        super().__init__()
        self.model = model
        self.tft_layer = tft.TFTransformOutput(transform_graph_dir).transform_features_layer()
        self.raw_spec = {k: v for k, v in raw_feature_spec(fmt).items() if k != fmt.label}

    def score(self, raw_features: dict) -> dict:
        """Raw feature tensors -> the model's outputs, always a dict with "probability"."""
        transformed = self.tft_layer(raw_features)
        outputs = self.model({f: transformed[f] for f in self.model.fields})
        return outputs if isinstance(outputs, dict) else {"probability": outputs}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        return self.score(tf.io.parse_example(examples, self.raw_spec))


def export_serving_model(model, transform_graph_dir: str, fmt: TableFormat, export_dir: str):
    """Saves MODEL (a `RoutedModel` or `Recommender`) behind TRANSFORM_GRAPH_DIR's transform
    graph to EXPORT_DIR, with the `serving_default` signature described above."""
    module = ServingModule(model, transform_graph_dir, fmt)
    tf.saved_model.save(module, export_dir,
                        signatures={"serving_default": module.serve_examples})
    return export_dir
