"""What dropout before batch norm does to an evaluated network: each trained rotated-MNIST model of
a benchmark directory, evaluated with batch-norm statistics averaged over the training digits with
dropout on (what the running averages of plain training estimate) and with dropout off (precise BN).

    python examples/precise_bn_effect.py runs/images_benchmark     # after examples/images_benchmark.py

Same weights, two sets of statistics; prints a table of validation and test error (%) per run.
"""
import argparse
import glob
import os

import torch
from torch import nn

from pyg_implicit import load_model
from pyg_implicit.datasets import RotatedMNIST
from pyg_implicit.training.precise_bn import batch_norms, recompute_batch_norm_statistics


def stack(dataset, limit=None):
    items = dataset[:limit] if limit else dataset
    return torch.cat([d.x for d in items]), torch.cat([d.y for d in items])


@torch.no_grad()
def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(torch.cat([model(x[i : i + 512]).argmax(-1) for i in range(0, len(x), 512)]).ne(y).double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a directory of runs, each with model.pt")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    parser.add_argument("--test-size", type=int, default=10000, help="test digits evaluated")
    args = parser.parse_args()
    train_x, _ = stack(RotatedMNIST(args.data_root, "train"))
    val, test = stack(RotatedMNIST(args.data_root, "val")), stack(RotatedMNIST(args.data_root, "test"), args.test_size)
    batches = list(train_x.split(128))
    print("| run | val, dropout on (%) | val, dropout off (%) | test, dropout on (%) | test, dropout off (%) |\n|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(args.runs, "*", "model.pt"))):
        model = load_model(path)
        if not batch_norms(model) or not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()):
            continue
        row = {}
        for dropout in (True, False):
            torch.manual_seed(0)  # the dropout masks
            recompute_batch_norm_statistics(model, batches, model, dropout=dropout)
            row[dropout] = (error(model, *val), error(model, *test))
        (v_on, t_on), (v_off, t_off) = row[True], row[False]
        name = os.path.basename(os.path.dirname(path))
        print(f"| {name} | {100 * v_on:.2f} | {100 * v_off:.2f} | {100 * t_on:.2f} | {100 * t_off:.2f} |", flush=True)


if __name__ == "__main__":
    main()
