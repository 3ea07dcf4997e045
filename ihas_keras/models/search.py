"""The search model: embeddings -> Bernoulli gates -> backbone, trained bi-level."""

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import ops

from ihas_keras import defaults
from ihas_keras.layers.backbone import Backbone
from ihas_keras.layers.gate import BernoulliGate
from ihas_keras.layers.regularizer import GateRegularizer, polarization
from ihas_keras.layers.router import routing_points
from ihas_keras.models.bilevel import BilevelModel
from ihas_keras.models.recommender import dummy_batch, field_embeddings


@keras.saving.register_keras_serializable(package="ihas")
class SearchModel(BilevelModel):
    """{field: int64 ids [B]} -> click probability [B], through per-example embedding gates.

    Trained bi-level (`BilevelModel`): base steps update the embeddings, first-order terms and
    backbone under the gate's current mask (all ones in "open" mode); once
    `use_validation(validation, gate_every)` is called, in "stochastic" mode, an architecture
    step after every `gate_every` base steps updates only the gate, on the next validation
    batch, with the loss plus `GateRegularizer` (the paper's Eq. 5).
    Logged per epoch besides `loss`, `auc`, `arch_loss` and `arch_steps`: `open_fraction` and
    `polarization` of the gates.

    Args:
        fields: the field names, in order.
        vocab_sizes: each field's vocabulary size (its table's rows).
        embedding_dim: every field's full width.
        backbone: "dnn", "fm", "wide_deep", "deepfm" or "dcn_v2".
        hidden_units: the MLP's layer sizes.
        cross_layers: DCN-v2 cross layers (backbone "dcn_v2").
        instance_wise: per-example gates; False: one vector for all examples (iHAS-4).
        polarization: the regularizer's polarization term; False drops it (iHAS-3).
        lam: the regularizer's L0 weight against polarization.
        regularization_weight: the regularizer's weight in the gate loss.
        temperature: of the straight-through Gumbel-Softmax sample.
        initial_probability: every gate's starting keep probability.
        gate_mode: "stochastic", "deterministic" or "open".
        seed: the gate noise's seed.
        gate_rank: the gate kernel's rank; 0: full (`layers.BernoulliGate`'s `rank`).
        **kwargs: `keras.Model` arguments (such as `name`).

    Raises:
        ValueError: FIELDS and VOCAB_SIZES differ in length, or the backbone kind or the gate
            mode is unknown.
    """

    def __init__(self, fields: Sequence[str], vocab_sizes: Sequence[int],
                 embedding_dim: int = defaults.EMBEDDING_DIM, backbone: str = defaults.BACKBONE,
                 hidden_units: Sequence[int] = defaults.HIDDEN_UNITS,
                 cross_layers: int = defaults.CROSS_LAYERS, instance_wise: bool = True,
                 polarization: bool = True, lam: float = defaults.LAM,
                 regularization_weight: float = defaults.REGULARIZATION_WEIGHT,
                 temperature: float = defaults.TEMPERATURE,
                 initial_probability: float = defaults.INITIAL_PROBABILITY,
                 gate_mode: str = "stochastic", seed: int | None = None,
                 gate_rank: int = defaults.GATE_RANK, **kwargs) -> None:
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
            initial_probability=initial_probability, seed=seed, rank=gate_rank, name="gate",
        )
        self.regularizer = GateRegularizer(lam, regularization_weight, polarization)
        self.backbone = Backbone(backbone, widths, self.hidden_units, self.cross_layers,
                                 name="backbone")
        self.open_fraction = keras.metrics.Mean(name="open_fraction")
        self.polarization = keras.metrics.Mean(name="polarization")
        self(dummy_batch(self.fields))

    # The forward pass ------------------------------------------------------------------------

    def gated(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple:
        """The forward pass, with the gate's mask and probabilities and the embeddings.

        Args:
            inputs: {field: int64 ids [B]}.
            training: whether this is a training step (the gate samples in "stochastic" mode).

        Returns:
            (probability [B], mask [B, N*], gate probabilities [B, N*], embeddings [B, N*]).
        """
        embedded = self.embedding(inputs)
        mask, p = self.gate(embedded, training=training)
        linear = self.linear(inputs) if self.linear is not None else None
        logit = self.backbone((embedded * ops.cast(mask, embedded.dtype), linear))
        return ops.sigmoid(ops.cast(logit[:, 0], "float32")), mask, p, embedded

    def forward(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tuple:
        """(click probability [B], {"mask": mask [B, N*], "p": gate probabilities [B, N*]})."""
        prob, mask, p, _ = self.gated(inputs, training=training)
        return prob, {"mask": mask, "p": p}

    def routing_points(self, inputs: dict[str, tf.Tensor],
                       representation: str = defaults.REPRESENTATION
                       ) -> tuple[tf.Tensor, tf.Tensor]:
        """The points K-Means clusters, and the deterministic masks m.

        The gate is switched to "deterministic" for the call, then back to its mode.

        Args:
            inputs: {field: int64 ids [B]}.
            representation: what is clustered (`layers.router.REPRESENTATIONS`): the gate
                probabilities p, the masks m or the masked embeddings E * m.

        Returns:
            (the points [B, N*], the masks m [B, N*]).

        Raises:
            ValueError: REPRESENTATION is unknown.
        """
        embedded = self.embedding(inputs)
        mode = self.gate.mode
        self.gate.mode = "deterministic"
        try:
            mask, p = self.gate(embedded, training=False)
        finally:
            self.gate.mode = mode
        return routing_points(representation, embedded, mask, p), mask

    def set_gate_mode(self, mode: str) -> None:
        """Switches the gate mode and drops the traced functions.

        Args:
            mode: "open" (pretraining: all ones), "stochastic" (searching) or "deterministic".

        Raises:
            ValueError: MODE is not one of `BernoulliGate.MODES`.
        """
        self.gate.mode = mode
        self.drop_traced_functions()

    # The bi-level hooks ------------------------------------------------------------------------

    @property
    def architecture_variables(self) -> list:
        """The gate's trainable variables."""
        return self.gate.trainable_variables

    @property
    def architecture_active(self) -> bool:
        """Whether the gate is in "stochastic" mode (searching)."""
        return self.gate.mode == "stochastic"

    def architecture_penalty(self, details: dict) -> tf.Tensor:
        """The `GateRegularizer` of the gate probabilities `details["p"]`."""
        return self.regularizer(details["p"])

    def update_forward_metrics(self, details: dict, rows: tf.Tensor) -> None:
        """Updates `open_fraction` (mean mask) and `polarization`, weighted by ROWS."""
        self.open_fraction.update_state(ops.mean(details["mask"]), sample_weight=rows)
        self.polarization.update_state(polarization(details["p"]), sample_weight=rows)

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
            "gate_rank": gate.rank,
        }
