"""Warm starts: a cluster's recommender begins from the search model's kept columns."""

import numpy as np
import tensorflow as tf

from ihas_keras.layers.towers import SharedTowers
from ihas_keras.models.recommender import Recommender
from ihas_keras.models.search import SearchModel


def warm_start(recommender: Recommender, search: SearchModel, kept: np.ndarray) -> None:
    """Copies into RECOMMENDER the weights of SEARCH that its kept dimensions use.

    Each kept field's table gets the search table's kept columns (in order), a first-order
    table is copied where both models have one, and, when both backbones are of the same kind
    with the same hidden units (and no cross network), the backbone is copied with the first
    layer's kernel reduced to the rows of the kept dimensions. Other weights keep their fresh
    initialisation.

    Args:
        recommender: a recommender whose widths are KEPT's per-field counts.
        search: the trained search model.
        kept: booleans [N, embedding_dim], the cluster's kept dimensions of each field.

    Raises:
        ValueError: RECOMMENDER's widths are not KEPT's per-field counts.
    """
    kept = np.asarray(kept, bool)
    if list(kept.sum(-1)) != recommender.widths:
        raise ValueError(f"warm_start: the recommender's widths {recommender.widths} are not the "
                         f"kept dimensions' counts {kept.sum(-1).tolist()}")
    for i, field in enumerate(search.fields):
        if field in recommender.embedding.tables:
            table = search.embedding.tables[field]
            recommender.embedding.tables[field].assign(
                tf.gather(table, np.flatnonzero(kept[i]), axis=1))
    if recommender.linear is not None and search.linear is not None:
        for field, table in recommender.linear.tables.items():
            table.assign(search.linear.tables[field])
    _copy_backbone(recommender.backbone, search.backbone, np.flatnonzero(kept.reshape(-1)))


def warm_start_towers(towers: SharedTowers, search: SearchModel) -> None:
    """Copies SEARCH into shared TOWERS: the embedding whole, each tower cut to its columns.

    The shared embedding (and first-order table, where both have one) gets SEARCH's tables;
    each tower gets SEARCH's backbone as `warm_start` copies it, the first kernel reduced to the
    rows of that tower's kept columns.

    Args:
        towers: the routed model's shared towers.
        search: the trained search model.
    """
    for field, table in towers.embedding.tables.items():
        table.assign(search.embedding.tables[field])
    if towers.linear is not None and search.linear is not None:
        for field, table in towers.linear.tables.items():
            table.assign(search.linear.tables[field])
    if towers.block is None:
        for tower, columns in zip(towers.towers, towers.columns, strict=True):
            _copy_backbone(tower, search.backbone, np.asarray(columns, int))
        return
    source = search.backbone
    if source.kind != "dnn" or source.hidden_units != towers.hidden_units or source.mlp is None:
        return
    for k, columns in enumerate(towers.columns):
        weights = _mlp_weights(source, np.asarray(columns, int)) + [source.bias.numpy()]
        towers.block.set_tower_weights(k, weights)


def _mlp_weights(source, rows: np.ndarray) -> list[np.ndarray]:
    """SOURCE backbone's MLP weights (kernel, bias per layer, then the head's kernel), the first
    kernel (the head's, without hidden layers) reduced to ROWS."""
    weights = []
    for dense in source.mlp.dense_layers:
        kernel = dense.kernel.numpy()
        weights += [kernel if weights else kernel[rows], dense.bias.numpy()]
    head = source.head.kernel.numpy()
    return weights + [head if weights else head[rows]]


def _copy_backbone(target, source, rows: np.ndarray) -> None:
    """Copies SOURCE's backbone into TARGET, the first kernel reduced to ROWS, where they match."""
    if (target.kind != source.kind or target.hidden_units != source.hidden_units
            or target.cross is not None or source.cross is not None):
        return
    target.bias.assign(source.bias)
    if target.mlp is None or source.mlp is None:
        return
    variables = [v for dense in target.mlp.dense_layers for v in (dense.kernel, dense.bias)]
    for variable, value in zip([*variables, target.head.kernel], _mlp_weights(source, rows),
                               strict=True):
        variable.assign(value)
