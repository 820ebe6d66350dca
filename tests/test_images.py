import json
import math
import os

import pytest
import torch

from pyg_implicit import load_model
from pyg_implicit.datasets import RotatedMNIST
from pyg_implicit.datasets.mnist import read_mnist, rotate_images
from pyg_implicit.datasets.paths import shared_data_dir
from pyg_implicit.groups import get_group, rotation_z
from pyg_implicit.models import GCNN, SteerableImageCNN
from pyg_implicit.nn.dense_conv import transform_field_image
from pyg_implicit.nn.image_action import transform_image
from pyg_implicit.training import count_parameters

from conftest import run_example

MNIST_DIR = os.path.join(shared_data_dir(), "mnist")
NPZ = os.path.join(MNIST_DIR, "mnist_train60k_grouped_by_label.npz")
needs_data = pytest.mark.skipif(not os.path.exists(NPZ), reason=f"shared MNIST data not found at {NPZ}")


@needs_data
def test_canonical_order_and_disjoint_seeded_splits(tmp_path):
    images, labels = read_mnist(NPZ, os.path.join(MNIST_DIR, "train-labels-idx1-ubyte.gz"))
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the famous first ten training labels
    grouped, _ = read_mnist(NPZ)
    assert {bytes(a) for a in images[::997]} <= {bytes(a) for a in grouped}  # the same images, reordered
    splits = {s: RotatedMNIST(str(tmp_path), s, num_samples=300) for s in ("train", "val", "test")}
    angles = torch.cat([d.angle for d in splits["train"]])
    assert angles.min() >= 0 and angles.max() < 2 * math.pi and angles.std() > 1.0
    again = RotatedMNIST(str(tmp_path / "again"), "train", num_samples=300)
    assert torch.equal(again._data.x, splits["train"]._data.x)  # seeded
    digits = {s: {bytes((d.x * 255).round().byte().numpy()) for d in ds} for s, ds in splits.items()}
    assert not (digits["train"] & digits["val"] or digits["train"] & digits["test"])
    assert splits["train"][0].x.shape == (1, 1, 28, 28) and 0 <= splits["train"][0].x.min() and splits["train"][0].x.max() <= 1


def test_rotate_images_quarter_turn_is_exact():
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    turned = rotate_images(x, torch.full((2,), math.pi / 2, dtype=torch.float64))
    assert min((turned - torch.rot90(x, k, dims=(-2, -1))).abs().max() for k in (1, 3)) < 1e-6


def test_missing_or_corrupt_mnist_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST archive not found"):
        RotatedMNIST(str(tmp_path / "a"), npz_path=str(tmp_path / "none.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        RotatedMNIST(str(tmp_path / "b"), npz_path=str(bad))
    with pytest.raises(ValueError, match="split"):
        RotatedMNIST(str(tmp_path / "c"), split="dev")


@pytest.mark.parametrize("group", ["c4", "d4"])
def test_steerable_image_cnn_logits_are_invariant_on_the_grid(float64, group):
    model = SteerableImageCNN("2x0e+1x1o+1x2e", group, kernel_hidden_irreps="4x0e+4x1o+4x2e").eval()
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    for R in get_group(group).coset_representatives:
        torch.testing.assert_close(model(transform_image(x, R)), y, rtol=0, atol=1e-10)


@pytest.mark.parametrize("group, batch_norm", [("c4", "o3"), ("c4", "group"), ("d4", "group")])
def test_steerable_image_cnn_with_orbit_elu_is_invariant_on_the_grid(float64, group, batch_norm):
    model = SteerableImageCNN("2x0e+2x1o+2x2e", group, kernel_hidden_irreps="1x0e+1x1o+1x2e", activation="orbit_elu", batch_norm=batch_norm)
    x = torch.randn(2, 1, 28, 28)
    model(torch.randn(4, 1, 28, 28))  # batch norm statistics away from their initial values
    model.eval()
    y = model(x)
    for R in get_group(group).coset_representatives:
        torch.testing.assert_close(model(transform_image(x, R)), y, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="irreps: OrbitELU needs"):
        SteerableImageCNN("2x0e+1x1o", group, activation="orbit_elu")
    with pytest.raises(ValueError, match="batch_norm: expected 'o3' or 'group'"):
        SteerableImageCNN("2x0e+1x1o", group, batch_norm="layer")


def test_steerable_image_cnn_for_c4_is_not_invariant_to_mirrors(float64):
    model = SteerableImageCNN("2x0e+1x1o+1x2e", "c4", kernel_hidden_irreps="4x0e+4x1o+4x2e").eval()
    x = torch.randn(2, 1, 28, 28)
    mirror = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # y -> -y on the image
    assert (model(transform_image(x, mirror)) - model(x)).abs().max() > 1e-4


def test_steerable_image_cnn_with_c4_invariant_logits_keeps_d4_fields_and_tells_mirrors_apart(float64):
    model = SteerableImageCNN("2x0e+1x1o+1x2e", "d4", kernel_hidden_irreps="4x0e+4x1o+4x2e", invariant_group="c4").eval()
    assert model.group.name == "d4" and model.convs[-1].group.name == "d4" and model.out.group.name == "c4"
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    for R in get_group("c4").coset_representatives:
        torch.testing.assert_close(model(transform_image(x, R)), y, rtol=0, atol=1e-10)
    mirror = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # in d4, y -> -y on the image
    assert (model(transform_image(x, mirror)) - y).abs().max() > 1e-4
    with pytest.raises(ValueError, match="invariant_group: expected a subgroup of c4"):
        SteerableImageCNN("2x0e", "c4", invariant_group="d4")


@pytest.mark.parametrize("group, invariant_group, kernel", [("c4", None, "implicit"), ("d4", "c4", "implicit"), ("c4", None, "basis")])
def test_steerable_image_cnn_with_an_invariant_readout_is_invariant_to_its_subgroup_alone(float64, group, invariant_group, kernel):
    """readout_irreps: the last kernel gives fields, a linear layer maps their invariants to the logits."""
    kwargs = {"kernel_hidden_irreps": "1x0e+1x1o+1x2e"} if kernel == "implicit" else {}
    model = SteerableImageCNN("1x0e+1x1o+1x2e", group, invariant_group=invariant_group, kernel=kernel, readout_irreps="3x0e+2x1o", **kwargs)
    model(torch.randn(4, 1, 28, 28))  # batch norm statistics away from their initial values
    model.eval()
    assert model.out.irreps_out.dim == 9 and model.readout.in_features == 3 + 2 * 2  # under C4 a 1o field has z and |(x, y)|
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    assert y.shape == (2, 10)
    for R in get_group("c4").coset_representatives:
        torch.testing.assert_close(model(transform_image(x, R)), y, rtol=0, atol=1e-10)
    mirror = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # y -> -y on the image: not in C4
    assert (model(transform_image(x, mirror)) - y).abs().max() > 1e-4
    with pytest.raises(ValueError, match="readout_irreps"):
        SteerableImageCNN("1x0e", "c4", readout_irreps="3x0e+bad")


def test_field_pooling_keeps_fields_together(float64):
    """Pooling by field norm commutes with rotating the field image (vectors rotate as a whole)."""
    model = SteerableImageCNN("1x0e+1x1o", "c4")
    x = torch.randn(1, 4, 8, 8)
    R = rotation_z(math.pi / 2).double()
    torch.testing.assert_close(model._pool(transform_field_image(x, "1x0e+1x1o", R)),
                               transform_field_image(model._pool(x), "1x0e+1x1o", R), rtol=0, atol=1e-12)  # fmt: skip


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("model", ["p4mcnn", "z2cnn-ien", "ik"])
def test_train_images_runs_and_the_saved_model_loads(tmp_path, model):
    from train_images import main

    invariant = ["--invariant-group", "c4"] if model == "p4mcnn" else []  # p4m features, logits invariant to rotations only
    metrics = main(["--model", model, "--group", "c4", "--epochs", "2", "--train-size", "64", "--test-size", "64",
                    "--batch-size", "32", "--data-root", str(tmp_path / "data"), "--out-dir", str(tmp_path / "run"),
                    "--no-progress"] + invariant)  # fmt: skip
    assert len(metrics["history"]) == 2 and 0 <= metrics["test_error"] <= 1
    assert all(0 <= r["val_metric"] <= 1 for r in metrics["history"])  # the validation error curve
    assert 0 <= metrics["c4_disagreement"] <= 1
    if model != "z2cnn-ien":  # invariant to 90° rotations by construction: no prediction changes
        assert metrics["c4_disagreement"] == 0
    else:  # the penalty's terms, measured on the test digits
        assert set(metrics["ien_relative_error"]) == {"logits", "convs.2", "convs.4"}
        assert all(0 < v < float("inf") for v in metrics["ien_relative_error"].values())
    with open(tmp_path / "run" / "metrics.json") as f:
        extra = json.load(f)["config"]["extra"]
    assert extra["model"].startswith(model.split("-")[0])
    assert extra["model"].endswith("-inv-c4") == bool(invariant)
    loaded = load_model(str(tmp_path / "run" / "model.pt")).eval()  # the documented one-liner
    assert loaded(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_ien_relative_error_of_the_logits_vanishes_on_c4_symmetric_images():
    from train_images import build_model, ien_layers, ien_relative_errors

    _, rotate, _ = ien_layers()
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    symmetric = (x + rotate(x, 1) + rotate(x, 2) + rotate(x, 3)) / 4  # a rotated copy is the image itself
    model = build_model("z2cnn", 4, "c4").double().eval()
    errors = ien_relative_errors(model, symmetric)
    assert errors["logits"] < 1e-20 and errors["convs.2"] > 1e-3  # a Z2CNN's hidden maps are not regular fields
    assert ien_relative_errors(model, x)["logits"] > 1e-6


@pytest.mark.slow
@needs_data
def test_benchmark_runs_jobs_in_parallel_and_plots_the_curves(tmp_path):
    run_example("images_benchmark.py", "--models", "Z2CNN + IEN loss", "P4CNN", "--ien-weights", "0", "1", "--seeds", "0",
                "--epochs", "2", "--lr-step", "1", "--train-size", "64", "--test-size", "64", "--jobs", "2",
                "--out-dir", str(tmp_path / "bench"), "--data-root", str(tmp_path / "data"), timeout=600)  # fmt: skip
    results = json.loads((tmp_path / "bench" / "results.json").read_text())["results"]
    assert set(results) == {"Z2CNN + IEN loss, weight 0", "Z2CNN + IEN loss, weight 1", "P4CNN"}  # one IEN run per weight
    assert all(len(runs[0]["val_error"]) == 2 for runs in results.values())
    assert results["P4CNN"][0]["c4_disagreement"] == 0  # C4-invariant
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "| P4CNN |" in table and "--ien-weights 0 1" in table and (tmp_path / "bench" / "curves.png").exists()
    ien_weight = json.loads((tmp_path / "bench" / "z2cnn-ien_1_s0" / "metrics.json").read_text())["config"]["extra"]["ien_weight"]
    assert ien_weight == 1


@needs_data
def test_mirror_confusions_of_a_d4_invariant_and_a_c4_invariant_p4mcnn(tmp_path, capsys):
    from mirror_confusions import main

    from pyg_implicit import save_model

    torch.manual_seed(0)
    for name in ("d4", "c4"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    save_model(GCNN("p4m", 2).eval(), str(tmp_path / "runs" / "d4" / "model.pt"))
    save_model(GCNN("p4m", 2, invariant_group="c4").eval(), str(tmp_path / "runs" / "c4" / "model.pt"))
    main([str(tmp_path / "runs"), "--test-size", "64", "--data-root", str(tmp_path / "data")])
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| c4") or line.startswith("| d4")}
    assert float(rows["d4"][2]) == 0  # mirror disagreement: none for D4-invariant logits, whatever the weights
    assert 0 <= float(rows["c4"][2]) <= 100 and 0 <= float(rows["c4"][1]) <= 100  # (an untrained network predicts one class)


@needs_data
def test_last_epoch_error_evaluates_the_weights_of_last_pt(tmp_path, capsys):
    from last_epoch_error import main

    from pyg_implicit import save_model
    from pyg_implicit.checkpoint import save_checkpoint

    torch.manual_seed(0)
    run = tmp_path / "runs" / "p4cnn_s0"
    run.mkdir(parents=True)
    save_model(GCNN("p4", 2), str(run / "model.pt"))  # the best-on-validation network
    last = GCNN("p4", 2).eval()  # other weights: the last epoch's
    save_checkpoint({"model": last.state_dict(), "epoch": 29}, str(run / "last.pt"))
    (run / "metrics.json").write_text(json.dumps({"test_error": 0.5, "best_epoch": 12}))
    main([str(tmp_path / "runs"), "--test-size", "64", "--data-root", str(tmp_path / "data")])
    test = RotatedMNIST(str(tmp_path / "data"), "test", num_samples=64)
    x, y = torch.cat([d.x for d in test]), torch.cat([d.y for d in test])
    with torch.no_grad():
        expected = 100 * float(last(x).argmax(-1).ne(y).double().mean())
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| p4cnn_s0"))
    assert row.split(" | ")[1:] == [f"{expected:.2f}", "50.00", "12 |"]


@pytest.mark.parametrize("group", ["c4", "d4", "so2"])
def test_implicit_kernel_cnn_spends_the_budget_on_channels(group):
    """At the Z2CNN's budget the implicit-kernel CNN has at least 27 channels a pixel (9 fields of
    0e, 1o, 2e); its kernels' G-MLPs once took the whole budget and left it one scalar field."""
    from train_images import sized_model

    budget = count_parameters(GCNN("z2"))
    model, size = sized_model("ik", group, budget)
    assert size >= 9 and model.convs[1].irreps_in.dim >= 27
    assert abs(count_parameters(model) - budget) < 0.1 * budget


def test_train_images_passes_the_readout_options_to_the_models():
    from train_images import build_model, sized_model

    assert build_model("p4cnn", 2, "c4", readout="mean").readout == "mean"
    model, _ = sized_model("ik", "c4", count_parameters(GCNN("z2")), kernel_width=1, readout_irreps="10x1o")
    assert str(model.out.irreps_out) == "10x1o" and model.readout.in_features == 20
    with pytest.raises(ValueError, match="readout: expected 'max' or 'mean'"):
        build_model("z2cnn", 2, "c4", readout="mean")  # the Z2CNN has no group axis to pool over


def test_field_dropout_drops_whole_fields_and_only_in_training():
    """Each field of each pixel is kept whole (scaled by 1/(1-p)) or zeroed, so the dropped
    features are still fields; the kept fraction is 1 - p; evaluation is untouched."""
    model = SteerableImageCNN("1x0e+2x1o", "c4", dropout=0.25)
    x = torch.randn(64, 7, 6, 6)
    y = model._field_dropout(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    vectors = kept[:, 1:].unflatten(1, (2, 3))  # [B, field, component, H, W]
    assert torch.equal(vectors.all(2), vectors.any(2))  # the three components of a vector go together
    assert abs(kept.double().mean().item() - 0.75) < 0.02
    assert torch.equal(model.eval()._field_dropout(x), x)
    with pytest.raises(ValueError, match="dropout: expected a probability"):
        SteerableImageCNN("1x0e", "c4", dropout=1.0)


@pytest.mark.slow  # builds ~100 networks while sizing them (~40 s)
def test_every_benchmark_model_is_at_the_z2cnns_budget():
    """The benchmark compares its networks at equal parameter count: each is within 10% of the Z2CNN's,
    except the orbit-ELU network, which keeps the gated network's fields and so has fewer (its README row says so)."""
    from images_benchmark import MODELS
    from train_images import model_from_args, parse_args

    budget = count_parameters(GCNN("z2"))
    fewer = {"implicit-kernel CNN, C4, G-MLP width 1, orbit ELU"}
    for label, flags in MODELS.items():
        model, _ = model_from_args(parse_args(flags))
        count = count_parameters(model)
        assert count <= 1.1 * budget and (label in fewer or count >= 0.9 * budget), (label, count, budget)
