import os
import sys

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (``-n N``) every worker is a process of its own: share the cores between
    them instead of letting each start one thread per core (N x cores threads oversubscribe them).
    ``examples/`` goes on the import path, so that a test imports a script's functions (``from
    train_images import main``) as the scripts import one another."""
    sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


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


def run_example(script: str, *args: str, timeout: int = 300) -> None:
    """Run ``examples/<script>`` in a fresh interpreter (one CPU thread, the checkout on the path); fail with its stderr."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, os.path.join(root, "examples", script), *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
