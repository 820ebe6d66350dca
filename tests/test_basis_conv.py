import pytest
import torch

from pyg_implicit.groups import get_group
from pyg_implicit.models import SteerableImageCNN
from pyg_implicit.nn.basis_conv import BasisConv2d, steerable_grid_basis
from pyg_implicit.nn.dense_conv import ImplicitConv2d, transform_field_image
from pyg_implicit.nn.image_action import transform_image

IN, OUT = "2x0e+1x1o+1x2e", "1x0e+2x1o+1x2e+1x1e"
MIRROR = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # y -> -y on the image, in d4 and not in c4


@pytest.mark.parametrize("group", ["c4", "d4"])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_basis_conv_is_exactly_equivariant_on_the_grid(group, dtype, tolerance):
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        conv = BasisConv2d(IN, OUT, 3, group, padding=1)
        with torch.no_grad():
            conv.bias.normal_()
        x = torch.randn(2, conv.irreps_in.dim, 9, 9)
        y = conv(x)
        for R in get_group(group).coset_representatives:
            moved = conv(transform_field_image(x, IN, R))
            torch.testing.assert_close(moved, transform_field_image(y, OUT, R), rtol=0, atol=tolerance * y.abs().max().item())
    finally:
        torch.set_default_dtype(default)


def test_c4_basis_conv_is_not_mirror_equivariant(float64):
    """The C4 space is larger than the D4 one: a random C4 kernel breaks the mirror symmetry."""
    conv = BasisConv2d(IN, OUT, 3, "c4")
    x = torch.randn(2, conv.irreps_in.dim, 7, 7)
    moved = conv(transform_field_image(x, IN, MIRROR))
    assert (moved - transform_field_image(conv(x), OUT, MIRROR)).abs().max() > 1e-2


def test_the_basis_is_orthonormal_and_holds_every_implicit_kernel(float64):
    basis = steerable_grid_basis("0e+1o+2e", "0e+1o+2e", 3, "c4").flatten(1)
    assert basis.shape[0] == 183 and steerable_grid_basis("0e+1o+2e", "0e+1o+2e", 3, "d4").shape[0] == 93  # as examples/kernel_span.py
    torch.testing.assert_close(basis @ basis.T, torch.eye(183), rtol=0, atol=1e-12)
    implicit = ImplicitConv2d("0e+1o+2e", "0e+1o+2e", 3, "c4").weight().detach().flatten()
    torch.testing.assert_close(basis.T @ (basis @ implicit), implicit, rtol=0, atol=1e-12)  # inside the span


def test_basis_conv_starts_at_the_scale_of_conv2d(float64):
    torch.manual_seed(0)
    conv = BasisConv2d("8x0e+8x1o+8x2e", "8x0e+8x1o+8x2e", 3, "c4")
    W = conv.weight().detach()
    fan_in = conv.irreps_in.dim * 9
    assert 0.7 < float(W.pow(2).mean() * fan_in) < 1.3
    assert sum(p.numel() for p in conv.weights) == 64 * 183


def test_basis_conv_errors():
    with pytest.raises(ValueError, match="group: expected a finite group that maps the pixel grid onto itself"):
        BasisConv2d(IN, OUT, 3, "so2")
    with pytest.raises(ValueError, match="kernel_size: expected a positive int"):
        BasisConv2d(IN, OUT, 0, "c4")
    with pytest.raises(ValueError, match="x: expected shape"):
        BasisConv2d(IN, OUT, 3, "c4")(torch.randn(4, 12, 5))


@pytest.mark.parametrize("group", ["c4", "d4"])
def test_image_cnn_with_basis_kernels_is_invariant_on_the_grid(float64, group):
    model = SteerableImageCNN("2x0e+1x1o+1x2e", group, kernel="basis").eval()
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    for R in get_group(group).coset_representatives:
        torch.testing.assert_close(model(transform_image(x, R)), y, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="kernel: 'basis' takes no kernel keyword arguments"):
        SteerableImageCNN("2x0e", group, kernel="basis", kernel_hidden_irreps="1x0e")
    with pytest.raises(ValueError, match="kernel: expected 'implicit' or 'basis'"):
        SteerableImageCNN("2x0e", group, kernel="standard")
