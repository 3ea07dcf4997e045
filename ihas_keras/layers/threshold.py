"""The histogram threshold searcher, in TF ops so it runs inside a served graph."""

import keras
import tensorflow as tf

from ihas_keras import defaults


def histogram_threshold(p: tf.Tensor, bins: int = defaults.THRESHOLD_BINS,
                        smoothing: int = defaults.THRESHOLD_SMOOTHING) -> tf.Tensor:
    """Per row of P [B, n] (values in [0, 1]): the lower edge of its histogram's first valley.

    Each row's values go into BINS equal bins on [0, 1]; counts are smoothed by a centred moving
    average of SMOOTHING bins. Scanning left to right, the first bin v with
    count[v-1] >= count[v] <= count[v+1] is the valley (PolarizationPruning's `search_threshold`,
    applied per example), its lower edge v / BINS the threshold. One guard, because a row of a
    few hundred values gives a ragged histogram: a valley counts only once the counts have fallen
    to half the highest count to its left, so a dip inside a mode is not taken for the gap
    between modes (nor are empty bins before the first mode); and a valley needs values above
    it. Rows without a valley (one mode) get 1 / BINS, the edge of bin 1.

    Args:
        p: probabilities [B, n], values in [0, 1].
        bins: the histogram's bins on [0, 1].
        smoothing: the moving average's width, in bins (1 or less: no smoothing).

    Returns:
        The per-row thresholds [B], float32.
    """
    p = tf.cast(p, tf.float32)
    rows = tf.shape(p)[0]
    index = tf.clip_by_value(tf.cast(tf.floor(p * bins), tf.int32), 0, bins - 1)
    flat = tf.reshape(index + tf.range(rows)[:, None] * bins, [-1])
    # A segment sum rather than tf.math.bincount, whose output size depends on the data: XLA
    # (jit_compile) needs it to follow from the shapes.
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), flat, rows * bins)
    counts = tf.reshape(counts, [rows, bins])
    if smoothing > 1:  # centred moving average, zero-padded at both ends, by prefix sums
        padded = tf.pad(counts, [[0, 0], [(smoothing - 1) // 2 + 1, smoothing // 2]])
        prefix = tf.cumsum(padded, axis=1)
        counts = (prefix[:, smoothing:] - prefix[:, :-smoothing]) / smoothing
    diff = counts[:, 1:] - counts[:, :-1]
    peak_so_far, shift = counts, 1
    while shift < bins:  # running maximum in log2(bins) steps
        shifted = tf.pad(peak_so_far[:, :-shift], [[0, 0], [shift, 0]])
        peak_so_far, shift = tf.maximum(peak_so_far, shifted), shift * 2
    fallen = (counts <= peak_so_far / 2) & (peak_so_far > 0)
    mass_above = tf.cumsum(counts, axis=1, exclusive=True, reverse=True) > 0
    valley = fallen[:, 1:-1] & mass_above[:, 1:-1] & (diff[:, :-1] <= 0) & (diff[:, 1:] >= 0)
    first = tf.argmax(tf.cast(valley, tf.int32), axis=1, output_type=tf.int32) + 1
    bin_index = tf.where(tf.reduce_any(valley, axis=1), first, 1)
    return tf.cast(bin_index, tf.float32) / bins


@keras.saving.register_keras_serializable(package="ihas")
class ThresholdSearcher(keras.layers.Layer):
    """Layer form of `histogram_threshold`: probabilities [B, n] -> per-example thresholds [B].

    Args:
        bins: the histogram's bins on [0, 1].
        smoothing: the moving average's width, in bins.
        **kwargs: `keras.layers.Layer` arguments (such as `name`).

    Raises:
        ValueError: BINS < 3 or SMOOTHING < 1.
    """

    def __init__(self, bins: int = defaults.THRESHOLD_BINS,
                 smoothing: int = defaults.THRESHOLD_SMOOTHING, **kwargs) -> None:
        super().__init__(**kwargs)
        if bins < 3 or smoothing < 1:
            raise ValueError(f"ThresholdSearcher: need bins >= 3 and smoothing >= 1, got "
                             f"bins={bins}, smoothing={smoothing}")
        self.bins = int(bins)
        self.smoothing = int(smoothing)

    def call(self, p):
        return histogram_threshold(p, self.bins, self.smoothing)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "smoothing": self.smoothing}
