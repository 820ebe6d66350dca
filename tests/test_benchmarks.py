"""The benchmark scripts' own logic (their measurements live in BENCHMARKS*.md, not in tests)."""
import importlib.util
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_times_a_step_and_renders_rows():
    train_step = load("train_step")

    class Batch(dict):
        def to(self, device):
            return Batch({k: v.to(device) for k, v in self.items()})

    batch = Batch(x=torch.randn(8, 3), y=torch.randn(8, 1))

    def loss_fn(model, b):
        return (model(b["x"]) - b["y"]).pow(2).mean(), 8

    seconds = train_step.step_seconds(lambda: torch.nn.Linear(3, 1), batch, loss_fn, "cpu", steps=2)
    assert 0 < seconds < 10
    rows = [{"task": "nbody", "model": "mpnn", "device": "cpu", "step_s": 0.0165, "epoch_s": 0.396},
            {"task": "modelnet", "model": "implicit-so2", "device": "cuda", "step_s": 0.531, "epoch_s": 130.7, "transform_s_per_shape": 0.083}]
    table = train_step.render(rows, "python benchmarks/train_step.py", "x86_64 CPU", "2.13.0")
    lines = table.splitlines()
    assert "| nbody | mpnn | cpu | 16.5 | 0.4 | 1.3 min | - |" in lines
    assert "| modelnet | implicit-so2 | cuda | 531.0 | 130.7 | 7.3 h | 654 |" in lines
