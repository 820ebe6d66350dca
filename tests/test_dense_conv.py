import math

import pytest
import torch
import torch.nn.functional as F

from pyg_implicit.groups import get_group, rotation_z
from pyg_implicit.nn.dense_conv import ImplicitConv2d, ImplicitConv3d, transform_field_image

MIRROR = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # d<N>'s flip: a half-turn about x maps (x, y) to (x, -y)


def _grid_elements(group):
    elements = [rotation_z(math.pi / 2 * k).double() for k in range(4)]
    return elements + [MIRROR @ R for R in elements] if group == "d4" else elements


@pytest.mark.parametrize("group", ["c4", "d4", "so2", "o2"])
def test_dense_conv_is_exactly_equivariant_on_the_grid(float64, group):
    conv = ImplicitConv2d("2x0e+1x1o", "3x0e+2x1o+1x2e", 5, group, padding=2).eval()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 5, 13, 13)
    y = conv(x)
    for R in _grid_elements("d4" if group in ("d4", "o2") else "c4"):
        assert get_group(group).contains(R)
        torch.testing.assert_close(conv(transform_field_image(x, "2x0e+1x1o", R)), transform_field_image(y, conv.irreps_out, R), rtol=0, atol=1e-11)


def test_kernel_weights_satisfy_the_constraint(float64):
    """K(R^-1 u) = rho_out(R)^T K(u) rho_in(R) on the window: the weight is the kernel at the grid centres."""
    conv = ImplicitConv2d("1x0e+1x1o", "1x1o+1x2e", 3, "c4").eval()
    W = conv.weight()  # [d_out, d_in, 3, 3]
    R = rotation_z(math.pi / 2)
    from pyg_implicit.groups import irreps_D

    rotated = torch.rot90(W, 1, dims=(-2, -1))  # rotated[u] = W[R^-1 u]
    expected = torch.einsum("ao,abij,bc->ocij", irreps_D(conv.irreps_out, R), W, irreps_D(conv.irreps_in, R))
    torch.testing.assert_close(rotated, expected, rtol=0, atol=1e-12)


def test_dense_conv_for_c4_is_not_equivariant_to_other_rotations(float64):
    conv = ImplicitConv2d("1x0e+1x1o", "1x0e+1x1o", 3, "c4", padding=1).eval()
    x = torch.randn(1, 4, 9, 9)
    R = rotation_z(math.pi / 2).double() @ MIRROR  # a grid symmetry outside C4
    assert (conv(transform_field_image(x, "1x0e+1x1o", R)) - transform_field_image(conv(x), "1x0e+1x1o", R)).abs().max() > 1e-3


def test_so2_error_at_other_angles_is_the_resampling_error(float64):
    """At 45 degrees only interpolation breaks equivariance: ~4% on smooth images, vs 1e-15 at 90 degrees."""
    torch.manual_seed(0)
    conv = ImplicitConv2d("1x0e+1x1o", "2x0e+1x1o", 5, "so2", padding=2).eval()
    c = torch.linspace(-1, 1, 33)
    X, Y = torch.meshgrid(c, c, indexing="ij")
    disk = (X**2 + Y**2) < 0.6
    x = torch.randn(4, 4, 33, 33)
    for _ in range(4):
        x = F.avg_pool2d(x, 3, 1, 1)
    x = x * disk
    y = conv(x)
    for degrees, low, high in [(45, 1e-3, 0.1), (30, 1e-3, 0.1), (90, 0, 1e-12)]:
        R = rotation_z(math.radians(degrees))
        diff = conv(transform_field_image(x, "1x0e+1x1o", R)) - transform_field_image(y, "2x0e+1x1o", R)
        rel = diff[..., disk].norm() / y[..., disk].norm()
        assert low <= rel < high, (degrees, rel)


def test_dense_conv_3d_is_equivariant_to_the_cube_group(float64):
    conv = ImplicitConv3d("1x0e+1x1o", "1x0e+1x1o", 3, "o", padding=1).eval()
    x = torch.randn(1, 4, 5, 5, 5)
    y = conv(x)
    from pyg_implicit.groups import irreps_D

    # a quarter turn about z moves the voxel axes (x, y) = (dim -3, dim -2)
    R = rotation_z(math.pi / 2)
    move = lambda t, irreps: torch.einsum("ij,bjxyz->bixyz", irreps_D(irreps, R), torch.rot90(t, 1, dims=(-3, -2)))  # noqa: E731
    torch.testing.assert_close(conv(move(x, "1x0e+1x1o")), move(y, "1x0e+1x1o"), rtol=0, atol=1e-11)


def test_dense_conv_errors():
    conv = ImplicitConv2d("1x0e+1x1o", "1x0e", 3, "c4")
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 4, S, S\)"):
        conv(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="x"):
        conv(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="plane"):
        transform_field_image(torch.randn(1, 1, 5, 5), "1x0e", get_group("so3").sample(1)[0])


def test_kernel_span_counts_the_steerable_space_and_what_an_implicit_kernel_reaches():
    from kernel_span import span_table

    # C4, one 0e, 1o, 2e field in and out: 183 steerable 3x3 kernels, all reached by a width-1 G-MLP with 183
    # weights in B; twice as many at width 2 reach nothing more. D4 needs width 2 for all of its 93.
    rows = span_table(["c4", "d4"], ["0e+1o+2e", "2x0e+2x1o+2x2e"])
    found = {(r["group"], r["hidden"]): (r["steerable"], r["by_B"], r["B_weights"]) for r in rows}
    assert found == {("c4", "0e+1o+2e"): (183, 183, 183), ("c4", "2x0e+2x1o+2x2e"): (183, 183, 366),
                     ("d4", "0e+1o+2e"): (93, 82, 92), ("d4", "2x0e+2x1o+2x2e"): (93, 93, 184)}  # fmt: skip
    assert torch.get_default_dtype() == torch.float32  # restored
