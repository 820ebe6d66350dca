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
    """``model`` with every SteerableCNN head's last layer drawn at random instead of zero: tests of
    equivariance, devices and checkpoints then compare non-trivial outputs."""
    from pyg_implicit.models import SteerableCNN

    for module in model.modules():
        if isinstance(module, SteerableCNN):
            module.head.layers[-1].reset_parameters()
    return model
