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
