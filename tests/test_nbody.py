import json

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pyg_implicit.datasets.nbody import (
    NBodyConstrained,
    NBodySystem,
    energy,
    sample_initial_conditions,
    simulate,
)
from pyg_implicit.groups import get_group, rotation_z
from pyg_implicit.models import MPNN, SEGNN, SteerableCNN, match_budget
from pyg_implicit.testing import assert_equivariant, equivariance_error
from pyg_implicit.training import count_parameters
from conftest import random_head, run_example
from train_nbody import nbody_model


def test_free_system_centre_of_mass_moves_uniformly_and_energy_is_conserved():
    system = sample_initial_conditions(16, seed=5)
    pos, vel = simulate(system, stiffness=0.0)
    com = pos.mean(2)  # [B, frames, 3]
    t = np.arange(pos.shape[1])[None, :, None] * 100 * 1e-3
    np.testing.assert_allclose(com, com[:, :1] + t * vel.mean(2)[:, :1], atol=1e-10)
    e = np.stack([energy(pos[:, f], vel[:, f], system, 0.0) for f in range(pos.shape[1])], 1)
    assert np.abs(e - e[:, :1]).max() / e.mean() < 1e-3  # semi-implicit Euler: bounded drift


def test_strings_keep_horizontal_centre_of_mass_uniform_and_energy_bounded():
    system = sample_initial_conditions(16, seed=6)
    pos, vel = simulate(system, stiffness=50.0)
    com = pos.mean(2)[..., :2]
    t = np.arange(pos.shape[1])[None, :, None] * 0.1
    np.testing.assert_allclose(com, com[:, :1] + t * vel.mean(2)[:, :1, :2], atol=1e-10)
    assert not np.allclose(pos.mean(2)[..., 2], pos.mean(2)[:, :1, 2] + t[..., 0] * vel.mean(2)[:, :1, 2], atol=1e-3)
    e = np.stack([energy(pos[:, f], vel[:, f], system, 50.0) for f in range(pos.shape[1])], 1)
    assert np.abs(e - e[:, :1]).max() / e.mean() < 0.05


@pytest.mark.parametrize("transform", ["rotation", "mirror"])
def test_simulator_respects_the_cone_symmetry(transform):
    """Rotating (about z) or mirroring (vertical plane) a trajectory gives the simulator's trajectory."""
    system = sample_initial_conditions(8, seed=7)
    R = rotation_z(0.83).numpy() if transform == "rotation" else np.diag([1.0, -1.0, 1.0])
    moved = NBodySystem(system.pos @ R.T, system.vel @ R.T, system.springs, system.lengths)
    pos, _ = simulate(system, 100.0, steps=2000)
    pos_moved, _ = simulate(moved, 100.0, steps=2000)
    np.testing.assert_allclose(pos_moved, pos @ R.T, atol=1e-9)
    # ... but not a tilt: the strings pull along z
    tilted = get_group("so3").sample(1, generator=torch.Generator().manual_seed(0))[0].numpy()
    pos_tilted, _ = simulate(NBodySystem(system.pos @ tilted.T, system.vel @ tilted.T, system.springs, system.lengths), 100.0, steps=2000)
    assert np.abs(pos_tilted - pos @ tilted.T).max() > 1e-2


def test_dataset_is_seeded_cached_and_keyed_by_stiffness(tmp_path):
    a = NBodyConstrained(str(tmp_path), 10.0, "train", num_samples=20)
    b = NBodyConstrained(str(tmp_path), 10.0, "train", num_samples=20)
    c = NBodyConstrained(str(tmp_path), 50.0, "train", num_samples=20)
    val = NBodyConstrained(str(tmp_path), 10.0, "val", num_samples=20)
    assert len(a) == 20 and a[0].x.shape == (5, 7) and a[0].edge_index.shape == (2, 20) and a[0].y.shape == (5, 3)
    torch.testing.assert_close(a[3].y, b[3].y)
    assert not torch.allclose(a[3].y, c[3].y)  # same initial conditions, other stiffness
    torch.testing.assert_close(a[3].edge_attr, c[3].edge_attr)
    assert not torch.allclose(a[0].length, val[0].length)  # disjoint streams
    assert sorted(p.name for p in (tmp_path / "processed").glob("nbody_*.pt")) == [
        "nbody_k10_train_20.pt", "nbody_k10_val_20.pt", "nbody_k50_train_20.pt"]  # fmt: skip
    # spring indicator is symmetric and matches the edges
    d = a[0]
    A = torch.zeros(5, 5)
    A[d.edge_index[1], d.edge_index[0]] = d.edge_attr[:, 0]
    torch.testing.assert_close(A, A.T)
    with pytest.raises(ValueError, match="split"):
        NBodyConstrained(str(tmp_path), 10.0, "training")
    with pytest.raises(ValueError, match="stiffness"):
        NBodyConstrained(str(tmp_path), -1.0)


def nbody_batch(tmp_path, dtype=torch.float64):
    data = NBodyConstrained(str(tmp_path), 100.0, "test", num_samples=4)
    batch = next(iter(DataLoader(data, batch_size=4)))
    for key in ("x", "pos", "edge_attr", "y"):
        batch[key] = batch[key].to(dtype)
    return batch


NODE = "1x1o+1x1o+1x0e"


@pytest.mark.parametrize("group,kernel", [("so2", "implicit"), ("cone", "implicit"), ("o3", "implicit"), ("so2", "standard")])
def test_steerable_cnn_is_equivariant_exactly_to_its_group(float64, tmp_path, group, kernel):
    model = random_head(SteerableCNN(NODE, "4x0e+4x1o", "1x1o", group, num_layers=2, kernel=kernel, edge_attr_irreps="1x0e", lmax=1))
    b = nbody_batch(tmp_path)
    args = (b.x, b.pos, b.edge_index, b.edge_attr)
    actions = (NODE, "cartesian_points", None, None)
    # the node features hold absolute positions, so the model is tested for the origin-fixing group
    assert_equivariant(model, group, args, actions, "1x1o", translate=False, tolerance=1e-9)
    if group != "o3":
        outside = get_group("o3").sample(16, generator=torch.Generator().manual_seed(0))
        outside = outside[~get_group(group).contains(outside)][:3]
        assert equivariance_error(model, outside, args, actions, "1x1o", translate=False).min() > 1e-4


def test_segnn_is_o3_equivariant_and_mpnn_is_not(float64, tmp_path):
    b = nbody_batch(tmp_path)
    args, actions = (b.x, b.pos, b.edge_index, b.edge_attr), (NODE, "cartesian_points", None, None)
    segnn = random_head(SEGNN(NODE, "4x0e+4x1o", "1x1o", num_layers=2, edge_attr_irreps="1x0e"))
    assert_equivariant(segnn, "o3", args, actions, "1x1o", translate=False, tolerance=1e-9)
    mpnn = random_head(MPNN(7, 16, 3, num_layers=2, edge_dim=1))
    assert equivariance_error(mpnn, get_group("so2").sample(3), args, actions, "1x1o", translate=False).min() > 1e-4


@pytest.mark.parametrize("name,group,options", [("ik", "so2", {}), ("ik", "cone", {}), ("ik", "so2", {"kernel_mlp_layers": 1}),
                                                ("ik", "so2", {"kernel_mlp_group": "o3"}), ("ik", "so2", {"kernel_form": "factorized"}),
                                                ("ik", "cone", {"kernel_form": "factorized", "num_basis": 10}),
                                                ("ik", "so2", {"activation": "gate", "shell": True, "polynomial_norm": "batch"}),  # the paper's
                                                ("ik", "cone", {"activation": "gate", "shell": True, "polynomial_norm": "batch"}),
                                                ("standard", "so2", {}), ("standard", "so2", {"activation": "scalar_gate"}), ("segnn", "o3", {})])
def test_nbody_predictor_is_equivariant(float64, tmp_path, name, group, options):
    model = random_head(nbody_model(name, 4, group, **options))
    b = nbody_batch(tmp_path)
    pred = model(b)
    assert pred.shape == (20, 3)
    for R in get_group(group).sample(2):
        moved = b.clone()
        moved.pos, moved.x = b.pos @ R.T, torch.cat([b.x[:, :3] @ R.T, b.x[:, 3:6] @ R.T, b.x[:, 6:]], dim=1)
        assert (model(moved) - pred @ R.T).abs().max() < 1e-9


def test_retest_per_system_errors_average_to_the_test_mse(tmp_path):
    from nbody_retest import per_system_mse

    data = NBodyConstrained(str(tmp_path), 100.0, "test", num_samples=37)
    model = random_head(nbody_model("mpnn", 4)).eval()
    errors = per_system_mse(model, data, batch_size=8)  # batches that split the set unevenly
    assert errors.shape == (37,) and (errors > 0).all()
    batch = next(iter(DataLoader(data, batch_size=37)))
    with torch.no_grad():
        assert abs(errors.mean() - torch.nn.functional.mse_loss(model(batch), batch.y).item()) < 1e-6 * errors.mean()
        first = batch.get_example(0)
        assert abs(errors[0] - torch.nn.functional.mse_loss(model(first), first.y).item()) < 1e-6 * errors[0]


def test_retest_amplitude_groups_partition_the_z_error(tmp_path):
    from nbody_retest import AMPLITUDE_EDGES, string_amplitude, z_error_by_amplitude

    data = NBodyConstrained(str(tmp_path), 100.0, "test", num_samples=37)
    model = random_head(nbody_model("mpnn", 4)).eval()
    errors, counts = z_error_by_amplitude(model, data, 100.0, batch_size=8)
    assert len(errors) == len(counts) == len(AMPLITUDE_EDGES) - 1 and sum(counts) == 37 * 5
    batch = next(iter(DataLoader(data, batch_size=37)))
    with torch.no_grad():
        z_mse = (model(batch) - batch.y)[:, 2].pow(2).mean().item()
    assert abs(sum(e * n for e, n in zip(errors, counts)) / sum(counts) - z_mse) < 1e-6 * z_mse
    # in clipping lengths: at rest (v_z = 0) the amplitude is |z - l| k / 100
    batch.vel[:, 2] = 0
    expected = (batch.pos[:, 2] - batch.length[:, 0]).abs()
    assert torch.allclose(string_amplitude(batch, 100.0), expected) and torch.allclose(string_amplitude(batch, 1000.0), 10 * expected)
    with pytest.raises(ValueError, match="stiffness"):
        string_amplitude(batch, 0.0)


@pytest.mark.slow
def test_budget_matching_within_ten_percent():
    budget = 47633  # the sweep's
    for name, group in [("ik", "so2"), ("ik", "cone"), ("ik", "o3"), ("segnn", "o3"), ("mpnn", "o3"), ("standard", "so2")]:
        model, width = match_budget(lambda w: nbody_model(name, w, group), budget)
        assert abs(count_parameters(model) - budget) <= 0.1 * budget, (name, width, count_parameters(model), budget)


@pytest.mark.slow
def test_sweep_runs_jobs_in_parallel_and_reuses_finished_runs(tmp_path):
    args = ["--models", "ik-so2", "mpnn", "--stiffness", "0", "--epochs", "1", "--train-size", "32", "--budget", "3000", "--jobs", "2",
            "--model-lr", "mpnn=1e-3", "--weight-decay", "1e-3", "--kernel-mlp-group", "o3", "--kernel-form", "factorized", "--num-basis", "10", "--shell", "--update-layers", "2", "--out-dir", str(tmp_path / "sweep"), "--data-root", str(tmp_path / "data")]  # fmt: skip
    run_example("nbody_sweep.py", *args)
    summary = json.loads((tmp_path / "sweep" / "results.json").read_text())
    results = summary["results"]
    assert set(results) == {"ik-so2", "mpnn"}
    assert summary["lr"] == {"ik-so2": 1.6e-2, "mpnn": 1e-3}  # the preset's rate, and a model's own
    config = json.loads((tmp_path / "sweep" / "mpnn_k0_s0" / "metrics.json").read_text())["config"]
    assert config["lr"] == 1e-3 and config["weight_decay"] == 1e-3 and summary["weight_decay"] == 1e-3
    ik_extra = json.loads((tmp_path / "sweep" / "ik-so2_k0_s0" / "metrics.json").read_text())["config"]["extra"]
    assert ik_extra["kernel_mlp_group"] == "o3" and summary["kernel_mlp_group"] == "o3"
    assert (ik_extra["kernel_form"], ik_extra["num_basis"]) == ("factorized", 10) and summary["kernel_form"] == "factorized"
    assert ik_extra["shell"] and summary["shell"]  # asked for
    assert ik_extra["update_layers"] == 2 and summary["update_layers"] == 2
    assert (ik_extra["polynomial_norm"], ik_extra["activation"]) == ("data", "scalar_gate")  # the defaults
    assert summary["polynomial_norm"] == "data" and summary["activation"] == {"ik-so2": "scalar_gate"}
    table = (tmp_path / "sweep" / "results.md").read_text()
    assert "| SO(2)-CNN-IK |" in table and "blew up" in table  # runs that blew up are named, or none
    assert all(isinstance(run["blew_up"], bool) for cells in results.values() for runs in cells.values() for run in runs)
    for spec in results:  # each cell is the run's own metrics.json
        metrics = json.loads((tmp_path / "sweep" / f"{spec}_k0_s0" / "metrics.json").read_text())
        assert results[spec]["0"][0]["test_mse"] == metrics["test_loss"]
    run_example("nbody_sweep.py", *args)  # finished runs are read, not retrained
    assert json.loads((tmp_path / "sweep" / "results.json").read_text())["results"] == results

    # the same checkpoints on a larger test set, with the error's tail
    run_example("nbody_retest.py", str(tmp_path / "sweep"), "--test-size", "200", "--data-root", str(tmp_path / "data"))
    retest = json.loads((tmp_path / "sweep" / "retest_200.json").read_text())["results"]
    assert set(retest) == {"ik-so2", "mpnn"}
    for cell in (retest["ik-so2"]["0"][0], retest["mpnn"]["0"][0]):
        assert cell["seed"] == 0 and 0 < cell["median"] <= cell["q99"] and 0.01 <= cell["worst_1pct_share"] <= 1
    assert "| MPNN |" in (tmp_path / "sweep" / "retest_200.md").read_text()


@pytest.mark.slow
def test_long_preset_decays_the_weights_unless_told_otherwise(tmp_path):
    common = ["--preset", "long", "--models", "mpnn", "--stiffness", "0", "--epochs", "1", "--train-size", "32",
              "--budget", "3000", "--data-root", str(tmp_path / "data")]  # fmt: skip
    for out, extra, expected in [("preset", [], 3e-2), ("own", ["--weight-decay", "1e-12"], 1e-12)]:
        run_example("nbody_sweep.py", *common, *extra, "--out-dir", str(tmp_path / out))
        config = json.loads((tmp_path / out / "mpnn_k0_s0" / "metrics.json").read_text())["config"]
        assert config["weight_decay"] == expected
        assert json.loads((tmp_path / out / "results.json").read_text())["weight_decay"] == expected
