"""AutoField (Wang et al., WWW 2022): learned keep/drop choices per field, then retraining."""

import keras
import numpy as np
from keras import ops

from ihas_keras import defaults
from ihas_keras.models.selection import FieldSelectionModel


@keras.saving.register_keras_serializable(package="ihas")
class AutoField(FieldSelectionModel):
    """Architecture parameters alpha [N, 2] (keep, drop logits; equal at the start): while
    selecting, each example's field weight is the keep component of a Gumbel-softmax sample of
    softmax(alpha) at `temperature` in training, and the keep probability outside training.

    After `ihas_keras.search`, `retrain_widths()` gives the widths of the model to retrain: a field
    is dropped (width 0) where its keep probability is below `threshold` (drop is the more likely
    choice), and kept at full width otherwise; the most likely field is always kept.
    """

    def __init__(self, fields, vocab_sizes, embedding_dim=defaults.EMBEDDING_DIM,
                 backbone=defaults.BACKBONE, hidden_units=defaults.HIDDEN_UNITS,
                 cross_layers=defaults.CROSS_LAYERS, temperature=1.0, threshold=0.5,
                 seed=None, **kwargs):
        super().__init__(fields, vocab_sizes, embedding_dim, backbone, hidden_units,
                         cross_layers, **kwargs)
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.alpha = self.add_weight(name="alpha", shape=(len(self.fields), 2),
                                     initializer="zeros")
        self._finish_init()

    @property
    def architecture_variables(self) -> list:
        return [self.alpha]

    def keep_probability(self) -> np.ndarray:
        """[N] probability of keeping each field."""
        return np.asarray(ops.softmax(self.alpha, axis=-1)[:, 0])

    def retrain_widths(self) -> list:
        """[N] widths for the retrained model: embedding_dim where kept, 0 where dropped."""
        keep = self.keep_probability()
        kept = keep >= self.threshold
        kept[np.argmax(keep)] = True
        return [self.embedding_dim if k else 0 for k in kept]

    def field_weights(self, embedded, training=False):
        batch = ops.shape(embedded)[0]
        if not training:
            keep = ops.softmax(self.alpha, axis=-1)[:, 0]
            return ops.broadcast_to(keep, (batch, len(self.fields)))
        u = keras.random.uniform((batch, len(self.fields), 2), 1e-6, 1 - 1e-6,
                                 seed=self.seed_generator)
        gumbel = -ops.log(-ops.log(u))
        return ops.softmax((self.alpha + gumbel) / self.temperature, axis=-1)[..., 0]

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature,
                "threshold": self.threshold, "seed": self.seed}
