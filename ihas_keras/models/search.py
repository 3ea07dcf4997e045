"""The search model: embeddings -> Bernoulli gates -> backbone, with a bi-level `train_step`."""

import keras
import tensorflow as tf
from keras import ops

from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.gate import BernoulliGate
from ihas_keras.layers.regularizer import GateRegularizer, polarization
from ihas_keras.models.bilevel import ArchSchedule
from ihas_keras.models.recommender import dummy_batch, field_embeddings


@keras.saving.register_keras_serializable(package="ihas")
class SearchModel(keras.Model):
    """{field: int64 ids [B]} -> click probability [B], through per-example embedding gates.

    Training (`fit`) is bi-level once `use_validation(validation, gate_every)` is called: every
    batch is a base step (embeddings, first-order terms and backbone step with `optimizer` on the
    BCE loss, under the gate's current mask, all ones in "open" mode); after every `gate_every`
    base steps, in "stochastic" mode, one gate step follows: the next validation batch, and only
    the gate steps, with `gate_optimizer`, on BCE + `GateRegularizer` (Eq. 5). The validation
    batch is taken from its iterator inside the gate branch of the graph, so validation data is
    read on gate steps only.
    Logged per epoch: loss and auc (base steps), open_fraction and polarization of the gates,
    gate_loss and gate_steps (gate steps).
    """

    def __init__(self, fields, vocab_sizes, embedding_dim=16, backbone="dnn",
                 hidden_units=(16, 8), cross_layers=2, instance_wise=True, polarization=True,
                 lam=1.2, regularization_weight=1e-4, temperature=0.1, initial_probability=0.5,
                 gate_mode="stochastic", seed=None, **kwargs):
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
        self.gate = BernoulliGate(
            sum(widths), mode=gate_mode, instance_wise=instance_wise, temperature=temperature,
            initial_probability=initial_probability, seed=seed, name="gate",
        )
        self.regularizer = GateRegularizer(lam, regularization_weight, polarization)
        self.backbone = Backbone(backbone, widths, self.hidden_units, self.cross_layers,
                                 name="backbone")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.auc = keras.metrics.AUC(name="auc")
        self.open_fraction = keras.metrics.Mean(name="open_fraction")
        self.polarization = keras.metrics.Mean(name="polarization")
        self.gate_loss = keras.metrics.Mean(name="gate_loss")
        self.gate_steps = keras.metrics.Sum(name="gate_steps")
        self.base_steps = keras.Variable(0, dtype="int64", trainable=False, name="base_steps")
        self._gate_data = ArchSchedule()
        self(dummy_batch(self.fields))

    # The forward pass ------------------------------------------------------------------------

    def gated(self, inputs, training=False):
        """(probability [B], mask [B, N*], gate probabilities [B, N*], embeddings [B, N*])."""
        embedded = self.embedding(inputs)
        mask, p = self.gate(embedded, training=training)
        linear = self.linear(inputs) if self.linear is not None else None
        logit = self.backbone((embedded * mask, linear))
        return ops.sigmoid(logit[:, 0]), mask, p, embedded

    def call(self, inputs, training=False):
        return self.gated(inputs, training=training)[0]

    def masked_embeddings(self, inputs):
        """Deterministic masks and the masked embeddings E * m, both [B, N*] (for clustering)."""
        embedded = self.embedding(inputs)
        mode = self.gate.mode
        self.gate.mode = "deterministic"
        try:
            mask, _ = self.gate(embedded, training=False)
        finally:
            self.gate.mode = mode
        return embedded * mask, mask

    def use_validation(self, validation, gate_every: int = 100) -> None:
        """Gate steps on VALIDATION ((features, label) batches, repeated as needed), one after
        every GATE_EVERY training batches; `use_validation(None)` turns them off."""
        self._gate_data = ArchSchedule(validation, gate_every)
        self.train_function = None

    def set_gate_mode(self, mode: str) -> None:
        """Switches the gate mode and drops the traced train/test/predict functions."""
        self.gate.mode = mode
        self.train_function = self.test_function = self.predict_function = None

    # Training ---------------------------------------------------------------------------------

    def compile(self, optimizer=None, gate_optimizer=None, **kwargs):
        """Adam(1e-3, weight decay 1e-6) for base parameters and Adam(1e-3) for the gate."""
        optimizer = optimizer or keras.optimizers.Adam(1e-3, weight_decay=1e-6)
        self.gate_optimizer = gate_optimizer or keras.optimizers.Adam(1e-3)
        super().compile(optimizer=optimizer, **kwargs)
        # Built here, outside any traced branch, each on its own variables only.
        self.optimizer.build(self.base_variables)
        self.gate_optimizer.build(self.gate.trainable_variables)

    def get_compile_config(self):
        return None  # two optimizers: call `compile()` again after loading

    @property
    def base_variables(self) -> list:
        gate = {id(v) for v in self.gate.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in gate]

    @property
    def metrics(self):
        return [self.loss_tracker, self.auc, self.open_fraction, self.polarization,
                self.gate_loss, self.gate_steps]

    def _bce(self, y, prob):
        return ops.mean(keras.losses.binary_crossentropy(y[:, None], prob[:, None]))

    def _base_step(self, x, y):
        variables = self.base_variables
        with tf.GradientTape() as tape:
            prob, mask, p, _ = self.gated(x, training=True)
            loss = self._bce(y, prob)
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        self._update_metrics(y, prob, loss, mask, p)
        return loss

    def _gate_step(self, x, y):
        variables = self.gate.trainable_variables
        with tf.GradientTape() as tape:
            prob, _, p, _ = self.gated(x, training=True)
            loss = self._bce(y, prob) + self.regularizer(p)
        grads = tape.gradient(loss, variables)
        self.gate_optimizer.apply_gradients(zip(grads, variables, strict=True))
        self.gate_loss.update_state(loss)
        self.gate_steps.update_state(1.0)
        return loss

    def train_step(self, data):
        x, y, *_ = data
        loss = self._base_step(x, self._labels(y))
        self._gate_data.after_base_step(
            loss, self.base_steps, self.gate.mode == "stochastic",
            lambda vx, vy: self._gate_step(vx, self._labels(vy)),
        )
        return {m.name: m.result() for m in self.metrics}

    def _update_metrics(self, y, prob, loss, mask, p):
        # Weighted by the batch size: exact means over uneven batches, and the counts depend on
        # the data (a constant count would also be added when the iterator runs out).
        rows = ops.cast(ops.shape(y)[0], "float32")
        self.loss_tracker.update_state(loss, sample_weight=rows)
        self.auc.update_state(y, prob)
        self.open_fraction.update_state(ops.mean(mask), sample_weight=rows)
        self.polarization.update_state(polarization(p), sample_weight=rows)

    @staticmethod
    def _labels(y):
        return ops.cast(ops.reshape(y, (-1,)), "float32")

    def test_step(self, data):
        x, y, *_ = data
        y = self._labels(y)
        prob, mask, p, _ = self.gated(x, training=False)
        self._update_metrics(y, prob, self._bce(y, prob), mask, p)
        return {m.name: m.result() for m in self.metrics[:4]}

    def get_config(self):
        gate, reg = self.gate, self.regularizer
        return {
            "name": self.name,
            "fields": self.fields,
            "vocab_sizes": self.vocab_sizes,
            "embedding_dim": self.embedding_dim,
            "backbone": self.backbone_kind,
            "hidden_units": self.hidden_units,
            "cross_layers": self.cross_layers,
            "instance_wise": gate.instance_wise,
            "polarization": reg.polarization,
            "lam": reg.lam,
            "regularization_weight": reg.weight,
            "temperature": gate.temperature,
            "initial_probability": gate.initial_probability,
            "gate_mode": gate.mode,
            "seed": gate.seed,
        }
