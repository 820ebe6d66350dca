import pytest
import torch


@pytest.fixture
def float64():
    """Build modules and tensors in float64 (the bases are then exact to ~1e-15)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random_head(model):
    """``model`` with every output layer that starts at zero (``zero_output``) drawn at random:
    tests of equivariance, devices and checkpoints then compare non-trivial outputs."""
    from pyg_implicit.models import MPNN, SEGNN, SteerableCNN

    for module in model.modules():
        if isinstance(module, SteerableCNN):
            module.head.layers[-1].reset_parameters()
        elif isinstance(module, SEGNN):
            module.head_2.tensor_product.reset_parameters()
        elif isinstance(module, MPNN):
            module.head[-1].reset_parameters()
    return model
