"""The serving export: a trained model behind the TF Transform graph, as the SavedModel TF
Serving loads (signatures, warmup requests), and scoring such an export on raw examples.

    from ihas_keras.export import export_serving_model
    export_serving_model(routed, "/tmp/prepared/transformed", fmt, "/tmp/models/ihas/1")
"""

from ihas_keras.export.saved_model import export_serving_model, raw_input_columns
from ihas_keras.export.scoring import evaluate_export, load_signature
from ihas_keras.export.signatures import WARMUP_FILE

__all__ = ["WARMUP_FILE", "evaluate_export", "export_serving_model", "load_signature",
           "raw_input_columns"]
