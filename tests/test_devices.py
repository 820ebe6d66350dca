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
from model_cases import CASES

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_representation_matrices_follow_the_device_of_the_elements():
    R = get_group("o3").sample(4)
    D = irreps_D("1x0e+1x1o+1x2e+1x3o", R.to("meta"))
    assert D.device.type == "meta" and D.shape == (4, 16, 16)
    x = torch.randn(5, 4, device="meta")
    assert irreps_action("1x0e+1x1o")(x, R[0]).device.type == "meta"


KERNELS = {"implicit": {}, "implicit_factorized": {"form": "factorized"}, "standard": {"kernel": "standard"}}


@cuda
@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("group", ["o3", "so2", "c4"])
def test_model_on_cuda_matches_the_cpu_and_is_equivariant_there(float64, group, kernel):
    torch.manual_seed(0)
    model = random_head(SteerableCNN("2x0e+1x1o", "4x0e+2x1o", "1x1o", group, num_layers=2, lmax=1, **KERNELS[kernel]))
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


@cuda
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_trains_on_cuda_as_on_the_cpu(float64, name):
    """One training-mode pass (data-driven initialisation, batch statistics), then evaluation: the
    same numbers on both devices, and the same gradients. Dropout is off: each device draws its masks
    from its own generator."""
    build, run = CASES[name]
    torch.manual_seed(0)
    cpu_model = build()
    torch.manual_seed(0)
    gpu_model = build().cuda()
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        model.train()
        run(model, device).pow(2).sum().backward()
        model.eval()
    with torch.no_grad():
        torch.testing.assert_close(run(gpu_model, "cuda").cpu(), run(cpu_model, "cpu"))
    for (key, p_cpu), p_gpu in zip(cpu_model.named_parameters(), gpu_model.parameters()):
        assert p_gpu.grad is not None, key
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, msg=key)
