"""AutoField (Wang et al., WWW 2022): learned keep/drop choices per field, then retraining."""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
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

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size.
        embedding_dim: every field's width.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers.
        temperature: of the Gumbel-softmax sample.
        threshold: the keep probability below which `retrain_widths` drops a field.
        seed: the Gumbel noise's seed.
        **kwargs: `FieldSelectionModel` arguments (such as `selecting`) and `keras.Model` ones
            (such as `name`).

    Raises:
        ValueError: FIELDS and VOCAB_SIZES differ in length, or the backbone kind is unknown.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int],
                 embedding_dim: int = defaults.EMBEDDING_DIM, backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, temperature: float = 1.0,
                 threshold: float = 0.5, seed: int | None = None, **kwargs) -> None:
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
        """The keep/drop logits alpha."""
        return [self.alpha]

    def keep_probability(self) -> np.ndarray:
        """[N] probability of keeping each field."""
        return np.asarray(ops.softmax(self.alpha, axis=-1)[:, 0])

    def retrain_widths(self) -> list[int]:
        """[N] widths for the retrained model: embedding_dim where kept, 0 where dropped."""
        keep = self.keep_probability()
        kept = keep >= self.threshold
        kept[np.argmax(keep)] = True
        return [self.embedding_dim if k else 0 for k in kept]

    def field_weights(self, embedded: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Keep weights [B, N]: Gumbel-softmax samples in training, else keep probabilities."""
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
