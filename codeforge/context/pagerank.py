"""Personalised PageRank over a weighted directed graph, in numpy.

The same iteration as networkx's `pagerank` (power method, damping 0.85, parallel
edges summed, dangling nodes redistributed by the personalisation vector, stop when
the L1 change is below N * tol), without building a graph object: edges come in as
arrays, which is how the ranking already holds them. On the standard library's
~600 files and ~100k edges it takes a few milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def pagerank(
    nodes: int,
    src: Array,
    dst: Array,
    weight: Array,
    personalization: Array | None = None,
    *,
    alpha: float = 0.85,
    max_iter: int = 100,
    tol: float = 1.0e-6,
) -> Array:
    """The rank of each of `nodes` nodes (summing to 1) given edges src -> dst."""
    if nodes == 0:
        return np.zeros(0)
    out_weight = np.bincount(src, weights=weight, minlength=nodes)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = weight / out_weight[src]
    if personalization is None or personalization.sum() <= 0:
        p = np.full(nodes, 1.0 / nodes)
    else:
        p = personalization / personalization.sum()
    dangling = out_weight == 0
    x = np.full(nodes, 1.0 / nodes)
    for _ in range(max_iter):
        previous = x
        flow = np.bincount(dst, weights=x[src] * share, minlength=nodes)
        x = alpha * (flow + x[dangling].sum() * p) + (1.0 - alpha) * p
        if np.abs(x - previous).sum() < nodes * tol:
            break
    return x
