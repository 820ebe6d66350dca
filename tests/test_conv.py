import copy
import functools
import math

import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from pyg_implicit.graph import knn_graph
from pyg_implicit.groups import Group, get_group, irreps_D, rotation_z
from pyg_implicit.nn import HarmonicEmbedding, ImplicitConv, ImplicitKernel, StandardConv
from pyg_implicit.testing import assert_equivariant, equivariance_error
from conftest import random_head

GROUPS = [
    "o3", "so3", "so2", "o2", "cone", "cyl", "fullcyl", "inv", "mirror", "trivial",
    "t", "th", "td", "o", "oh", "i", "ih",
] + [f"c{n}" for n in range(1, 7)] + [f"d{n}" for n in range(1, 7)]  # fmt: skip
CONVS = [ImplicitConv, StandardConv]
FACTORIZED = functools.partial(ImplicitConv, form="factorized")  # the implicit kernel's factorised network
KERNELS = pytest.mark.parametrize("cls", CONVS + [FACTORIZED], ids=["implicit", "standard", "factorized"])
IN, OUT = "4x0e+2x1o+2x2e+1x0o", "3x0e+2x1o+1x2e+1x1e"
EDGE, NODE = "1x0e+1x1o", "2x0e+1x1e"


def graph(num_nodes=10, num_edges=36, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(num_nodes, 3, generator=g)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    return pos, edge_index, g


def make(cls, group, **kwargs):
    return cls(IN, OUT, group, edge_attr_irreps=EDGE, node_attr_irreps=NODE, **kwargs)


def inputs(conv, num_nodes=10, num_edges=36, seed=0):
    pos, edge_index, g = graph(num_nodes, num_edges, seed)
    x = torch.randn(num_nodes, conv.irreps_in.dim, generator=g)
    edge_attr = torch.randn(num_edges, 4, generator=g)
    node_attr = torch.randn(num_nodes, 5, generator=g)
    return (x, pos, edge_index, edge_attr, node_attr)


ACTIONS = (IN, "cartesian_points", None, EDGE, NODE)


@pytest.mark.parametrize("cls", CONVS)
@pytest.mark.parametrize("name", GROUPS)
def test_equivariant_float64_and_not_outside_subgroup(float64, cls, name):
    conv = make(cls, name)
    args = inputs(conv)
    errors = assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    assert errors.max() < 1e-9
    group = get_group(name)
    if name != "o3":
        # A random element of O(3) lies outside every proper subgroup (almost surely).
        outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
        outside = outside[~group.contains(outside)][:3]
        assert len(outside) > 0
        assert equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3


@pytest.mark.parametrize("cls", CONVS)
@pytest.mark.parametrize("name", ["so2", "cone", "c4", "d4", "oh"])
def test_factorized_path_weights_equivariant_and_not_outside(float64, cls, name):
    """path_weights="factorized" bounds the parameter count and keeps the layer exact for its group only."""
    conv, full = make(cls, name, path_weights="factorized"), make(cls, name)
    assert conv.kernel.tensor_product.weight_numel < full.kernel.tensor_product.weight_numel
    args = inputs(conv)
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
    outside = outside[~get_group(name).contains(outside)][:3]
    assert equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3


@pytest.mark.parametrize("name", ["o3", "so2", "cone", "c4", "d4", "oh"])
def test_implicit_kernel_with_a_distance_embedding_is_equivariant_and_not_outside(float64, name):
    """num_basis adds G-invariant scalars E(|x|) to the kernel MLP's input: exact for every G."""
    conv = make(ImplicitConv, name, num_basis=6, max_radius=3.0)
    assert conv.kernel.num_basis == 6 and "num_basis=6" in repr(conv)
    args = inputs(conv)
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    if name != "o3":
        outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
        outside = outside[~get_group(name).contains(outside)][:3]
        assert equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3
    with pytest.raises(ValueError, match="num_basis"):
        make(ImplicitConv, name, num_basis=-1)


USER_C3 = Group("user-c3", discrete_generators=[rotation_z(2 * math.pi / 3)])


@pytest.mark.parametrize("form", ImplicitKernel.FORMS)
@pytest.mark.parametrize("name,mlp_group", [("so2", "o3"), ("so2", "o2"), ("cone", "fullcyl"), ("c4", "d4"), ("d4", "oh"),
                                            (USER_C3, "so2")], ids=str)
def test_implicit_kernel_with_a_larger_mlp_group_is_equivariant_to_its_own_group_only(float64, name, mlp_group, form):
    """mlp_group = H >= G: the kernel features h are H-equivariant, the layer (B is G's) G-equivariant and no more."""
    conv = make(ImplicitConv, name, mlp_group=mlp_group, form=form)
    assert conv.kernel.mlp_group.name == mlp_group and f"mlp_group={mlp_group}" in repr(conv)
    args = inputs(conv)
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    outside = get_group(mlp_group).sample(8, generator=torch.Generator().manual_seed(3))
    outside = outside[~get_group(name).contains(outside)][:3]
    assert len(outside) > 0 and equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3
    # the kernel network itself is H-equivariant: h(R x, D_z(R) z) = D_h(R) h(x, z) for R in H outside G
    kernel = conv.kernel.eval()
    g = torch.Generator().manual_seed(1)
    vec, edge_attr, node_attr = torch.randn(30, 3, generator=g), torch.randn(30, 4, generator=g), torch.randn(30, 5, generator=g)
    h = kernel.features(vec, edge_attr, node_attr, node_attr)
    for R in outside:
        moved = kernel.features(vec @ R.T, edge_attr @ irreps_D(EDGE, R).T, *2 * [node_attr @ irreps_D(NODE, R).T])
        assert (moved - h @ irreps_D(kernel.irreps_features, R).T).abs().max() < 1e-9
    with pytest.raises(ValueError, match="mlp_group: expected a group containing the layer's group o3"):
        make(ImplicitConv, "o3", mlp_group="so2")


@pytest.mark.parametrize("name", ["o3", "so3", "so2", "o2", "cone", "fullcyl", "c4", "d4", "oh", "ih", USER_C3], ids=str)
def test_factorized_implicit_kernel_equivariant_and_not_outside(float64, name):
    """form="factorized": h = R(all G-invariants of (P(x), z)) x (Y(x/|x|) + z) is G-equivariant, and the
    layer is not equivariant beyond G (R reads G's invariants, not only O(3)'s)."""
    conv = make(ImplicitConv, name, form="factorized", radial_features=3, radial_hidden=16, num_basis=5)
    assert "form=factorized" in repr(conv)
    args = inputs(conv)
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    if name != "o3":
        outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
        outside = outside[~get_group(name).contains(outside)][:3]
        assert len(outside) > 0 and equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3


@pytest.mark.parametrize("name,fields", [("o3", "1x0e+1x1o+1x2e+1x1o+1x1e+1x1e"), ("so2", "1x0e+1x1o+1x2e+1x1o+1x1e+1x1e"),
                                         ("oh", "1x0e+1x1o+1x2e+1x1o+1x1e+1x1e"), ("inv", "1x0e+1x1o+1x2e+1x1o")])
def test_factorized_kernel_multiplies_only_the_attribute_fields_g_moves(name, fields):
    """The 0e attributes (and, for a group without rotations, the 1e ones) are fixed by G: they are inputs of
    R and are not repeated as fields, so one-hot types do not widen the bilinear map."""
    kernel = make(ImplicitConv, name, form="factorized", radial_features=2).kernel
    assert kernel.irreps_fields == o3.Irreps(fields)
    assert kernel.irreps_features == o3.Irreps([(2 * mul, ir) for mul, ir in o3.Irreps(fields)])
    h = kernel.features(*[torch.randn(7, d) for d in (3, 4, 5, 5)])
    assert h.shape == (7, kernel.irreps_features.dim)


def test_factorized_kernel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="form: expected one of"):
        make(ImplicitConv, "so2", form="bilinear")
    for name in ("radial_features", "radial_hidden"):
        with pytest.raises(ValueError, match=f"{name}: expected an int >= 1"):
            make(ImplicitConv, "so2", form="factorized", **{name: 0})


@pytest.mark.parametrize("form", ImplicitKernel.FORMS)
@pytest.mark.parametrize("name", ["o3", "so2", "cone", "c4", "d4", "oh", USER_C3], ids=str)
def test_implicit_kernel_without_the_shell_is_equivariant_and_not_outside(float64, name, form):
    """shell=False: the kernel is the network alone (no sigma), still exact for G and no more; the first
    training batch still sets the bilinear map's scale."""
    conv = make(ImplicitConv, name, form=form, shell=False)
    assert conv.kernel.sigma is None and "shell=False" in repr(conv)
    args = inputs(conv)
    vec = args[1][args[2][0]] - args[1][args[2][1]]
    torch.testing.assert_close(conv.kernel.radial_shell(vec), torch.ones(len(vec), 1, dtype=vec.dtype))
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    if name != "o3":
        outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
        outside = outside[~get_group(name).contains(outside)][:3]
        assert len(outside) > 0 and equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3
    fresh = make(ImplicitConv, name, form=form, shell=False).train()
    assert fresh.kernel.init_pending
    fresh(*args)
    assert not fresh.kernel.init_pending and "sigma" not in dict(fresh.named_parameters())
    with pytest.raises(ValueError, match="shell: expected a bool"):
        make(ImplicitConv, name, shell=0)
    with pytest.raises(ValueError, match="sigma: the width of a Gaussian shell, but shell=False"):
        make(ImplicitConv, name, shell=False, sigma=1.0)


@pytest.mark.parametrize("norm", ["data", "none"])
@pytest.mark.parametrize("name", ["o3", "so2", "cone", "c4", "d4", "oh", USER_C3], ids=str)
def test_implicit_kernel_with_deterministic_polynomial_norm_is_equivariant_and_not_outside(float64, name, norm):
    """polynomial_norm="data" / "none": no batch statistics in the kernel; still exact for G and no more."""
    conv = make(ImplicitConv, name, polynomial_norm=norm, lmax=2).train()
    assert f"polynomial_norm={norm}" in repr(conv)
    args = inputs(conv)
    conv(*args)  # the first training batch sets the polynomials' scale ("data")
    assert_equivariant(conv, name, args, ACTIONS, OUT, n_samples=3, tolerance=1e-9)
    if name != "o3":
        outside = get_group("o3").sample(8, generator=torch.Generator().manual_seed(3))
        outside = outside[~get_group(name).contains(outside)][:3]
        assert len(outside) > 0 and equivariance_error(conv, outside, args, ACTIONS, OUT).min() > 1e-3


def test_data_polynomial_norm_is_set_by_the_first_training_batch_then_fixed(float64):
    """norm="data": every order l >= 1 at unit mean square per component on the first training batch,
    P^0 = 1 kept; later batches (and eval) use the same scale, so an edge's embedding does not depend
    on its batch; the scale is saved with the model."""
    vec = 7 * torch.randn(500, 3, dtype=torch.float64)
    embedding = HarmonicEmbedding(2, norm="data").train()
    out = embedding(vec)
    for l, block in zip(range(3), out.split([1, 3, 5], dim=1)):
        torch.testing.assert_close(block.pow(2).mean(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(out[:, 0], torch.ones(500, dtype=torch.float64))
    torch.testing.assert_close(embedding(vec[:10]), out[:10])  # another batch: the same map
    torch.testing.assert_close(embedding(3 * vec)[:, 1:4], 3 * out[:, 1:4])
    loaded = HarmonicEmbedding(2, norm="data")
    loaded.load_state_dict(embedding.state_dict())
    torch.testing.assert_close(loaded.train()(vec), out)
    batch = HarmonicEmbedding(2, norm="batch").train()
    assert (batch(vec[:10]) - batch(vec)[:10]).abs().max() > 1e-3  # the paper's: depends on the batch
    with pytest.raises(ValueError, match="norm: expected one of"):
        HarmonicEmbedding(2, norm="layer")
    with pytest.raises(ValueError, match="polynomial_norm: expected one of"):
        make(ImplicitConv, "so2", polynomial_norm="layer")


@KERNELS
@pytest.mark.parametrize("name", ["so2", "cone", "o3"])
def test_equivariant_float32(cls, name):
    conv = make(cls, name)
    errors = assert_equivariant(conv, name, inputs(conv), ACTIONS, OUT, tolerance=1e-5)
    assert errors.max() < 1e-5


def test_so2_rejects_rotation_about_x(float64):
    conv = make(ImplicitConv, "so2")
    rot_x = get_group("so3").sample(1)  # generic rotation; and one about x explicitly
    from pyg_implicit.groups import rotation_x

    R = torch.stack([rotation_x(0.7), rot_x[0]])
    assert equivariance_error(conv, R, inputs(conv), ACTIONS, OUT).min() > 1e-3


@KERNELS
@pytest.mark.parametrize("name", ["so2", "cone", "d4", "o3", "mirror"])
def test_kernel_constraint_on_materialized_kernel(float64, cls, name):
    """Paper eq. 3: K(g x, rho_z(g) z) = rho_out(g) K(x, z) rho_in(g)^-1."""
    conv = make(cls, name)
    kernel = conv.kernel
    x, pos, edge_index, edge_attr, node_attr = inputs(conv)
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    a_i, a_j = node_attr[edge_index[1]], node_attr[edge_index[0]]
    K = kernel.materialize(vec, edge_attr, a_i, a_j)
    assert K.shape == (edge_index.shape[1], conv.irreps_out.dim, conv.irreps_in.dim)
    for R in get_group(name).sample(3):
        D_z, D_n = irreps_D(EDGE, R), irreps_D(NODE, R)
        K_g = kernel.materialize(vec @ R.T, edge_attr @ D_z.T, a_i @ D_n.T, a_j @ D_n.T)
        expected = irreps_D(OUT, R) @ K @ irreps_D(IN, R).T
        assert (K_g - expected).abs().max() < 1e-10


@KERNELS
@pytest.mark.parametrize("name", ["so2", "o3", "td"])
def test_fast_path_equals_materialized_kernel(float64, cls, name):
    conv = make(cls, name)
    x, pos, edge_index, edge_attr, node_attr = inputs(conv)
    out = conv(x, pos, edge_index, edge_attr, node_attr)
    j, i = edge_index
    K = conv.kernel.materialize(pos[j] - pos[i], edge_attr, node_attr[i], node_attr[j])
    reference = torch.zeros_like(out).index_add_(0, i, torch.einsum("eoi,ei->eo", K, x[j]))
    reference = reference + conv.lin_root(x) + conv.bias_vector()  # self-interaction and bias
    assert (out - reference).abs().max() < 1e-12


@pytest.mark.parametrize("cls", CONVS)
def test_batches_from_dataloader_match_single_graphs(cls):
    conv = make(cls, "so2").eval()  # eval: batch norm uses running statistics, graphs independent
    data = []
    for seed in range(3):
        x, pos, edge_index, edge_attr, node_attr = inputs(conv, seed=seed)
        data.append(Data(x=x, pos=pos, edge_index=edge_index, edge_attr=edge_attr, node_attr=node_attr))
    batch = next(iter(DataLoader(data, batch_size=3)))
    out = conv(batch.x, batch.pos, batch.edge_index, batch.edge_attr, batch.node_attr)
    singles = torch.cat([conv(d.x, d.pos, d.edge_index, d.edge_attr, d.node_attr) for d in data])
    torch.testing.assert_close(out, singles, atol=1e-5, rtol=1e-5)
    assert isinstance(batch, Batch)


@KERNELS
def test_isolated_nodes_zero_length_edges_and_gradients(cls):
    conv = make(cls, "cone")
    x, pos, edge_index, edge_attr, node_attr = inputs(conv, num_nodes=12)
    edge_index = edge_index.clone()
    edge_index[:, edge_index.max(0).values >= 10] = 0  # nodes 10, 11 isolated
    edge_index[:, :3] = torch.tensor([[1, 2, 3], [1, 2, 3]])  # self-loops: zero-length edges
    pos[5] = pos[4]  # coincident points
    edge_index[:, 3] = torch.tensor([4, 5])
    x.requires_grad_(True)
    pos.requires_grad_(True)
    out = conv(x, pos, edge_index, edge_attr, node_attr)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[10:], conv.lin_root(x[10:]) + conv.bias_vector())  # no messages: self-interaction only
    out.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(pos.grad).all()
    for name, p in conv.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@KERNELS
def test_float32_and_float64(cls):
    conv = make(cls, "d3")
    out32 = conv(*inputs(conv))
    assert out32.dtype == torch.float32
    conv64 = copy.deepcopy(conv).double()
    out64 = conv64(*[a.double() if a.is_floating_point() else a for a in inputs(conv)])
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out64, atol=1e-4, rtol=1e-4)


@KERNELS
def test_state_dict_round_trip_and_reset_parameters(cls):
    conv = make(cls, "so2")
    args = inputs(conv)
    conv.eval()
    out = conv(*args)
    other = make(cls, "so2").eval()
    assert not torch.allclose(other(*args), out)
    state = conv.state_dict()
    assert not any("basis" in key for key in state), "bases are constants, not state"
    other.load_state_dict(state)
    torch.testing.assert_close(other(*args), out)
    conv.reset_parameters()
    assert not torch.allclose(conv(*args), out)


@pytest.mark.parametrize("cls", CONVS)
def test_repr_shows_irreps_and_group(cls):
    text = repr(make(cls, "cone"))
    assert cls.__name__ in text and "4x0e+2x1o+2x2e+1x0o" in text and "group=cone" in text


def test_bipartite(float64):
    conv = ImplicitConv("2x0e+1x1o", "1x0e+1x1o", "so2")
    g = torch.Generator().manual_seed(0)
    pos_s, pos_t = torch.randn(8, 3, generator=g), torch.randn(3, 3, generator=g)
    x_s = torch.randn(8, 5, generator=g)
    edge_index = torch.stack([torch.randint(0, 8, (15,), generator=g), torch.randint(0, 3, (15,), generator=g)])
    out = conv((x_s, None), (pos_s, pos_t), edge_index)
    assert out.shape == (3, 4)
    R = get_group("so2").sample(1)[0]
    D_in, D_out = irreps_D("2x0e+1x1o", R), irreps_D("1x0e+1x1o", R)
    out_g = conv((x_s @ D_in.T, None), (pos_s @ R.T, pos_t @ R.T), edge_index)
    assert (out_g - out @ D_out.T).abs().max() < 1e-10


def test_aggr_and_flow_kwargs():
    conv = ImplicitConv("2x0e", "2x0e", "o3", aggr="mean")
    assert "aggr=mean" in repr(conv)
    x, pos, edge_index = torch.randn(5, 2), torch.randn(5, 3), torch.tensor([[0, 1, 2, 4], [1, 2, 3, 1]])
    plain = ImplicitConv("2x0e", "2x0e", "o3").eval()
    flipped = ImplicitConv("2x0e", "2x0e", "o3", flow="target_to_source").eval()
    flipped.load_state_dict(plain.state_dict())
    torch.testing.assert_close(flipped(x, pos, edge_index.flip(0)), plain(x, pos, edge_index))


@pytest.mark.filterwarnings("ignore:Sparse")  # torch's notes on its sparse formats
@pytest.mark.parametrize("cls", CONVS)
def test_sparse_adjacency_and_edge_index_give_the_dense_result(float64, cls):
    """As in PyG: a sparse adj_t[target, source] (torch.sparse COO / CSR) or an EdgeIndex give the same output."""
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import coalesce

    conv = make(cls, "so2").eval()
    x, pos, edge_index, edge_attr, node_attr = inputs(conv)
    transposed, edge_attr = coalesce(edge_index.flip(0), edge_attr)  # row-major order of adj_t (by target, then source), no repeats
    edge_index = transposed.flip(0)
    expected = conv(x, pos, edge_index, edge_attr, node_attr)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.shape[1]), (10, 10))
    for adjacency in (adj_t, adj_t.to_sparse_csr(), EdgeIndex(edge_index, sparse_size=(10, 10))):
        torch.testing.assert_close(conv(x, pos, adjacency, edge_attr, node_attr), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"edge_index: expected a sparse adjacency adj_t of shape \(num_target, num_source\)"):
        conv(x, pos, torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.shape[1]), (10, 12)), edge_attr, node_attr)


def test_bad_input_raises_clear_errors():
    conv = make(ImplicitConv, "so2")
    x, pos, edge_index, edge_attr, node_attr = inputs(conv)
    with pytest.raises(ValueError, match="x: expected last dimension"):
        conv(x[:, :-1], pos, edge_index, edge_attr, node_attr)
    bad = pos.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="pos: contains NaN or inf"):
        conv(x, bad, edge_index, edge_attr, node_attr)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="pos: contains NaN or inf"):
        conv(x, bad, edge_index, edge_attr, node_attr)
    with pytest.raises(ValueError, match="edge_index: index out of range"):
        conv(x, pos, edge_index + 10, edge_attr, node_attr)
    with pytest.raises(ValueError, match="edge_attr: missing"):
        conv(x, pos, edge_index, None, node_attr)
    with pytest.raises(ValueError, match="node_attr: missing"):
        conv(x, pos, edge_index, edge_attr, None)
    with pytest.raises(ValueError, match="edge_attr: expected last dimension 4"):
        conv(x, pos, edge_index, edge_attr[:, :3], node_attr)
    with pytest.raises(ValueError, match="pos: expected shape"):
        conv(x, pos[:, :2], edge_index, edge_attr, node_attr)
    with pytest.raises(ValueError, match="pos: empty graph"):
        conv(x[:0], pos[:0], edge_index[:, :0], edge_attr[:0], node_attr[:0])
    plain = ImplicitConv(IN, OUT, "so2")
    with pytest.raises(ValueError, match="edge_attr: given, but the layer was built without edge_attr_irreps"):
        plain(x, pos, edge_index, edge_attr)
    with pytest.raises(ValueError, match="node_attr: given, but"):
        plain(x, pos, edge_index, node_attr=node_attr)
    with pytest.raises(ValueError, match="group: unknown group name 'so5'"):
        ImplicitConv(IN, OUT, "so5")
    with pytest.raises(ValueError, match="irreps_in: cannot parse"):
        ImplicitConv("16xq", OUT)
    with pytest.raises(TypeError, match="edge_index: expected dtype torch.long or torch.int32"):
        conv(x, pos, edge_index.float(), edge_attr, node_attr)
    with pytest.raises(ValueError, match=r"edge_index: expected shape \(2, num_edges\) or a sparse adjacency"):
        conv(x, pos, edge_index[:1], edge_attr, node_attr)


def test_no_edges_gives_zeros():
    conv = make(ImplicitConv, "so2")
    x, pos, edge_index, edge_attr, node_attr = inputs(conv)
    out = conv(x, pos, edge_index[:, :0], edge_attr[:0], node_attr)
    torch.testing.assert_close(out, conv.lin_root(x) + conv.bias_vector())
    bare = make(ImplicitConv, "so2", root_weight=False, bias=False)
    assert (bare(x, pos, edge_index[:, :0], edge_attr[:0], node_attr) == 0).all()
    assert torch.isfinite(conv.kernel.harmonics.batch_norm.running_var).all()


@pytest.mark.slow
@pytest.mark.parametrize("cls", CONVS)
def test_torch_compile_smoke(cls):
    conv = make(cls, "so2").eval()
    args = inputs(conv)
    compiled = torch.compile(conv, backend="aot_eager")  # traces dynamo + autograd; inductor adds only C++ build time
    torch.testing.assert_close(compiled(*args), conv(*args), atol=1e-5, rtol=1e-5)


@KERNELS
def test_zero_length_edges_have_exact_gradients(float64, cls):
    """Self-loops are zero-length edges: outputs and position gradients pass gradcheck, and adding
    them changes no position gradient (their messages do not depend on positions). A clamped norm
    gave per-edge gradients of 1e12 that cancelled every other contribution in float32."""
    conv = cls("2x0e+1x1o", "2x0e+1x1o", "so2", lmax=2)
    pos = torch.randn(8, 3)
    edge_index = knn_graph(pos, 3)
    loops = torch.cat([edge_index, torch.arange(8).repeat(2, 1)], dim=1)
    x = torch.randn(8, 5)
    conv(x, pos, loops)  # data-driven initialisation happens on the first call
    torch.autograd.gradcheck(lambda p: conv(x, p, loops), (pos.clone().requires_grad_(True),))
    grads = []
    for edges in (edge_index, loops):
        p = pos.clone().requires_grad_(True)
        conv(x, p, edges).pow(2).sum().backward()
        grads.append(p.grad)
    torch.testing.assert_close(grads[0].norm(), grads[1].norm(), rtol=0.5, atol=0)  # same order, finite
    # float32 and coincident distinct points: finite, of the size of the others (no 1 / epsilon)
    conv32 = cls("2x0e+1x1o", "2x0e+1x1o", "so2", lmax=2).float()
    p = pos.float().clone()
    p[1] = p[0]
    p.requires_grad_(True)
    edges = torch.cat([loops, torch.tensor([[0], [1]])], dim=1)
    conv32(x.float(), p, edges).pow(2).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().max() < 1e4


@pytest.mark.slow
@KERNELS
def test_compiles_whole_and_accepts_int32_indices(cls):
    """fullgraph=True: no graph break (value checks are skipped while compiling)."""
    conv = make(cls, "so2").eval()
    args = inputs(conv)
    compiled = torch.compile(conv, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(*args), conv(*args))
    x, pos, edge_index, edge_attr, node_attr = args
    torch.testing.assert_close(conv(x, pos, edge_index.int(), edge_attr, node_attr), conv(*args))


@pytest.mark.slow
def test_steerable_cnn_compiles_whole_in_training_and_evaluation():
    from pyg_implicit.models import SteerableCNN

    model = random_head(SteerableCNN("2x0e+1x1o", "4x0e+2x1o", "1x1o", "so2", num_layers=2, lmax=1, edge_attr_irreps="2x0e"))
    x, pos, edge_index = torch.randn(20, 5), torch.randn(20, 3), None
    edge_index = knn_graph(pos, 4)
    edge_attr = torch.randn(edge_index.shape[1], 2)
    model(x, pos, edge_index, edge_attr)  # data-driven initialisation before compiling
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    compiled(x, pos, edge_index, edge_attr).sum().backward()  # training mode: running statistics update in the graph
    model.eval()
    torch.testing.assert_close(compiled(x, pos, edge_index, edge_attr), model(x, pos, edge_index, edge_attr))
