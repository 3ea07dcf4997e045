"""Common ground of the field-selection baselines (AdaFS, AutoField): per-example field weights
over full-width embeddings, trained bi-level with the same schedule as the iHAS search."""

import keras
import tensorflow as tf
from keras import ops

from ihas_keras.layers.backbone import Backbone
from ihas_keras.models.bilevel import ArchSchedule
from ihas_keras.models.recommender import dummy_batch, field_embeddings


class FieldSelectionModel(keras.Model):
    """{field: int64 ids [B]} -> click probability [B], each field's embedding (and first-order
    term) multiplied by a per-example weight from `field_weights` (subclasses).

    It speaks the search model's schedule interface, so `ihas_keras.search` drives it: gate mode
    "open" (all weights 1: pretraining), "stochastic" (selecting); after
    `use_validation(val, gate_every)`, selecting mode adds one architecture step (the
    `selector_variables` only, with `arch_optimizer`, on a validation batch's BCE) after every
    `gate_every` base steps (every other trainable variable, with `optimizer`).
    """

    def __init__(self, fields, vocab_sizes, embedding_dim=16, backbone="dnn",
                 hidden_units=(16, 8), cross_layers=2, selecting=False, **kwargs):
        super().__init__(**kwargs)
        self.fields = list(fields)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.embedding_dim = int(embedding_dim)
        self.backbone_kind = backbone
        self.hidden_units = [int(u) for u in hidden_units]
        self.cross_layers = int(cross_layers)
        widths = [self.embedding_dim] * len(self.fields)
        self.embedding, self.linear = field_embeddings(self.fields, self.vocab_sizes, widths,
                                                       backbone)
        self.backbone = Backbone(backbone, widths, self.hidden_units, self.cross_layers,
                                 name="backbone")
        self.selecting = bool(selecting)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.auc = keras.metrics.AUC(name="auc")
        self.arch_steps = keras.metrics.Sum(name="arch_steps")
        self.base_steps = keras.Variable(0, dtype="int64", trainable=False, name="base_steps")
        self._schedule = ArchSchedule()

    def _finish_init(self):
        """Builds every weight (the selector's too); subclasses call it once it exists."""
        batch = dummy_batch(self.fields)
        self.field_weights(self.embedding(batch))
        self(batch)

    def field_weights(self, embedded, training=False):
        """[B, N] weight of each field for each example (while `selecting`)."""
        raise NotImplementedError

    @property
    def selector_variables(self) -> list:
        raise NotImplementedError

    def call(self, inputs, training=False):
        embedded = self.embedding(inputs)
        linear = self.linear(inputs) if self.linear is not None else None
        if self.selecting:
            weights = self.field_weights(embedded, training=training)
            embedded = embedded * ops.repeat(weights, self.embedding_dim, axis=1)
            linear = None if linear is None else linear * weights
        return ops.sigmoid(self.backbone((embedded, linear))[:, 0])

    # The schedule interface of `ihas_keras.search` ----------------------------------------------

    def set_gate_mode(self, mode: str) -> None:
        """"open": no selection (pretraining); "stochastic" or "deterministic": selecting."""
        if mode not in ("open", "stochastic", "deterministic"):
            raise ValueError(f"unknown gate mode {mode!r}")
        self.selecting = mode != "open"
        self.train_function = self.test_function = self.predict_function = None

    def use_validation(self, validation, gate_every: int = 100) -> None:
        self._schedule = ArchSchedule(validation, gate_every)
        self.train_function = None

    # Training -------------------------------------------------------------------------------------

    def compile(self, optimizer=None, arch_optimizer=None, **kwargs):
        """Adam(1e-3, weight decay 1e-6) for the model, Adam(1e-3) for the selector."""
        super().compile(optimizer=optimizer or keras.optimizers.Adam(1e-3, weight_decay=1e-6),
                        **kwargs)
        self.arch_optimizer = arch_optimizer or keras.optimizers.Adam(1e-3)
        self.optimizer.build(self.base_variables)
        self.arch_optimizer.build(self.selector_variables)

    def get_compile_config(self):
        return None  # two optimizers: call `compile()` again after loading

    @property
    def base_variables(self) -> list:
        selector = {id(v) for v in self.selector_variables}
        return [v for v in self.trainable_variables if id(v) not in selector]

    @property
    def metrics(self):
        return [self.loss_tracker, self.auc, self.arch_steps]

    @staticmethod
    def _bce(y, prob):
        y = ops.cast(ops.reshape(y, (-1,)), "float32")
        return ops.mean(keras.losses.binary_crossentropy(y[:, None], prob[:, None])), y

    def _step(self, x, y, variables, optimizer):
        with tf.GradientTape() as tape:
            prob = self(x, training=True)
            loss, y = self._bce(y, prob)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, y, prob

    def train_step(self, data):
        x, y, *_ = data
        loss, y, prob = self._step(x, y, self.base_variables, self.optimizer)
        self.loss_tracker.update_state(loss, sample_weight=ops.cast(ops.shape(y)[0], "float32"))
        self.auc.update_state(y, prob)
        self._schedule.after_base_step(loss, self.base_steps, self.selecting, self._arch_step)
        return {m.name: m.result() for m in self.metrics}

    def _arch_step(self, x, y):
        self.arch_steps.update_state(1.0)
        return self._step(x, y, self.selector_variables, self.arch_optimizer)[0]

    def test_step(self, data):
        x, y, *_ = data
        prob = self(x, training=False)
        loss, y = self._bce(y, prob)
        self.loss_tracker.update_state(loss, sample_weight=ops.cast(ops.shape(y)[0], "float32"))
        self.auc.update_state(y, prob)
        return {m.name: m.result() for m in self.metrics[:2]}

    def get_config(self):
        return {
            "name": self.name,
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "embedding_dim": self.embedding_dim,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
            "selecting": self.selecting,
        }
