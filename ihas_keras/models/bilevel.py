"""The bi-level schedule shared by the iHAS search model and the field-selection baselines: a base
step on every training batch, and an architecture step on the next validation batch after every
`every` base steps."""

import tensorflow as tf
from keras import ops


class ArchSchedule:
    """The validation batches and the cadence of architecture steps (plain Python: never saved).

    VALIDATION ((features, label) batches) is repeated as needed, without the prefetch tf.data
    would add: that would read a validation batch ahead of its step. None: no architecture steps.
    """

    def __init__(self, validation=None, every: int = 100):
        if every < 1:
            raise ValueError(f"gate_every must be at least 1, got {every}")
        self.iterator = None
        if validation is not None:
            options = tf.data.Options()
            options.experimental_optimization.inject_prefetch = False
            self.iterator = iter(validation.repeat().with_options(options))
        self.every = int(every)

    def after_base_step(self, loss, base_steps, active: bool, arch_step) -> None:
        """Counts the base step that computed LOSS in BASE_STEPS (explicitly after it: when the
        input runs out mid-call, nothing here runs); then, when ACTIVE and the count is a multiple
        of `every`, calls ARCH_STEP(x, y) on the next validation batch (it returns its loss)."""
        with tf.control_dependencies([loss]):
            steps = base_steps.assign_add(1)
        if self.iterator is None or not active:
            return

        def step():
            x, y = self.iterator.get_next()
            return arch_step(x, y)

        tf.cond(ops.equal(steps % self.every, 0), step, lambda: ops.zeros(()))
