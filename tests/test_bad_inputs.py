"""Bad or unusual inputs give clear errors, never silent wrong results (docs/bad_inputs.md lists them)."""
import math
import os

import numpy as np
import pytest
import torch

from pyg_implicit.datasets import NBodyConstrained, QM9, RotatedMNIST
from pyg_implicit.datasets.modelnet import ModelNetPoints
from pyg_implicit.datasets.paths import shared_data_dir
from pyg_implicit.graph import knn_graph
from pyg_implicit.groups import Group, rotation_z
from pyg_implicit.nn import ImplicitConv, StandardConv

QM9_NPZ = os.path.join(shared_data_dir(), "qm9", "qm9_full_130831.npz")


def small_qm9_archive(path, first, count):
    """A valid archive holding molecules ``first .. first + count`` of the shared one."""
    with np.load(QM9_NPZ) as full:
        arrays = {key: full[key] for key in full.files}
    ptr = arrays["ptr"]
    atoms = slice(ptr[first], ptr[first + count])
    per_molecule = [key for key in arrays if key not in ("ptr", "Z", "pos", "mulliken", "prop_names", "prop_units")
                    and arrays[key].shape[:1] == (len(ptr) - 1,)]  # fmt: skip
    out = {key: arrays[key][first : first + count] for key in per_molecule}
    out.update(Z=arrays["Z"][atoms], pos=arrays["pos"][atoms], mulliken=arrays["mulliken"][atoms],
               ptr=ptr[first : first + count + 1] - ptr[first], prop_names=arrays["prop_names"], prop_units=arrays["prop_units"])  # fmt: skip
    np.savez(path, **out)


@pytest.mark.skipif(not os.path.exists(QM9_NPZ), reason="shared QM9 archive not present")
def test_qm9_cache_is_keyed_by_its_source_file_and_subset_is_checked(tmp_path):
    pytest.importorskip("rdkit")
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    small_qm9_archive(a, 0, 30)
    small_qm9_archive(b, 100, 30)
    first = QM9(str(tmp_path / "cache"), source="npz", npz_path=a, subset=10)
    second = QM9(str(tmp_path / "cache"), source="npz", npz_path=b, subset=10)
    assert not torch.equal(first[0].pos, second[0].pos)  # not the first archive's molecules
    with pytest.raises(ValueError, match="subset: asked for 60 molecules, but the npz source holds 30"):
        QM9(str(tmp_path / "cache"), source="npz", npz_path=a, subset=60)


def test_rotated_mnist_refuses_more_samples_than_the_split(tmp_path):
    with pytest.raises(ValueError, match="num_samples: expected a positive int of at most 10000"):
        RotatedMNIST(str(tmp_path), "train", num_samples=10**6)
    with pytest.raises(FileNotFoundError, match="npz_path"):
        RotatedMNIST(str(tmp_path), "train", npz_path=str(tmp_path / "missing.npz"))


def test_modelnet_never_falls_back_from_a_named_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="archive: .*missing.tar.xz does not exist"):
        ModelNetPoints(str(tmp_path), archive=str(tmp_path / "missing.tar.xz"))


def test_corrupt_processed_cache_names_the_file_and_the_fix(tmp_path):
    data = NBodyConstrained(str(tmp_path), 10.0, "val", num_samples=4)
    path = data.processed_paths[0]
    with open(path, "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="processed cache is unreadable.*force_reload=True"):
        NBodyConstrained(str(tmp_path), 10.0, "val", num_samples=4)
    assert len(NBodyConstrained(str(tmp_path), 10.0, "val", num_samples=4, force_reload=True)) == 4


def _build_small_nbody(root: str) -> int:
    return len(NBodyConstrained(root, 10.0, "val", num_samples=4))


def test_processed_cache_is_written_atomically(tmp_path, monkeypatch):
    """Processes that build the same cache at once (a sweep's jobs) never read a half-written
    file, and a write that fails leaves no file behind (it would be taken for a built cache)."""
    import torch_geometric.data.in_memory_dataset as in_memory

    def write_half_then_fail(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a cache")
        raise OSError("disk full")

    monkeypatch.setattr(in_memory.fs, "torch_save", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        NBodyConstrained(str(tmp_path / "failed"), 10.0, "val", num_samples=4)
    assert os.listdir(tmp_path / "failed" / "processed") == []
    monkeypatch.undo()

    ctx = torch.multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        assert pool.map(_build_small_nbody, [str(tmp_path / "shared")] * 8) == [4] * 8
    assert not [f for f in os.listdir(tmp_path / "shared" / "processed") if f.endswith(".partial")]


def test_mismatched_devices_and_dtypes_get_one_clear_error():
    conv = ImplicitConv("2x0e+1x1o", "2x0e+1x1o", "so2", lmax=1)
    pos = torch.randn(10, 3)
    edge_index = knn_graph(pos, 3)
    with pytest.raises(ValueError, match="inputs on different devices: x on meta, pos on cpu"):
        conv(torch.randn(10, 5, device="meta"), pos, edge_index)
    with pytest.raises(TypeError, match="inputs of different floating dtypes: x torch.float16"):
        conv(torch.randn(10, 5).half(), pos, edge_index)
    with pytest.raises(TypeError, match="pos torch.float64"):
        conv(torch.randn(10, 5), pos.double(), edge_index)


def test_layers_that_could_only_output_zero_are_refused():
    with pytest.raises(ValueError, match="no o3-equivariant bilinear map"):
        ImplicitConv("0e", "0o", "o3")
    for name in ("num_basis", "radial_features", "radial_hidden"):
        with pytest.raises(ValueError, match=f"{name}: expected a positive int, got 0"):
            StandardConv("0e", "0e", "so2", **{name: 0})
    with pytest.warns(UserWarning, match="the fields 1x0o .* stay 0"):
        ImplicitConv("1x0e", "1x0e+1x0o", "o3")


def test_float32_group_generators_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="R R\\^T differs from I by .*give the generators in float64"):
        Group("c6", discrete_generators=[rotation_z(2 * math.pi / 6).float()])
    assert Group("c6", discrete_generators=[rotation_z(2 * math.pi / 6)]).order == 6


def test_empty_shared_data_variable_is_not_the_current_folder(monkeypatch):
    monkeypatch.setenv("PYG_IMPLICIT_SHARED_DATA", "")
    assert shared_data_dir() != os.path.normpath("")
    monkeypatch.setenv("PYG_IMPLICIT_SHARED_DATA", "/somewhere/data")
    assert shared_data_dir() == "/somewhere/data"


def test_block_names_its_own_bad_arguments():
    from pyg_implicit.nn import SteerableBlock

    with pytest.raises(ValueError, match="update_layers: expected an int >= 1"):
        SteerableBlock("2x0e+1x1o", "so2", update_layers=0)
    with pytest.raises(ValueError, match="kernel: expected one of"):
        SteerableBlock("2x0e+1x1o", "so2", kernel="dense")
