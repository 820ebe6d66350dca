"""The reference maths and the layers on other devices: the meta device always, CUDA when present."""
import pytest
import torch

from pyg_implicit.graph import knn_graph
from pyg_implicit.groups import get_group, irreps_D
from pyg_implicit.models import SteerableCNN
from pyg_implicit.nn.dense_conv import transform_field_image
from pyg_implicit.nn.equivariance_loss import irreps_action
from pyg_implicit.testing import assert_equivariant
from conftest import random_head

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_representation_matrices_follow_the_device_of_the_elements():
    R = get_group("o3").sample(4)
    D = irreps_D("1x0e+1x1o+1x2e+1x3o", R.to("meta"))
    assert D.device.type == "meta" and D.shape == (4, 16, 16)
    x = torch.randn(5, 4, device="meta")
    assert irreps_action("1x0e+1x1o")(x, R[0]).device.type == "meta"


@cuda
@pytest.mark.parametrize("group", ["o3", "so2", "c4"])
def test_model_on_cuda_matches_the_cpu_and_is_equivariant_there(float64, group):
    torch.manual_seed(0)
    model = random_head(SteerableCNN("2x0e+1x1o", "4x0e+2x1o", "1x1o", group, num_layers=2, lmax=1))
    pos = torch.randn(30, 3)
    edge_index = knn_graph(pos, 5)
    x = torch.randn(30, 5)
    model.eval()  # the data-driven initialisation needs training mode: it stays pending, the same on both devices
    cpu = model(x, pos, edge_index)
    gpu = model.cuda()(x.cuda(), pos.cuda(), edge_index.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu)
    args = (x.cuda(), pos.cuda(), edge_index.cuda())
    assert_equivariant(model, group, args, ("2x0e+1x1o", "cartesian_points", None), "1x1o", tolerance=1e-9)


@cuda
def test_field_image_transform_on_cuda():
    x = torch.randn(2, 4, 9, 9, device="cuda")
    R = get_group("c4").sample(1)[0]
    moved = transform_field_image(x, "1x0e+1x1o", R)
    torch.testing.assert_close(moved.cpu(), transform_field_image(x.cpu(), "1x0e+1x1o", R))
