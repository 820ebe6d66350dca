import copy
import math

import pytest
import torch

from pyg_implicit.groups import get_group, rotation_z
from pyg_implicit.nn import (
    EquivariantLinear,
    EquivariantMLP,
    EquivariantTensorProduct,
    HarmonicEmbedding,
    ImplicitKernel,
    InvariantGate,
    OrbitELU,
    QuotientELU,
    harmonic_polynomials,
)
from pyg_implicit.testing import assert_equivariant, equivariance_error

GROUPS = ["o3", "so3", "so2", "cone", "fullcyl", "d4", "mirror", "td", "ih", "trivial"]
IN, OUT = "3x0e+2x1o+2x2e+1x0o+1x1e", "2x0e+2x1o+1x2e+1x1e"


@pytest.mark.parametrize("name", GROUPS)
def test_linear_equivariant(float64, name):
    layer = EquivariantLinear(IN, OUT, name)
    assert_equivariant(layer, name, (torch.randn(20, layer.irreps_in.dim),), (IN,), OUT)


@pytest.mark.parametrize("name", GROUPS)
def test_tensor_product_equivariant_and_right_matches(float64, name):
    tp = EquivariantTensorProduct(IN, "2x0e+1x1o+1x2e", OUT, name)
    x1, x2 = torch.randn(20, tp.irreps_in1.dim), torch.randn(20, tp.irreps_in2.dim)
    assert_equivariant(tp, name, (x1, x2), (IN, "2x0e+1x1o+1x2e"), OUT)
    torch.testing.assert_close(torch.einsum("ei,eio->eo", x1, tp.right(x2)), tp(x1, x2))


@pytest.mark.parametrize("name", ["so2", "c4", "o3"])
def test_factorized_tensor_product_is_the_full_one_with_rank_one_weights(float64, name):
    """W_uvkw = U_uvw c_vk: copying those products into a full layer gives the same map."""
    factorized = EquivariantTensorProduct(IN, "2x0e+1x1o+1x2e", OUT, name, path_weights="factorized")
    full = EquivariantTensorProduct(IN, "2x0e+1x1o+1x2e", OUT, name)
    with torch.no_grad():
        full.weight.copy_(torch.cat([w.flatten() for *_, w, _ in factorized._paths()]))
    x1, x2 = torch.randn(20, factorized.irreps_in1.dim), torch.randn(20, factorized.irreps_in2.dim)
    torch.testing.assert_close(factorized(x1, x2), full(x1, x2))
    assert 0.5 < EquivariantTensorProduct(IN, "1x0e+1x1o+1x2e", OUT, name, path_weights="factorized")(
        torch.randn(4000, full.irreps_in1.dim), torch.randn(4000, 9)).std() < 2
    with pytest.raises(ValueError, match="path_weights"):
        EquivariantTensorProduct(IN, "1x0e", OUT, name, path_weights="low-rank")


@pytest.mark.parametrize("name", ["so2", "o3"])
def test_component_normalisation(name):
    """Unit-variance inputs give roughly unit-variance outputs at initialisation."""
    x1, x2 = torch.randn(4000, EquivariantLinear(IN, OUT).irreps_in.dim), torch.randn(4000, 9)
    assert 0.5 < EquivariantLinear(IN, OUT, name)(x1).std() < 2
    assert 0.5 < EquivariantTensorProduct(IN, "1x0e+1x1o+1x2e", OUT, name)(x1, x2).std() < 2


@pytest.mark.parametrize("name", ["so2", "c4", "o3"])
def test_weights_are_stored_at_fan_in_scale_and_old_checkpoints_convert(name):
    """Weights N(0, 1/fan_in) as in torch.nn.Linear (the forward pass carries no 1/sqrt(fan_in));
    a version-1 state dict (e3nn's unit-scale weights) loads to the map it stored."""
    linear = EquivariantLinear("32x0e+16x1o", "32x0e+16x1o", name)
    reference = torch.nn.Linear(48, 48)
    assert 0.5 < linear.weight.std() / (48**-0.5) < 2 and linear.weight.std() < 3 * reference.weight.std()
    tp = EquivariantTensorProduct(IN, "2x0e+1x1o", OUT, name)
    factorized = EquivariantTensorProduct(IN, "2x0e+1x1o", OUT, name, path_weights="factorized")
    x = torch.randn(8, 23)
    for layer, inputs in [(linear, (torch.randn(8, 80),)), (tp, (x, torch.randn(8, 5))), (factorized, (x, torch.randn(8, 5)))]:
        old = layer.state_dict()
        old["weight"] = old["weight"] / layer.weight_init_std  # what version 1 stored for the same map
        old._metadata[""]["version"] = 1
        fresh = copy.deepcopy(layer)
        fresh.reset_parameters()
        fresh.load_state_dict(old)
        torch.testing.assert_close(fresh(*inputs), layer(*inputs))
        fresh.load_state_dict(layer.state_dict())  # version 2: taken as it is
        torch.testing.assert_close(fresh(*inputs), layer(*inputs))


def test_bias_lives_in_invariant_subspace(float64):
    # for SO(2) the z component of a vector is invariant and may carry a bias; for O(3) it may not
    so2 = EquivariantLinear("1x0e", "1x1o", "so2")
    assert so2.bias is not None and so2.bias.numel() == 1
    assert EquivariantLinear("1x0e", "1x1o", "o3").bias is None
    with torch.no_grad():
        so2.bias.fill_(1.0)
        so2.weight.zero_()
    out = so2(torch.zeros(1, 1))
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 2] != 0  # e3nn 0.6 orders 1o as (x, y, z)


@pytest.mark.parametrize("group", ["o3", "so3", "so2"])
def test_linear_gives_a_constant_to_scalars_no_input_reaches(float64, group):
    """e3nn 0.6 cannot build a bias on such an output; the layer adds its own constant (a regression test)."""
    layer = EquivariantLinear("1x1o", "8x0e+4x1o", group)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    out = layer(torch.zeros(2, 3))
    assert out[:, :8].abs().min() > 0 and torch.equal(out[0], out[1])
    assert_equivariant(layer, group, (torch.randn(5, 3),), ["1x1o"], "8x0e+4x1o", translate=False)


@pytest.mark.parametrize("name", ["o3", "so2", "d3"])
def test_gate_and_mlp_equivariant(float64, name):
    gate = InvariantGate(IN, name)
    x = torch.randn(30, gate.irreps_in.dim)
    assert_equivariant(gate, name, (x,), (IN,), IN)
    mlp = EquivariantMLP(IN, "4x0e+2x1o+2x2e", OUT, num_layers=3, group=name)
    assert_equivariant(mlp, name, (x,), (IN,), OUT)


def test_gate_is_nonlinear_in_non_scalar_fields(float64):
    """For O(3) with a vector input, the scalar output depends nonlinearly on |x| (not affinely)."""
    gate = InvariantGate("1x0e+1x1o", "o3")
    r = torch.linspace(0.1, 3.0, 30)
    x = torch.cat([torch.zeros(30, 1), r[:, None] * torch.tensor([[0.0, 1.0, 0.0]])], dim=1)
    y = gate(x)[:, 0]
    second_difference = y[2:] - 2 * y[1:-1] + y[:-2]
    assert second_difference.abs().max() > 1e-4


def test_harmonic_polynomials_are_homogeneous_and_equivariant(float64):
    x = torch.randn(50, 3)
    P = harmonic_polynomials(x, 3)
    for l in range(4):
        torch.testing.assert_close(harmonic_polynomials(2.5 * x, 3)[:, l * l : (l + 1) ** 2], 2.5**l * P[:, l * l : (l + 1) ** 2])
    assert torch.equal(harmonic_polynomials(torch.zeros(1, 3), 3)[0, 1:], torch.zeros(15))
    embedding = HarmonicEmbedding(3)
    errors = equivariance_error(lambda v: harmonic_polynomials(v, 3), get_group("o3").sample(4), (x,), ("1x1o",), embedding.irreps_out)
    assert errors.max() < 1e-12
    # batch norm in training mode: statistics are rotation invariant, so it stays equivariant
    errors = equivariance_error(embedding, get_group("o3").sample(4), (x,), ("1x1o",), embedding.irreps_out)
    assert errors.max() < 1e-10


def test_quotient_elu_error_is_small_but_not_zero(float64):
    """The paper's quotient ELU is only approximately equivariant: measure it."""
    act = QuotientELU("4x0e+4x1o+4x2e", resolution=20)
    x = torch.randn(50, act.irreps_in.dim)
    scale = act(x).abs().max()
    relative = {}
    for name in ["o3", "so2", "c4"]:
        relative[name] = float(equivariance_error(act, get_group(name).sample(8), (x,), (act.irreps_in,), act.irreps_out).max() / scale)
    assert 1e-12 < relative["so2"] < 0.1, relative
    assert relative["o3"] < 0.1, relative
    with pytest.raises(ValueError, match="irreps: QuotientELU needs"):
        QuotientELU("4x0e+4x1e")


@pytest.mark.parametrize("name", ["c4", "d4", "oh"])
def test_orbit_elu_is_exactly_equivariant_for_its_group_only(name):
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        torch.set_default_dtype(dtype)
        try:
            act = OrbitELU("3x1o+3x0e+3x2e", name)  # blocks in any order
            x = torch.randn(50, act.irreps_in.dim)
            assert act.num_points % get_group(name).order == 0 and act.to_grid.dtype == dtype
            assert_equivariant(act, name, (x,), (act.irreps_in,), act.irreps_out, n_samples=8, tolerance=tolerance)
        finally:
            torch.set_default_dtype(torch.float32)
    # an eighth of a turn lies outside all three groups: the grid is not closed under it
    outside = rotation_z(math.pi / 4)[None]
    act = OrbitELU("3x1o+3x0e+3x2e", name).double()
    x = torch.randn(50, act.irreps_in.dim, dtype=torch.float64)
    assert equivariance_error(act, outside, (x,), (act.irreps_in,), act.irreps_out).max() > 1e-2


def test_orbit_elu_with_a_linear_activation_is_a_multiple_of_the_identity(float64):
    """Y has full column rank: projecting the samples back recovers the coefficients."""
    act = OrbitELU("2x0e+2x1o+2x2e+2x3o", "c4", act=lambda t: t)
    x = torch.randn(10, act.irreps_in.dim)
    y = act(x)
    torch.testing.assert_close(y, x * (y / x).mean(), rtol=0, atol=1e-12)


def test_orbit_elu_bad_inputs():
    with pytest.raises(ValueError, match="group: OrbitELU samples the orbits of a finite group, got so2"):
        OrbitELU("2x0e+2x1o", "so2")
    with pytest.raises(ValueError, match="irreps: OrbitELU needs"):
        OrbitELU("2x0e+1x1o", "c4")
    with pytest.raises(ValueError, match="num_points: 4 points"):
        OrbitELU("1x0e+1x1o+1x2e", "c4", num_points=4)


def test_quotient_elu_kernel_builds_and_is_approximately_equivariant(float64):
    kernel = ImplicitKernel("2x0e+1x1o", "2x0e+1x1o", "so2", lmax=2, hidden_irreps="4x0e+4x1o+4x2e", activation="quotient_elu")
    vec, f = torch.randn(40, 3), torch.randn(40, 5)
    errors = equivariance_error(kernel, get_group("so2").sample(4), (f, vec), ("2x0e+1x1o", "1x1o"), "2x0e+1x1o")
    assert errors.max() < 0.1 * kernel(f, vec).abs().max()


def fit_radial_profile(mlp_layers: int) -> tuple:
    torch.manual_seed(0)
    kernel = ImplicitKernel("0e", "0e", "o3", lmax=2, hidden_irreps="16x0e+8x1o+8x2e", mlp_layers=mlp_layers)
    optimizer = torch.optim.Adam(kernel.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)

    def sample(n):
        direction = torch.randn(n, 3, generator=g)
        r = 2 * torch.rand(n, 1, generator=g)
        return r * direction / direction.norm(dim=1, keepdim=True), r[:, 0]

    target = lambda r: torch.sin(3 * r) * torch.exp(-r * r)  # noqa: E731
    for step in range(600):
        vec, r = sample(256)
        loss = (kernel.materialize(vec)[:, 0, 0] - target(r)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    kernel.eval()
    vec, r = sample(2000)
    with torch.no_grad():
        mse = (kernel.materialize(vec)[:, 0, 0] - target(r)).pow(2).mean()
    return float(mse), float(target(r).var())


@pytest.mark.slow
def test_o3_kernel_fits_a_non_polynomial_radial_profile():
    """The 0e -> 0e O(3) kernel learns sin(3r) exp(-r^2) on r in [0, 2]: the MLP is not affine.

    A one-layer (linear) implicit kernel is a fixed polynomial times the Gaussian shell and
    cannot: measured 0.18% vs 37% of the target variance.
    """
    mse, variance = fit_radial_profile(mlp_layers=3)
    assert mse < 0.02 * variance, (mse, variance)
    mse_linear, _ = fit_radial_profile(mlp_layers=1)
    assert mse_linear > 0.1 * variance, (mse_linear, variance)


@pytest.mark.parametrize("chunk_elements", [1 << 22, 16])
def test_dense_bilinear_map_passes_gradcheck_and_gradgradcheck(float64, monkeypatch, chunk_elements):
    """The subgroup path's custom backward (recomputed in row chunks) is exact to second order."""
    from pyg_implicit.nn import tensor_product

    monkeypatch.setattr(tensor_product, "_CHUNK_ELEMENTS", chunk_elements)  # 16: many chunks of one or two rows
    x1, x2, T = torch.randn(5, 4, requires_grad=True), torch.randn(5, 3, requires_grad=True), torch.randn(4, 3, 2, requires_grad=True)
    bilinear = tensor_product._DenseBilinear.apply
    torch.testing.assert_close(bilinear(x1, x2, T), torch.einsum("ea,eb,abo->eo", x1, x2, T))
    torch.autograd.gradcheck(bilinear, (x1, x2, T))
    torch.autograd.gradgradcheck(bilinear, (x1, x2, T))
    tp = EquivariantTensorProduct("1x0e+1x1o", "1x0e+1x1o", "1x0e+1x1o", group="so2")
    a, b = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    torch.autograd.gradgradcheck(tp, (a, b))


@pytest.mark.parametrize("chunk_elements", [1 << 22, 16])
def test_gathered_bilinear_map_equals_gathering_and_passes_gradgradcheck(float64, monkeypatch, chunk_elements):
    """x1 contracted once per node (edges grouped by source in slots) equals x1[index] per edge:
    values, gradients and second derivatives, for degrees 0 to many and several slot widths."""
    from pyg_implicit.nn import tensor_product

    monkeypatch.setattr(tensor_product, "_CHUNK_ELEMENTS", chunk_elements)
    x1, T = torch.randn(6, 4, requires_grad=True), torch.randn(4, 3, 2, requires_grad=True)
    index = torch.tensor([5, 0, 5, 5, 2, 5, 0, 5, 5, 5, 5, 5, 3])  # node 5: nine edges; nodes 1, 4: none
    x2 = torch.randn(index.numel(), 3, requires_grad=True)
    gathered = lambda a, b, c: tensor_product._GatheredBilinear.apply(a, index, b, c)  # noqa: E731
    torch.testing.assert_close(gathered(x1, x2, T), torch.einsum("ea,eb,abo->eo", x1[index], x2, T))
    torch.autograd.gradcheck(gathered, (x1, x2, T))
    torch.autograd.gradgradcheck(gathered, (x1, x2, T))
    tp = EquivariantTensorProduct("1x0e+1x1o", "1x0e+1x1o", "1x0e+1x1o", group="c4")
    f, h = torch.randn(6, 4), torch.randn(index.numel(), 4)
    torch.testing.assert_close(tp(f, h, index=index), tp(f[index], h))


def test_tensor_product_has_one_parameterisation_for_every_group():
    """O(3) included: the weights of e3nn's FullyConnectedTensorProduct (one per path and channel
    triple), over the group's own bilinear basis; the state dict does not depend on the group."""
    from e3nn import o3

    irreps = ("2x0e+1x1o", "1x0e+1x1o+1x2e", "1x0e+2x1o")
    keys = {name: sorted(EquivariantTensorProduct(*irreps, name).state_dict()) for name in ("o3", "so3", "so2", "c4")}
    assert all(k == ["weight"] for k in keys.values()), keys
    assert EquivariantTensorProduct(*irreps, "o3").weight_numel == o3.FullyConnectedTensorProduct(*irreps).weight_numel


def test_linear_has_one_parameterisation_for_every_group():
    """The state dict says what it holds (path weights, invariant bias) and does not depend on the group."""
    keys = {name: sorted(EquivariantLinear("2x0e+1x1o", "1x0e+2x1o", name).state_dict()) for name in ("o3", "so3", "so2", "c4", "trivial")}
    assert all(k == ["bias", "weight"] for k in keys.values()), keys
    o3_linear = EquivariantLinear("2x0e+1x1o", "1x0e+2x1o", "o3")
    assert o3_linear.weight.numel() == 2 * 1 + 1 * 2  # e3nn's o3.Linear: one weight per (in, out) copy of equal irreps
