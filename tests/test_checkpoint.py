"""Checkpoints load with weights_only=True, rebuild every model from plain configuration, refuse code."""
import io
import os

import pytest
import torch

from pyg_implicit import load_model, save_model
from pyg_implicit.checkpoint import load_checkpoint, model_config
from pyg_implicit.groups import get_group
from pyg_implicit.models import SteerableCNN
from model_cases import C6, CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_round_trips_through_a_weights_only_file(tmp_path, name):
    build, run = CASES[name]
    torch.manual_seed(0)
    model = build()
    model.train()
    with torch.no_grad():
        run(model)  # data-driven initialisation (kernel shell width, running statistics) happens here
    model.eval()
    with torch.no_grad():
        expected = run(model)
    path = str(tmp_path / "model.pt")
    save_model(model, path)
    torch.load(path, weights_only=True)  # plain data only
    loaded = load_model(path).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(run(loaded), expected)


def test_user_defined_group_is_saved_by_its_generators(tmp_path):
    model = SteerableCNN("1x0e", "2x0e+1x1o", "1x0e", C6, num_layers=1, lmax=1)
    config = model_config(model)["config"]
    assert config["group"]["group"] == "my_c6" and isinstance(config["group"]["discrete_generators"], torch.Tensor)
    save_model(model, str(tmp_path / "m.pt"))
    assert load_model(str(tmp_path / "m.pt")).group == C6
    assert model_config(SteerableCNN("1x0e", "2x0e", "1x0e", "so2", num_layers=1))["config"]["group"] == "so2"
    named = SteerableCNN("1x0e", "2x0e", "1x0e", get_group("so2"), num_layers=1)
    assert model_config(named)["config"]["group"] == {"group": "so2"}  # a catalogue group is saved by name


class _Payload:
    """Unpickling this runs code (here: writes a file)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_carrying_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = str(tmp_path / "evil.pt")
    torch.save({"format": "pyg_implicit.model", "state_dict": {}, "payload": _Payload(str(marker))}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_model(path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_corrupt_or_foreign_files_get_clear_errors(tmp_path):
    truncated = tmp_path / "truncated.pt"
    buffer = io.BytesIO()
    torch.save({"a": torch.ones(100)}, buffer)
    truncated.write_bytes(buffer.getvalue()[:50])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(str(truncated))
    plain = tmp_path / "plain.pt"
    torch.save({"a": 1}, plain)
    with pytest.raises(ValueError, match="not a pyg_implicit model file"):
        load_model(str(plain))
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(TypeError, match="not a saveable model"):
        save_model(torch.nn.Linear(2, 2), str(tmp_path / "x.pt"))
    assert not os.path.exists(tmp_path / "x.pt")


def test_load_model_in_a_fresh_interpreter_finds_the_model_classes(tmp_path):
    import subprocess
    import sys

    from pyg_implicit.models.gcnn import GCNN

    path = str(tmp_path / "gcnn.pt")
    save_model(GCNN("p4", 2), path)
    code = f"import pyg_implicit; print(type(pyg_implicit.load_model({path!r})).__name__)"  # the README's one-liner, nothing else imported
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "GCNN", proc.stderr[-2000:]
