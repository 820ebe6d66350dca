r"""Batch-aware, bipartite-capable k-nearest-neighbour and radius graphs.

torch-geometric 2.8 routes ``knn_graph``/``radius_graph`` through pyg-lib. These functions call
``torch_cluster`` when it is installed (an optional extra, built from source) and otherwise an
exact implementation in plain torch (chunked pairwise distances), with the same signatures and
conventions as ``torch_cluster``:

* ``knn(x, y, k)`` / ``radius(x, y, r)`` return ``[2, E]`` with row ``i`` indexing ``y`` (the
  points that gather) and column ``j`` indexing ``x`` (their neighbours);
* ``knn_graph``/``radius_graph`` return PyG ``edge_index`` with ``flow="source_to_target"``:
  ``edge_index[0]`` the neighbour ``j``, ``edge_index[1]`` the centre ``i``.

The torch path and ``torch_cluster`` give identical graphs for points in general position
(``tests/test_graph.py``). Where a radius neighbourhood holds more than ``max_num_neighbors``
points, the torch path keeps the nearest ones.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

try:  # optional: pip install --no-build-isolation torch-cluster
    import torch_cluster
except ImportError:  # pragma: no cover - depends on the environment
    torch_cluster = None

__all__ = ["knn", "knn_graph", "radius", "radius_graph", "fully_connected_graph", "HAS_TORCH_CLUSTER"]

HAS_TORCH_CLUSTER = torch_cluster is not None
_CHUNK_ELEMENTS = 1 << 24  # distance-matrix entries per chunk of the torch path


def _use_torch_cluster(implementation: str) -> bool:
    if implementation not in ("auto", "torch", "torch_cluster"):
        raise ValueError(f"implementation: expected 'auto', 'torch' or 'torch_cluster', got {implementation!r}")
    if implementation == "torch_cluster" and not HAS_TORCH_CLUSTER:
        raise ImportError("implementation='torch_cluster' needs torch-cluster (pip install --no-build-isolation torch-cluster)")
    return implementation == "torch_cluster" or (implementation == "auto" and HAS_TORCH_CLUSTER)


def _check_points(x: Tensor, batch: Optional[Tensor], name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"{name}: expected a (num_points, dim) tensor, got {getattr(x, 'shape', type(x))}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    if batch is None:
        return x.new_zeros(x.shape[0], dtype=torch.long)
    if batch.shape != (x.shape[0],):
        raise ValueError(f"batch_{name}: expected shape ({x.shape[0]},), got {tuple(batch.shape)}")
    return batch.long()


def _pairwise(x: Tensor, y: Tensor, batch_x: Tensor, batch_y: Tensor):
    """Yield ``(start, dist2)``: squared distances of a chunk of ``y`` rows to all ``x``, inf across batches."""
    step = max(1, _CHUNK_ELEMENTS // max(1, x.shape[0]))
    for start in range(0, y.shape[0], step):
        yc, by = y[start : start + step], batch_y[start : start + step]
        d2 = (yc[:, None, :] - x[None, :, :]).pow(2).sum(-1)  # exact, unlike the |a|^2 + |b|^2 - 2ab form
        d2 = d2.masked_fill(by[:, None] != batch_x[None, :], float("inf"))
        yield start, d2


def _nearest(x: Tensor, y: Tensor, batch_x: Tensor, batch_y: Tensor, k: int, max_dist2: float = float("inf")) -> Tensor:
    """For each ``y``, up to ``k`` nearest ``x`` of its example closer than ``sqrt(max_dist2)``; ``[2, E]``, nearest first."""
    rows, cols = [], []
    k = min(k, x.shape[0])
    for start, d2 in _pairwise(x, y, batch_x, batch_y):
        dist, col = d2.topk(k, dim=1, largest=False)  # other examples sit at inf
        row = torch.arange(start, start + d2.shape[0], device=x.device)[:, None].expand_as(col)
        keep = dist < max_dist2
        rows.append(row[keep])
        cols.append(col[keep])
    if not rows:
        return torch.zeros(2, 0, dtype=torch.long, device=x.device)
    return torch.stack([torch.cat(rows), torch.cat(cols)])


def knn(
    x: Tensor,
    y: Tensor,
    k: int,
    batch_x: Optional[Tensor] = None,
    batch_y: Optional[Tensor] = None,
    implementation: str = "auto",
) -> Tensor:
    r"""For each point of ``y``, its ``k`` nearest points of ``x`` in the same example.

    Args:
        x (Tensor): Candidate neighbours :math:`(N, D)`.
        y (Tensor): Query points :math:`(M, D)`.
        k (int): Number of neighbours (fewer where an example has fewer points).
        batch_x (Tensor, optional): Example index of each ``x`` point :math:`(N,)`.
        batch_y (Tensor, optional): Example index of each ``y`` point :math:`(M,)`.
        implementation (str): ``"auto"``, ``"torch"`` or ``"torch_cluster"``.

    Returns:
        ``[2, E]``: row indexes ``y``, column indexes ``x``; rows ascending, nearest first.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    batch_x, batch_y = _check_points(x, batch_x, "x"), _check_points(y, batch_y, "y")
    if _use_torch_cluster(implementation):
        return torch_cluster.knn(x, y, k, batch_x, batch_y)
    return _nearest(x, y, batch_x, batch_y, k)


def radius(
    x: Tensor,
    y: Tensor,
    r: float,
    batch_x: Optional[Tensor] = None,
    batch_y: Optional[Tensor] = None,
    max_num_neighbors: int = 32,
    implementation: str = "auto",
) -> Tensor:
    r"""For each point of ``y``, the points of ``x`` in the same example at distance :math:`< r`.

    Args:
        x (Tensor): Candidate neighbours :math:`(N, D)`.
        y (Tensor): Query points :math:`(M, D)`.
        r (float): Radius.
        batch_x (Tensor, optional): Example index of each ``x`` point.
        batch_y (Tensor, optional): Example index of each ``y`` point.
        max_num_neighbors (int): At most this many neighbours per query point. (default: :obj:`32`)
        implementation (str): ``"auto"``, ``"torch"`` or ``"torch_cluster"``.

    Returns:
        ``[2, E]``: row indexes ``y``, column indexes ``x``.
    """
    if not r > 0:
        raise ValueError(f"r: expected a positive radius, got {r!r}")
    batch_x, batch_y = _check_points(x, batch_x, "x"), _check_points(y, batch_y, "y")
    if _use_torch_cluster(implementation):
        return torch_cluster.radius(x, y, r, batch_x, batch_y, max_num_neighbors=max_num_neighbors)
    return _nearest(x, y, batch_x, batch_y, max_num_neighbors, r * r)


def _to_graph(assign: Tensor, loop: bool, flow: str) -> Tensor:
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow: expected 'source_to_target' or 'target_to_source', got {flow!r}")
    row, col = assign  # row: centre i, col: neighbour j
    if not loop:
        mask = row != col
        row, col = row[mask], col[mask]
    return torch.stack([col, row] if flow == "source_to_target" else [row, col])


def knn_graph(
    x: Tensor,
    k: int,
    batch: Optional[Tensor] = None,
    loop: bool = False,
    flow: str = "source_to_target",
    implementation: str = "auto",
) -> Tensor:
    r"""Edges from each point's ``k`` nearest neighbours (same example) to the point.

    Args:
        x (Tensor): Points :math:`(N, D)`.
        k (int): Number of neighbours.
        batch (Tensor, optional): Example index of each point.
        loop (bool): Include self-loops. (default: :obj:`False`)
        flow (str): ``"source_to_target"`` or ``"target_to_source"``.
        implementation (str): ``"auto"``, ``"torch"`` or ``"torch_cluster"``.

    Returns:
        ``edge_index`` :math:`(2, E)`.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    assign = knn(x, x, k if loop else k + 1, batch, batch, implementation=implementation)
    return _to_graph(assign, loop, flow)


def radius_graph(
    x: Tensor,
    r: float,
    batch: Optional[Tensor] = None,
    loop: bool = False,
    max_num_neighbors: int = 32,
    flow: str = "source_to_target",
    implementation: str = "auto",
) -> Tensor:
    r"""Edges between all pairs of points of an example closer than ``r``.

    Args:
        x (Tensor): Points :math:`(N, D)`.
        r (float): Radius.
        batch (Tensor, optional): Example index of each point.
        loop (bool): Include self-loops. (default: :obj:`False`)
        max_num_neighbors (int): At most this many neighbours per point. (default: :obj:`32`)
        flow (str): ``"source_to_target"`` or ``"target_to_source"``.
        implementation (str): ``"auto"``, ``"torch"`` or ``"torch_cluster"``.

    Returns:
        ``edge_index`` :math:`(2, E)`.
    """
    assign = radius(x, x, r, batch, batch, max_num_neighbors if loop else max_num_neighbors + 1, implementation)
    return _to_graph(assign, loop, flow)


def fully_connected_graph(batch: Tensor, loop: bool = False) -> Tensor:
    """``edge_index`` ``[2, E]`` of all ordered pairs of nodes within each example of ``batch``."""
    same = batch[:, None] == batch[None, :]
    if not loop:
        same.fill_diagonal_(False)
    return same.nonzero().T.flip(0)
