import json
import os
import tarfile

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose, FixedPoints

from pyg_implicit.datasets import ModelNetPoints
from pyg_implicit.datasets.modelnet import official_split
from pyg_implicit.datasets.paths import shared_data_dir
from pyg_implicit.groups import get_group
from pyg_implicit.models import PointCloudClassifier
from pyg_implicit.testing import assert_equivariant, equivariance_error
from pyg_implicit.transforms import EstimateNormalAxes, KNNHierarchy, NormalizeUnitBall, RandomRotation

MODELNET_DIR = os.path.join(shared_data_dir(), "modelnet40")
pytestmark = pytest.mark.skipif(not os.path.isdir(MODELNET_DIR), reason=f"shared ModelNet data not found at {MODELNET_DIR}")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("modelnet"))


@pytest.fixture(scope="module")
def train(root):
    return ModelNetPoints(root, "train", source="resampled", max_points=512)


def test_subset_reads_with_the_official_split_and_drops_degenerate_normals(root, train):
    test = ModelNetPoints(root, "test", source="resampled", max_points=512)
    assert (len(train), len(test), train.source) == (127, 29, "resampled")
    assert len(train.classes) == 40 and train.classes[0] == "airplane" and train.classes[-1] == "xbox"
    with np.load(os.path.join(MODELNET_DIR, "modelnet40_subset156_first1024pts.npz")) as f:
        expected = {str(s): (str(sp), int(y)) for s, sp, y in zip(f["shape_id"], f["split"], f["label"])}
    for split, dataset in (("train", train), ("test", test)):
        for data in dataset:
            assert expected[data.shape_id] == (split, int(data.y))
            torch.testing.assert_close(data.normal.norm(dim=1), torch.ones(len(data.normal)), atol=1e-2, rtol=0)
    removed = train.report["points_removed"] + test.report["points_removed"]
    assert removed == sum(train.report["shapes_with_removed_points"].values()) + sum(test.report["shapes_with_removed_points"].values())
    assert official_split("airplane_0626") == "train" and official_split("airplane_0627") == "test"


def test_npz_source_matches_the_text_files(root, train):
    npz = ModelNetPoints(root, "train", source="npz", max_points=512)
    by_id = {d.shape_id: d for d in npz}
    for data in list(train)[::20]:
        other = by_id[data.shape_id]
        n = min(len(data.pos), len(other.pos))
        if train.report["shapes_with_removed_points"].get(data.shape_id) is None:
            torch.testing.assert_close(data.pos[:n], other.pos[:n])


def test_mesh_source_samples_points_and_normals_on_the_surface(tmp_path):
    """A unit cube as PyG's ModelNet OFF layout: sampled points lie on its faces, normals are the face normals."""
    folder = tmp_path / "raw" / "ModelNet40" / "box" / "train"
    folder.mkdir(parents=True)
    corners = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    off = ["OFF", f"{len(corners)} {len(faces)} 0"] + [" ".join(map(str, c)) for c in corners] + [f"3 {a} {b} {c}" for a, b, c in faces]
    (folder / "box_0001.off").write_text("\n".join(off) + "\n")
    dataset = ModelNetPoints(str(tmp_path), "train", source="auto", max_points=300)
    assert dataset.source == "mesh" and len(dataset) == 1 and dataset.classes == ["box"]
    data = dataset[0]
    on_face = ((data.pos < 1e-5) | (data.pos > 1 - 1e-5)).any(1)
    assert data.pos.shape == (300, 3) and on_face.all()
    assert torch.allclose(data.normal.abs().max(1).values, torch.ones(300), atol=1e-5)


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="npz_path: .*none.npz does not exist"):
        ModelNetPoints(str(tmp_path / "a"), source="npz", npz_path=str(tmp_path / "none.npz"))
    with pytest.raises(FileNotFoundError, match="archive: .*none.tar.xz does not exist"):
        ModelNetPoints(str(tmp_path / "b"), source="resampled", archive=str(tmp_path / "none.tar.xz"))
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="unreadable"):
        ModelNetPoints(str(tmp_path / "c"), source="resampled", archive=str(bad))
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(FileNotFoundError, match="holds no"):
        ModelNetPoints(str(tmp_path / "d"), source="resampled", archive=str(empty))
    with pytest.raises(ValueError, match="split"):
        ModelNetPoints(str(tmp_path / "e"), split="val")


def test_rotation_moves_normals_with_the_surface():
    """Points on a sphere have normal = position; after any rotation or reflection they still do."""
    pos = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=1)
    for group in ("so2", "so3", "o3", "oh"):
        out = RandomRotation(group)(Data(pos=pos.clone(), normal=pos.clone()))
        torch.testing.assert_close(out.normal, out.pos)
        assert not torch.allclose(out.pos, pos)
    z = RandomRotation("so2")(Data(pos=pos.clone(), normal=pos.clone()))
    torch.testing.assert_close(z.pos[:, 2], pos[:, 2])  # rotations about z keep heights


def test_normalize_and_fewer_points_than_requested():
    data = NormalizeUnitBall()(Data(pos=torch.randn(50, 3) * 7 + 3, normal=torch.randn(50, 3)))
    assert data.pos.mean(0).abs().max() < 1e-5 and abs(data.pos.norm(dim=1).max() - 1) < 1e-6
    sampled = FixedPoints(120, replace=False, allow_duplicates=True)(data.clone())  # the documented rule: all points, then repeats
    assert sampled.pos.shape == (120, 3) and len(torch.unique(sampled.pos, dim=0)) == 50
    with pytest.raises(ValueError, match="fewer than sizes"):
        KNNHierarchy((64, 32))(data)


def test_knn_hierarchy_matches_brute_force_and_batches():
    torch.manual_seed(3)
    data = KNNHierarchy((64, 32, 8), k=5)(Data(pos=torch.rand(64, 3), normal=torch.randn(64, 3)))
    pos = data.pos
    for level in (1, 2, 3):
        coarse = pos[data[f"index_{level}"]]
        source, target = data[f"edge_index_{level}"]
        dist = torch.cdist(coarse, pos)
        expected = dist.topk(5, largest=False).indices
        for t in range(len(coarse)):
            assert set(source[target == t].tolist()) == set(expected[t].tolist())
        pos = coarse
    assert torch.equal(data.index_1, torch.arange(64))  # no downsampling when the size does not shrink
    batch = Batch.from_data_list([data, data])
    assert torch.equal(batch.index_2, torch.cat([data.index_2, data.index_2 + 64]))  # offset by the level-1 size
    assert torch.equal(batch.edge_index_3, torch.cat([data.edge_index_3, data.edge_index_3 + torch.tensor([[32], [8]])], 1))


class _Logits(torch.nn.Module):
    """The classifier called on (pos, normal) of a fixed hierarchy (same sampled indices and graphs)."""

    def __init__(self, model, template):
        super().__init__()
        self.model, self.template = model, template

    def forward(self, pos, normal):
        batch = self.template.clone()
        batch.pos, batch.normal = pos, normal
        return self.model(batch)


def _batch(train, dtype):
    transform = Compose([NormalizeUnitBall(), FixedPoints(128, replace=False, allow_duplicates=True), KNNHierarchy((128, 64, 32), k=8)])
    batch = next(iter(DataLoader([transform(train[i]) for i in (0, 40, 90)], batch_size=3)))
    batch.pos, batch.normal = batch.pos.to(dtype), batch.normal.to(dtype)
    return batch


@pytest.mark.parametrize("group, kernel", [("o3", "implicit"), ("o3", "standard"), ("so2", "implicit"), ("oh", "implicit"), ("cone", "standard")])
def test_classifier_logits_are_invariant_through_downsampling(train, float64, group, kernel):
    batch = _batch(train, torch.float64)
    model = PointCloudClassifier("4x0e+2x1o+2x2e", 40, group, num_layers=3, kernel=kernel, readout=16).eval()
    assert model(batch).shape == (3, 40)
    module = _Logits(model, batch)
    assert_equivariant(module, group, (batch.pos, batch.normal), ["cartesian_points", "1x1o"], "40x0e", tolerance=1e-10)
    if group != "o3":  # outside the group: far above the 1e-10 inside it (small for oh: its l <= 2 maps are close to O(3)'s)
        outside = get_group("o3").sample(4, torch.Generator().manual_seed(2))
        assert equivariance_error(module, outside, (batch.pos, batch.normal), ["cartesian_points", "1x1o"], "40x0e").max() > 1e-6


def test_classifier_float32_and_wrong_levels(train):
    batch = _batch(train, torch.float32)
    model = PointCloudClassifier("4x0e+2x1o", 40, "so2", num_layers=3, readout=8).eval()
    assert_equivariant(_Logits(model, batch), "so2", (batch.pos, batch.normal), ["cartesian_points", "1x1o"], "40x0e", tolerance=1e-4)
    fewer = batch.clone()
    del fewer["index_3"], fewer["edge_index_3"]
    with pytest.raises(ValueError, match="3 levels"):
        model(fewer)


@pytest.mark.parametrize("group, kernel", [("o3", "implicit"), ("so2", "standard"), ("c4", "implicit")])
def test_classifier_keeps_the_scale_of_its_input_through_the_levels(train, group, kernel):
    """At initialisation (set on the first training batch) the features reaching the readout have
    the second moment of the standardised input, within [0.5, 2], on another batch."""
    transform = Compose([NormalizeUnitBall(), FixedPoints(128, replace=False, allow_duplicates=True),
                         KNNHierarchy((128, 64, 32, 16, 8), k=8)])  # fmt: skip
    torch.manual_seed(0)
    first, second = (next(iter(DataLoader([transform(train[i]) for i in ids], batch_size=8))) for ids in (range(0, 120, 15), range(5, 120, 15)))
    model = PointCloudClassifier("4x0e+4x1o+2x2e", 40, group, num_layers=5, kernel=kernel, readout=16).train()
    seen = {}
    model.head.register_forward_hook(lambda module, args, out: seen.__setitem__("h", args[0]))
    model.input_norm.register_forward_hook(lambda module, args, out: seen.__setitem__("x", out))
    with torch.no_grad():
        model(first)
        model(second)
    ratio = float(seen["h"].pow(2).mean() / seen["x"].pow(2).mean())
    assert 0.5 <= ratio <= 2.0, ratio


def test_train_modelnet_runs_two_steps(tmp_path, root, train):
    from train_modelnet import main

    metrics = main(["--group", "c4", "--kernel", "standard", "--points", "64", "--levels", "64", "16", "--k", "4",
                    "--width", "1", "--readout", "8", "--epochs", "2", "--batch-size", "16", "--max-points", "512",
                    "--source", "resampled", "--data-root", root, "--out-dir", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert len(metrics["history"]) == 2 and 0 <= metrics["test_accuracy"] <= 1
    assert set(metrics["rotated_test_accuracy"]) == {"c4", "so3"}  # the model's group and all rotations
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["config"]["extra"]["group"] == "c4"


def test_train_modelnet_kernel_options_reach_every_implicit_kernel():
    from train_modelnet import build_model, parse_args

    from pyg_implicit.nn import ImplicitKernel

    args = parse_args(["--group", "c4", "--kernel-mlp-group", "o3", "--points", "64", "--levels", "64", "16", "--input", "none",
                       "--kernel-form", "factorized"])  # fmt: skip
    kernels = [m for m in build_model(1, 8, args).modules() if isinstance(m, ImplicitKernel)]
    assert kernels and all((k.group.name, k.mlp_group.name, k.form) == ("c4", "o3", "factorized") for k in kernels)
    args = parse_args(["--group", "c4", "--points", "64", "--levels", "64", "16", "--input", "none"])  # default: the model's group
    assert all((m.mlp_group.name, m.form) == ("c4", "mlp") for m in build_model(1, 8, args).modules() if isinstance(m, ImplicitKernel))


FULL = os.path.join(MODELNET_DIR, "modelnet40_full_1024pts_xyz.npz")


@pytest.mark.skipif(not os.path.exists(FULL), reason="the whole-ModelNet archive is not shared here")
def test_whole_modelnet_loads_with_the_official_split_and_class_counts(tmp_path):
    from pyg_implicit.datasets.modelnet import FULL_SIZES, TRAIN_COUNTS

    ModelNetPoints(str(tmp_path), "test", source="resampled", max_points=16)  # unpacks the shared subset into raw/ ...
    train, test = ModelNetPoints(str(tmp_path), "train"), ModelNetPoints(str(tmp_path), "test")  # ... still the default when shared
    assert (train.source, len(train), len(test)) == ("full", FULL_SIZES["train"], FULL_SIZES["test"]) == ("full", 9843, 2468)
    assert train.classes == sorted(TRAIN_COUNTS) and len(train.classes) == 40
    counts = torch.bincount(train.y, minlength=40).tolist()
    assert counts == [TRAIN_COUNTS[name] for name in train.classes]
    assert sorted(torch.unique(test.y).tolist()) == list(range(40))
    data = train[0]
    assert data.pos.shape == (1024, 3) and "normal" not in data and data.shape_id.startswith(train.classes[int(data.y)])


def test_estimated_normal_axes_are_sign_free_and_equivariant(float64):
    from e3nn import o3

    from pyg_implicit.groups import irreps_D

    points = torch.randn(400, 3)
    points = points / points.norm(dim=1, keepdim=True)  # a sphere: the normals are radial
    data = EstimateNormalAxes(12)(Data(pos=points))
    assert data.normal_axis.shape == (400, 5)
    radial = o3.spherical_harmonics(2, points, normalize=True, normalization="component")
    assert (data.normal_axis - radial).abs().max(dim=1).values.median() < 0.2  # PCA on a curved cap: a few degrees off
    for R in get_group("o3").sample(3, torch.Generator().manual_seed(0)):
        moved = EstimateNormalAxes(12)(Data(pos=points @ R.T))
        torch.testing.assert_close(moved.normal_axis, data.normal_axis @ irreps_D("1x2e", R).T, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="k: expected an int >= 3"):
        EstimateNormalAxes(2)


class _LogitsOf(torch.nn.Module):
    """The classifier called on positions and one point feature of a fixed hierarchy."""

    def __init__(self, model, template, key):
        super().__init__()
        self.model, self.template, self.key = model, template, key

    def forward(self, pos, *feature):
        batch = self.template.clone()
        batch.pos = pos
        if feature:
            batch[self.key] = feature[0]
        return self.model(batch)


@pytest.mark.parametrize("group", ["o3", "so2"])
def test_classifier_without_normals_is_invariant(train, float64, group):
    """xyz-only clouds: the estimated normal axes (2e) or no feature at all; invariant inside the group, not outside."""
    batch = _batch(train, torch.float64)
    batch.normal_axis = torch.cat([EstimateNormalAxes(8)(Data(pos=batch.pos[batch.batch == b])).normal_axis for b in range(3)])
    for input, key, actions in (("normal_axis", "normal_axis", ["cartesian_points", "1x2e"]), ("none", None, ["cartesian_points"])):
        model = PointCloudClassifier("4x0e+2x1o+2x2e", 40, group, num_layers=3, readout=16, input=input).eval()
        module = _LogitsOf(model, batch, key)
        args = (batch.pos, batch.normal_axis) if key else (batch.pos,)
        assert_equivariant(module, group, args, actions, "40x0e", tolerance=1e-10)
        if group != "o3":
            outside = get_group("o3").sample(4, torch.Generator().manual_seed(2))
            assert equivariance_error(module, outside, args, actions, "40x0e").max() > 1e-6
    with pytest.raises(ValueError, match="input: expected one of"):
        PointCloudClassifier("4x0e", 40, input="colour")
    with pytest.raises(ValueError, match="the classifier reads 'normal_axis'"):
        PointCloudClassifier("4x0e+2x1o", 40, "so2", num_layers=3, readout=8, input="normal_axis")(_batch(train, torch.float32))
