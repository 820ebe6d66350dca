import pytest
import torch

from pyg_implicit.graph import HAS_TORCH_CLUSTER, fully_connected_graph, knn, knn_graph, radius, radius_graph


def points(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 3, generator=g)
    batch = torch.tensor([0] * 25 + [1] * 5 + [2] * 30)
    y = torch.randn(20, 3, generator=g)
    batch_y = torch.tensor([0] * 8 + [1] * 4 + [2] * 8)
    return x, batch, y, batch_y


def edge_set(edge_index):
    return set(map(tuple, edge_index.T.tolist()))


def brute_force_knn(x, y, k, batch_x, batch_y):
    pairs = set()
    for i in range(y.shape[0]):
        candidates = (batch_x == batch_y[i]).nonzero().flatten()
        d = (x[candidates] - y[i]).norm(dim=1)
        for j in candidates[d.argsort()[:k]].tolist():
            pairs.add((i, j))
    return pairs


def test_knn_matches_brute_force_and_is_batch_aware():
    x, batch, y, batch_y = points()
    assign = knn(x, y, 7, batch, batch_y, implementation="torch")
    assert edge_set(assign) == brute_force_knn(x, y, 7, batch, batch_y)
    # example 1 has only 5 points: its queries get 5 neighbours, all from example 1
    rows = assign[0][batch_y[assign[0]] == 1]
    assert (batch[assign[1][batch_y[assign[0]] == 1]] == 1).all() and rows.numel() == 4 * 5


def test_knn_graph_and_radius_graph_conventions():
    x, batch, _, _ = points()
    edge_index = knn_graph(x, 4, batch, implementation="torch")
    assert (edge_index[0] != edge_index[1]).all()
    assert (torch.bincount(edge_index[1], minlength=60) == 4).all()  # targets gather k sources
    assert (batch[edge_index[0]] == batch[edge_index[1]]).all()
    edge_index = radius_graph(x, 1.0, batch, max_num_neighbors=100, implementation="torch")
    d = (x[edge_index[0]] - x[edge_index[1]]).norm(dim=1)
    assert (d < 1.0).all()
    dense = (torch.cdist(x, x) < 1.0) & (batch[:, None] == batch[None]) & ~torch.eye(60, dtype=torch.bool)
    assert edge_index.shape[1] == dense.sum()
    assert edge_set(radius_graph(x, 1.0, batch, loop=True, implementation="torch")) >= {(i, i) for i in range(60)}
    flipped = knn_graph(x, 4, batch, flow="target_to_source", implementation="torch")
    assert edge_set(flipped) == edge_set(knn_graph(x, 4, batch, implementation="torch").flip(0))


def test_radius_keeps_nearest_when_capped():
    x, _, y, _ = points()
    assign = radius(x, y, 10.0, max_num_neighbors=3, implementation="torch")
    assert edge_set(assign) == brute_force_knn(x, y, 3, torch.zeros(60, dtype=torch.long), torch.zeros(20, dtype=torch.long))


@pytest.mark.skipif(not HAS_TORCH_CLUSTER, reason="torch-cluster is an optional extra; CI installs it")
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_path_equals_torch_cluster(seed):
    x, batch, y, batch_y = points(seed)
    for fn, args in [(knn, (x, y, 6, batch, batch_y)), (radius, (x, y, 0.9, batch, batch_y, 1000))]:
        assert edge_set(fn(*args, implementation="torch")) == edge_set(fn(*args, implementation="torch_cluster"))
    assert edge_set(knn_graph(x, 5, batch, implementation="torch")) == edge_set(knn_graph(x, 5, batch, implementation="torch_cluster"))
    assert edge_set(radius_graph(x, 0.8, batch, max_num_neighbors=1000, implementation="torch")) == edge_set(
        radius_graph(x, 0.8, batch, max_num_neighbors=1000, implementation="torch_cluster")
    )


def test_fully_connected_graph():
    batch = torch.tensor([0, 0, 0, 1, 1])
    edge_index = fully_connected_graph(batch)
    assert edge_index.shape == (2, 3 * 2 + 2 * 1)
    assert (batch[edge_index[0]] == batch[edge_index[1]]).all() and (edge_index[0] != edge_index[1]).all()


def test_bad_input():
    x, batch, _, _ = points()
    with pytest.raises(ValueError, match="k: expected a positive int"):
        knn_graph(x, 0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x: contains NaN or inf"):
        knn_graph(bad, 3)
    with pytest.raises(ValueError, match="batch_x: expected shape"):
        knn_graph(x, 3, batch[:-1])
    with pytest.raises(ValueError, match="implementation"):
        knn_graph(x, 3, implementation="faiss")
