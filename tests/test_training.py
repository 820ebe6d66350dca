import json
import os
import subprocess
import sys

import pytest
import torch

from train_nbody import main as train_nbody

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL = ["--train-size", "24", "--eval-size", "8", "--batch-size", "8", "--width", "2", "--no-progress"]


@pytest.mark.slow
def test_training_writes_metrics_checkpoints_and_resumes(tmp_path):
    out = str(tmp_path / "run")
    args = ["--model", "ik", "--group", "so2", "--stiffness", "10", "--data-root", str(tmp_path / "data"), "--out-dir", out]
    metrics = train_nbody(args + SMALL + ["--epochs", "2"])
    assert {"last.pt", "best.pt", "metrics.json"} <= set(os.listdir(out))
    assert len(metrics["history"]) == 2 and metrics["test_loss"] > 0
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["config"]["extra"]["model"] == "ik-so2" and saved["parameters"] == metrics["parameters"]
    state = torch.load(os.path.join(out, "last.pt"), weights_only=True)  # plain data: no code runs on load
    assert state["epoch"] == 1 and set(state["rng"]) == {"torch", "loader"}
    resumed = train_nbody(args + SMALL + ["--epochs", "3", "--resume"])
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2]
    assert resumed["history"][:2] == metrics["history"]
    # the random states travel with the checkpoint: resuming gives the run that was never interrupted
    straight = train_nbody([a if a != out else str(tmp_path / "straight") for a in args] + SMALL + ["--epochs", "3"])
    assert [r["train_loss"] for r in straight["history"]] == [r["train_loss"] for r in resumed["history"]]
    epoch_seconds = sum(r["seconds"] for r in resumed["history"])
    assert epoch_seconds <= resumed["train_seconds"] and resumed["train_seconds"] > metrics["train_seconds"]  # summed over both segments
    assert not [name for name in os.listdir(out) if ".tmp" in name]  # checkpoints are written through a rename


def test_worker_processes_and_time_limit(tmp_path):
    args = ["--model", "mpnn", "--epochs", "2", "--data-root", str(tmp_path / "data")] + SMALL
    plain = train_nbody(args + ["--out-dir", str(tmp_path / "plain")])
    workers = train_nbody(args + ["--out-dir", str(tmp_path / "workers"), "--workers", "2"])
    assert [r["train_loss"] for r in workers["history"]] == [r["train_loss"] for r in plain["history"]]
    assert workers["test_loss"] == plain["test_loss"] and not plain["stopped_early"]
    # a spent wall-clock budget starts no epoch: the initial weights are tested, and the run says it stopped
    stopped = train_nbody(args + ["--out-dir", str(tmp_path / "stopped"), "--time-limit", "0"])
    assert stopped["stopped_early"] and stopped["history"] == [] and stopped["best_epoch"] == -1


@pytest.mark.slow
@pytest.mark.parametrize("model", ["segnn", "mpnn", "standard"])
def test_baselines_train(tmp_path, model):
    metrics = train_nbody(["--model", model, "--epochs", "5", "--lr", "1.6e-2", "--data-root", str(tmp_path / "data"),
                           "--out-dir", str(tmp_path / model)] + SMALL + ["--width", "8"])  # fmt: skip
    losses = [r["train_loss"] for r in metrics["history"]]
    assert losses[-1] < 0.8 * losses[0], losses  # training lowers the loss


@pytest.mark.slow
def test_distributed_data_parallel_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           os.path.join(ROOT, "examples", "train_nbody.py"), "--model", "ik", "--group", "so2", "--epochs", "2",
           "--data-root", str(tmp_path / "data"), "--out-dir", str(out)] + SMALL  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 2


def test_run_once_reuses_finished_runs_and_resumes_interrupted_ones(tmp_path):
    from pyg_implicit.training import run_many, run_once

    calls = []

    def train(argv):
        calls.append(argv)
        out = argv[argv.index("--out-dir") + 1]
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"test_loss": 1.5}, f)
        return {"test_loss": 1.5}

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"")  # an interrupted run
    assert run_once(str(run_dir), train, ["--epochs", "3"]) == {"test_loss": 1.5}
    assert calls == [["--epochs", "3", "--out-dir", str(run_dir), "--resume"]]
    assert run_once(str(run_dir), train, ["--epochs", "3"]) == {"test_loss": 1.5} and len(calls) == 1  # read, not rerun
    other = tmp_path / "other"
    other.mkdir()
    assert list(run_many([(str(run_dir), ["--epochs", "3"]), (str(other), [])], train)) == [{"test_loss": 1.5}] * 2
    assert calls[-1] == ["--out-dir", str(other)] and len(calls) == 2  # in order, finished runs read
    with pytest.raises(ValueError, match=r"other arguments.*--epochs', '4'"):  # not the run that was asked for
        run_once(str(run_dir), train, ["--epochs", "4"])


def test_fit_records_a_validation_metric_and_the_test_metric(tmp_path):
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    from pyg_implicit.training import TrainConfig, evaluate, fit

    def make(n):
        return [Data(x=x[None], y=2.0 * x[:1]) for x in torch.randn(n, 3)]

    def mse(net, batch):
        return (net(batch.x)[:, 0] - batch.y).pow(2).mean(), batch.num_graphs

    def mae(net, batch):
        return (net(batch.x)[:, 0] - batch.y).abs().mean(), batch.num_graphs

    torch.manual_seed(0)
    model, (train, val, test) = torch.nn.Linear(3, 1), (make(32), make(16), make(16))
    config = TrainConfig(epochs=3, batch_size=8, lr=1e-2, out_dir=str(tmp_path / "run"), progress=False)
    metrics = fit(model, train, val, test, mse, config, metric_fn=mae)
    assert all("val_metric" in r for r in metrics["history"])
    # both are those of the best-on-validation weights, which fit leaves in the model
    best = metrics["history"][metrics["best_epoch"]]
    assert evaluate(model, DataLoader(val, batch_size=8), mae, torch.device("cpu")) == pytest.approx(best["val_metric"])
    assert evaluate(model, DataLoader(test, batch_size=8), mae, torch.device("cpu")) == pytest.approx(metrics["test_metric"])


def test_warmup_rises_linearly_composes_with_the_decay_and_resumes(tmp_path):
    from torch_geometric.data import Data

    from pyg_implicit.training import TrainConfig, fit

    data = [Data(x=x[None], y=x[:1]) for x in torch.randn(16, 3)]  # 2 steps of 8 per epoch

    def mse(net, batch):
        return (net(batch.x)[:, 0] - batch.y).pow(2).mean(), batch.num_graphs

    def run(out, epochs, resume=False):
        torch.manual_seed(0)
        config = TrainConfig(epochs=epochs, batch_size=8, lr=1e-2, lr_step=1, lr_decay=0.5, warmup_steps=4, out_dir=str(tmp_path / out),
                             progress=False, resume=resume)  # fmt: skip
        return [r["lr"] for r in fit(torch.nn.Linear(3, 1), data, data, data, mse, config)["history"]]

    # after epoch 0: 2 of 4 warmup steps (factor 1/4 + 3/4 * 2/4) and one halving; then warm, halved twice, three times
    assert run("straight", 3) == pytest.approx([1e-2 * 0.625 * 0.5, 1e-2 * 0.25, 1e-2 * 0.125])
    run("resumed", 1)
    assert run("resumed", 3, resume=True) == run("straight", 3)  # the warmup's step count travels with last.pt


def test_grad_clip_bounds_every_step_and_the_history_records_the_norm_before(tmp_path):
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    from torch_geometric.data import Data

    from pyg_implicit.training import TrainConfig, fit

    data = [Data(x=x[None], y=100 * x[:1]) for x in torch.randn(16, 3)]  # 2 steps of 8 per epoch, gradients of norm ~100

    def mse(net, batch):
        return (net(batch.x)[:, 0] - batch.y).pow(2).mean(), batch.num_graphs

    step_norms = []  # the gradient norm the optimizer sees at each step

    def record(optimizer, args, kwargs):
        step_norms.append(float(torch.cat([p.grad.flatten() for g in optimizer.param_groups for p in g["params"]]).norm()))

    def run(out, grad_clip):
        step_norms.clear()
        torch.manual_seed(0)
        config = TrainConfig(epochs=3, batch_size=8, lr=1e-3, grad_clip=grad_clip, out_dir=str(tmp_path / out), progress=False)
        handle = register_optimizer_step_pre_hook(record)
        try:
            history = fit(torch.nn.Linear(3, 1), data, data, data, mse, config)["history"]
        finally:
            handle.remove()
        return [r["grad_norm_max"] for r in history], list(step_norms)

    recorded, seen = run("free", None)
    assert recorded == pytest.approx([max(seen[0:2]), max(seen[2:4]), max(seen[4:6])])
    assert min(seen) > 10
    recorded, seen = run("clipped", 0.5)
    assert max(seen) == pytest.approx(0.5) and min(recorded) > 10  # clipped for the step, recorded as computed
    with pytest.raises(ValueError, match="grad_clip"):
        run("zero", 0.0)


def test_blew_up_names_runs_whose_last_training_loss_left_their_lowest_far_behind():
    from pyg_implicit.training import blew_up

    def history(*losses):
        return [{"epoch": i, "train_loss": loss} for i, loss in enumerate(losses)]

    assert not blew_up(history(1.0, 0.1, 0.05, 0.08))  # noise near the lowest
    assert blew_up(history(1.0, 1e-4, 7e1, 1e17))  # the N-body blow-up
    assert blew_up(history(1.0, 1e-3, 0.55))  # stuck at a constant prediction, from below 1e-3
    assert blew_up(history(1.0, float("nan")))  # not finite at the end
    assert not blew_up(history(float("nan"), 1.0, 0.5))  # a non-finite epoch recovered from
    assert not blew_up([])
    assert not blew_up(history(1.0, 0.1, 0.5), factor=10) and blew_up(history(1.0, 0.1, 0.5), factor=2)
    with pytest.raises(ValueError, match="factor"):
        blew_up(history(1.0), factor=1.0)


@pytest.mark.parametrize("kind", ["torch", "e3nn", "equivariant"])
def test_precise_bn_averages_the_batch_statistics_with_dropout_off(kind):
    from e3nn import nn as e3nn_nn

    from pyg_implicit.nn import EquivariantBatchNorm
    from pyg_implicit.training.precise_bn import batch_norms, recompute_batch_norm_statistics

    irreps = "2x0e+1x1o"
    norm = {"torch": lambda: torch.nn.BatchNorm1d(5), "e3nn": lambda: e3nn_nn.BatchNorm(irreps),
            "equivariant": lambda: EquivariantBatchNorm(irreps, "so2")}[kind]()  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Linear(5, 5), torch.nn.Dropout(0.5), norm).train()
    momentum = norm.momentum
    batches = [torch.randn(16, 5) * (i + 1) + i for i in range(3)]
    assert batch_norms(model) == [norm]

    def stats(xs):
        assert recompute_batch_norm_statistics(model, xs, model) == len(xs)
        return [b.clone() for name, b in norm.named_buffers() if name.startswith("running")]

    alone = [stats([x]) for x in batches]  # each batch's own statistics, without dropout (deterministic)
    assert all(torch.equal(a, b) for a, b in zip(stats(batches[:1]), alone[0]))
    together = stats(batches)
    for i, value in enumerate(together):
        torch.testing.assert_close(value, sum(a[i] for a in alone) / len(alone))
    assert model.training and model[1].training and norm.momentum == momentum  # mode and momentum restored
    assert recompute_batch_norm_statistics(torch.nn.Linear(2, 2), batches, model) == 0  # no batch norm: nothing runs


def test_precise_bn_with_dropout_on_gives_the_inflated_statistics():
    from pyg_implicit.training.precise_bn import recompute_batch_norm_statistics

    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(4))
    batches = [torch.randn(4096, 4)]
    recompute_batch_norm_statistics(model, batches, model)
    plain = model[1].running_var.clone()
    recompute_batch_norm_statistics(model, batches, model, dropout=True)
    # inverted dropout keeps the mean and doubles E[x^2] at p = 0.5: the variance of standard normals doubles
    torch.testing.assert_close(model[1].running_var / plain, torch.full((4,), 2.0), atol=0.15, rtol=0)
