"""Which rotated-MNIST digits a mirror-invariant network cannot tell apart: each trained model of a
benchmark directory, evaluated on test digits and on their mirror images.

    python examples/mirror_confusions.py runs/images_benchmark     # after examples/images_benchmark.py

A network whose logits are invariant to D4 (P4MCNN, the D4 implicit-kernel CNN) gives a digit and
its mirror image the same class, but the labels are invariant to rotations only: a mirrored 2 is
read as a 5 or a 7 by a network that sees mirrors as different. Per run, prints the test error, the
mirror disagreement (the fraction of test digits whose predicted class changes under the mirror
y -> -y; 0 for a D4-invariant network), the most frequent (true class -> class of the mirror image)
pairs, and the most frequent errors (true -> predicted class), in % of the test digits.
"""
import argparse
import glob
import os
from collections import Counter

import torch

from pyg_implicit import load_model
from pyg_implicit.datasets import RotatedMNIST
from pyg_implicit.nn.image_action import transform_image

MIRROR = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # y -> -y on the image (a half-turn about x, as in d4)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([model(b).argmax(-1) for b in x.split(batch_size)])


def top_pairs(true: torch.Tensor, other: torch.Tensor, total: int, k: int = 3) -> str:
    """The k most frequent pairs ``a -> b`` with a != b, each in % of ``total`` digits."""
    pairs = Counter((int(a), int(b)) for a, b in zip(true, other) if a != b).most_common(k)
    return ", ".join(f"{a} -> {b} {100 * n / total:.2f}" for (a, b), n in pairs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a directory of runs, each with model.pt")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    parser.add_argument("--test-size", type=int, default=10000, help="test digits evaluated")
    args = parser.parse_args(argv)
    test = RotatedMNIST(args.data_root, "test", num_samples=args.test_size)
    x, y = torch.cat([d.x for d in test]), torch.cat([d.y for d in test])
    mirrored = transform_image(x, MIRROR)
    print("| run | test error (%) | mirror disagreement (%) | true -> class of the mirror image (%) | errors: true -> predicted (%) |")
    print("|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(args.runs, "*", "model.pt"))):
        model = load_model(path).eval()
        pred, pred_mirrored = predict(model, x), predict(model, mirrored)
        name = os.path.basename(os.path.dirname(path))
        print(f"| {name} | {100 * float(pred.ne(y).double().mean()):.2f} | {100 * float(pred.ne(pred_mirrored).double().mean()):.2f} | "
              f"{top_pairs(y, pred_mirrored, len(y))} | {top_pairs(y, pred, len(y))} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
