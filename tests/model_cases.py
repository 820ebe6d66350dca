"""Every model of the package, small, with an input: the cases that the checkpoint and device tests share.

``CASES[name] = (build, run)``: ``build()`` makes the model, ``run(model, device="cpu")`` applies it to a
fixed input moved to ``device``.
"""
import torch
from torch_geometric.data import Batch, Data

from pyg_implicit.graph import knn_graph
from pyg_implicit.groups import Group, rotation_z
from pyg_implicit.models import GCNN, MPNN, SEGNN, PointCloudClassifier, QM9Net, SteerableCNN, SteerableImageCNN
from pyg_implicit.models.nbody import NBodyPredictor
from pyg_implicit.transforms import KNNHierarchy
from conftest import random_head


def to(tensors, device):
    """``tensors`` on ``device``, floating ones in the default dtype (the module-level inputs are float32)."""
    return tuple(t.to(device, torch.get_default_dtype()) if t.is_floating_point() else t.to(device) for t in tensors)


def graph(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g)
    return pos, knn_graph(pos, 4)


def molecule_batch():
    pos, edge_index = graph()
    g = torch.Generator().manual_seed(2)
    x = torch.eye(5)[torch.randint(0, 5, (12,), generator=g)]
    bonds = torch.eye(4)[torch.randint(0, 4, (edge_index.shape[1],), generator=g)]
    return Batch.from_data_list([Data(x=x, pos=pos, edge_index=edge_index, edge_attr=bonds)])


def point_batch():
    g = torch.Generator().manual_seed(3)
    pos, normal = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    data = Data(pos=pos, normal=torch.nn.functional.normalize(normal, dim=1))
    torch.manual_seed(0)  # KNNHierarchy samples the kept points
    return Batch.from_data_list([KNNHierarchy([32, 16], k=4)(data)])


def system(device="cpu"):
    """One N-body-like graph with the 7 node features of ``NBodyPredictor``, on ``device``."""
    pos, edge_index = graph()
    x, pos = to((NODES, pos), device)
    return Data(x=x, pos=pos, edge_index=edge_index.to(device), edge_attr=None)


IMAGES = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
NODES = torch.randn(12, 7, generator=torch.Generator().manual_seed(1))
C6 = Group("my_c6", discrete_generators=[rotation_z(torch.pi / 3)])  # a group that is not in the catalogue

CASES = {
    "steerable_cnn": (lambda: random_head(SteerableCNN("2x0e+1x1o", "4x0e+2x1o", "1x1o", C6, num_layers=2, lmax=1)),
                      lambda m, d="cpu": m(*to((NODES[:, :5], *graph()), d))),
    "nbody_predictor": (lambda: random_head(NBodyPredictor(SteerableCNN("1x1o+1x1o+1x0e", "4x0e+2x1o", "1x1o", "so2", num_layers=1, lmax=1))),
                        lambda m, d="cpu": m(system(d))),
    "qm9": (lambda: QM9Net("4x0e+2x1o", num_layers=2, group="o3", readout=8), lambda m, d="cpu": m(molecule_batch().to(d))),
    "pointcloud": (lambda: PointCloudClassifier("4x0e+2x1o", num_classes=5, group="cone", num_layers=2, readout=8),
                   lambda m, d="cpu": m(point_batch().to(d))),
    "segnn": (lambda: random_head(SEGNN("1x1o", "4x0e+2x1o", "1x1o", num_layers=1)), lambda m, d="cpu": m(*to((NODES[:, :3], *graph()), d))),
    "mpnn": (lambda: random_head(MPNN(3, 8, 3, num_layers=1)), lambda m, d="cpu": m(*to((NODES[:, :3], *graph()), d))),
    "gcnn": (lambda: GCNN("p4", channels=2), lambda m, d="cpu": m(*to([IMAGES], d))),
    "image_cnn": (lambda: SteerableImageCNN("2x0e+1x1o", group="c4", kernel_hidden_irreps="2x0e+1x1o"),
                  lambda m, d="cpu": m(*to([IMAGES], d))),
    "image_cnn_orbit_elu": (lambda: SteerableImageCNN("1x0e+1x1o+1x2e", group="d4", kernel_hidden_irreps="1x0e+1x1o+1x2e", activation="orbit_elu"),
                            lambda m, d="cpu": m(*to([IMAGES], d))),
    "image_cnn_basis": (lambda: SteerableImageCNN("1x0e+1x1o+1x2e", group="c4", kernel="basis"), lambda m, d="cpu": m(*to([IMAGES], d))),
    "image_cnn_invariant_readout": (lambda: SteerableImageCNN("1x0e+1x1o+1x2e", group="c4", kernel="basis", readout_irreps="2x0e+2x1o"),
                                    lambda m, d="cpu": m(*to([IMAGES], d))),
}  # fmt: skip
