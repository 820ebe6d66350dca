"""Test error of each run's last-epoch weights beside that of its best-on-validation checkpoint: what the
checkpoint rule (lowest validation loss) costs or gains a model.

    python examples/last_epoch_error.py runs/images_readout_c4_1o2e     # after examples/images_benchmark.py

Each run directory of ``runs`` holds ``model.pt`` (the network, with the best-on-validation weights),
``last.pt`` (the resumable state of the last epoch, batch-norm statistics recomputed as before each
validation) and ``metrics.json`` (the best checkpoint's test error and epoch). The last epoch's weights
are loaded into the network of ``model.pt`` and evaluated on the test digits.
"""
import argparse
import glob
import json
import os

import torch
from mirror_confusions import predict

from pyg_implicit import load_model
from pyg_implicit.checkpoint import load_checkpoint
from pyg_implicit.datasets import RotatedMNIST


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a directory of runs, each with model.pt, last.pt and metrics.json")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    parser.add_argument("--test-size", type=int, help="test digits evaluated (default: all 48,000, as metrics.json's test error)")
    args = parser.parse_args(argv)
    test = RotatedMNIST(args.data_root, "test", num_samples=args.test_size)
    x, y = torch.cat([d.x for d in test]), torch.cat([d.y for d in test])
    print("| run | test error, last epoch (%) | test error, best on validation (%) | best epoch |")
    print("|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(args.runs, "*", "model.pt"))):
        run = os.path.dirname(path)
        model = load_model(path)
        model.load_state_dict(load_checkpoint(os.path.join(run, "last.pt"))["model"])
        with open(os.path.join(run, "metrics.json")) as f:
            metrics = json.load(f)
        error = float(predict(model.eval(), x).ne(y).double().mean())
        print(f"| {os.path.basename(run)} | {100 * error:.2f} | {100 * metrics['test_error']:.2f} | {metrics['best_epoch']} |", flush=True)


if __name__ == "__main__":
    main()
