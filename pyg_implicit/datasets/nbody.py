r"""The constrained N-body system of the paper (sec. 5.2, app. B.2) and its PyG dataset.

Five particles in 3D (the springs system of Kipf et al., 2018, as adapted by EGNN/SEGNN): each
pair is joined with probability 1/2 by a spring of rest length 0 and constant 0.1, and each
particle hangs on a string attached to the XY plane that slides freely over it, with equilibrium
length :math:`l_i \sim U(0, 1)` and stiffness :math:`k`:

.. math::
    \ddot x_i = -0.1 \sum_j A_{ij} (x_i - x_j) - k (z_i - l_i)\, \hat z

(force components clipped to :math:`\pm 100`, unit masses), integrated by semi-implicit Euler
with :math:`dt = 0.001` for 5000 steps, a frame every 100 steps. The strings break the rotational
symmetry of the free system down to rotations about z and mirrors through vertical planes (the
group ``cone``). Task: from frame 30 predict the positions at frame 40.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch_geometric.data import Data

from ..graph import fully_connected_graph
from .cache import CachedDataset

__all__ = ["NBodyConstrained", "simulate", "sample_initial_conditions", "energy", "NBodySystem"]

SPLIT_SIZES = {"train": 3000, "val": 128, "test": 128}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}  # disjoint random streams per split
STIFFNESS_VALUES = (0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 1000.0)


@dataclass
class NBodySystem:
    """Initial conditions of a batch of systems (float64 arrays, ``B`` systems of ``n`` particles)."""

    pos: np.ndarray  # [B, n, 3]
    vel: np.ndarray  # [B, n, 3]
    springs: np.ndarray  # [B, n, n] symmetric 0/1, zero diagonal
    lengths: np.ndarray  # [B, n] equilibrium lengths of the strings


def sample_initial_conditions(num: int, seed: int, num_particles: int = 5) -> NBodySystem:
    """Positions :math:`N(0, 0.5^2)`, velocities of random direction and norm 0.5, springs with p = 1/2, :math:`l \\sim U(0,1)`."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.0, 0.5, (num, num_particles, 3))
    vel = rng.normal(size=(num, num_particles, 3))
    vel = 0.5 * vel / np.linalg.norm(vel, axis=-1, keepdims=True)
    upper = np.triu(rng.random((num, num_particles, num_particles)) < 0.5, k=1)
    springs = (upper | upper.transpose(0, 2, 1)).astype(np.float64)
    lengths = rng.uniform(0.0, 1.0, (num, num_particles))
    return NBodySystem(pos, vel, springs, lengths)


def forces(pos: np.ndarray, system: NBodySystem, stiffness: float, spring_constant: float = 0.1, clip: float = 100.0) -> np.ndarray:
    """Spring forces :math:`-c \\sum_j A_{ij}(x_i - x_j)` plus the string force along z, clipped per component."""
    degree = system.springs.sum(-1, keepdims=True)
    f = -spring_constant * (degree * pos - system.springs @ pos)
    f[..., 2] -= stiffness * (pos[..., 2] - system.lengths)
    return np.clip(f, -clip, clip)


def energy(pos: np.ndarray, vel: np.ndarray, system: NBodySystem, stiffness: float, spring_constant: float = 0.1) -> np.ndarray:
    """Total energy ``[B]``: kinetic + spring + string potential (without clipping)."""
    kinetic = 0.5 * (vel**2).sum((-1, -2))
    diff = pos[:, :, None, :] - pos[:, None, :, :]
    springs = 0.25 * spring_constant * (system.springs * (diff**2).sum(-1)).sum((-1, -2))  # each pair counted twice
    strings = 0.5 * stiffness * ((pos[..., 2] - system.lengths) ** 2).sum(-1)
    return kinetic + springs + strings


def simulate(
    system: NBodySystem,
    stiffness: float,
    steps: int = 5000,
    sample_every: int = 100,
    dt: float = 1e-3,
) -> tuple:
    """Integrate all systems at once with semi-implicit Euler.

    Returns:
        ``(positions, velocities)``, each ``[B, steps // sample_every + 1, n, 3]``; frame ``f`` is
        the state after ``f * sample_every`` steps (frame 0 the initial state).
    """
    pos, vel = system.pos.copy(), system.vel.copy()
    frames_pos, frames_vel = [pos.copy()], [vel.copy()]
    for step in range(1, steps + 1):
        vel = vel + dt * forces(pos, system, stiffness)
        pos = pos + dt * vel
        if step % sample_every == 0:
            frames_pos.append(pos.copy())
            frames_vel.append(vel.copy())
    return np.stack(frames_pos, 1), np.stack(frames_vel, 1)


class NBodyConstrained(CachedDataset):
    r"""The constrained N-body dataset: frame 30 of a simulated system in, positions at frame 40 out.

    Generated on first use (seeded: the same arguments give the same data; train, val and test
    come from disjoint random streams and, across stiffness values, share initial conditions) and
    cached under ``root``; the stiffness is part of the file name.

    Each graph is fully connected (20 directed edges). Fields:

    * ``pos`` :math:`(5, 3)`: positions at frame 30; ``vel`` :math:`(5, 3)`: velocities;
      ``length`` :math:`(5, 1)`: equilibrium lengths :math:`l_i` of the strings;
    * ``x`` :math:`(5, 7)`: node features ``[pos, vel, length]`` with irreps :attr:`node_irreps`
      ``"1x1o+1x1o+1x0e"`` (absolute positions: the strings are attached at z = 0);
    * ``edge_attr`` :math:`(20, 1)`: spring indicator :math:`A_{ij}` (irreps ``"1x0e"``), only
      with ``springs=True``;
    * ``y`` :math:`(5, 3)`: positions at frame 40.

    Two protocols: ``springs=True`` (ours) tells every model which pairs are joined by a spring;
    ``springs=False`` is the paper's (app. B.2: the inputs are positions, velocities and the
    strings' rest lengths, no adjacency), where a model must infer the springs from the motion.

    Args:
        root (str): Cache directory.
        stiffness (float): String stiffness :math:`k` (the paper sweeps 0, 1, 5, 10, 25, 50, 100,
            200, 1000).
        split (str): ``"train"`` (3000 systems), ``"val"`` or ``"test"`` (128 each).
        num_samples (int, optional): Use fewer (or more) systems than the paper's size.
        springs (bool): Include the spring indicator as ``edge_attr``. (default: :obj:`True`)
        transform, pre_transform: As for any PyG dataset.
        force_reload (bool): Regenerate the cached data. (default: :obj:`False`)
    """

    node_irreps = "1x1o+1x1o+1x0e"
    edge_irreps = "1x0e"
    input_frame, target_frame = 30, 40

    def __init__(
        self,
        root: str,
        stiffness: float,
        split: str = "train",
        num_samples: Optional[int] = None,
        springs: bool = True,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        force_reload: bool = False,
    ) -> None:
        if split not in SPLIT_SIZES:
            raise ValueError(f"split: expected one of {sorted(SPLIT_SIZES)}, got {split!r}")
        if not (isinstance(stiffness, (int, float)) and np.isfinite(stiffness) and stiffness >= 0):
            raise ValueError(f"stiffness: expected a finite non-negative number, got {stiffness!r}")
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples: expected a positive int, got {num_samples!r}")
        self.stiffness = float(stiffness)
        self.split = split
        self.num_samples = num_samples or SPLIT_SIZES[split]
        self.springs = bool(springs)
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def raw_file_names(self) -> list:
        return []  # generated, nothing to download

    @property
    def processed_file_names(self) -> list:
        return [f"nbody_k{self.stiffness:g}_{self.split}_{self.num_samples}{'' if self.springs else '_nosprings'}.pt"]

    def download(self) -> None:
        pass

    def process(self) -> None:
        system = sample_initial_conditions(self.num_samples, SPLIT_SEEDS[self.split])
        pos, vel = simulate(system, self.stiffness, steps=self.target_frame * 100)
        edge_index = fully_connected_graph(torch.zeros(system.pos.shape[1], dtype=torch.long))  # [2, 20]
        data_list = []
        for b in range(self.num_samples):
            p = torch.tensor(pos[b, self.input_frame], dtype=torch.float32)
            v = torch.tensor(vel[b, self.input_frame], dtype=torch.float32)
            length = torch.tensor(system.lengths[b], dtype=torch.float32)[:, None]
            springs = torch.tensor(system.springs[b], dtype=torch.float32)
            data = Data(
                pos=p, vel=v, length=length, x=torch.cat([p, v, length], dim=1), edge_index=edge_index,
                y=torch.tensor(pos[b, self.target_frame], dtype=torch.float32),
            )  # fmt: skip
            if self.springs:
                data.edge_attr = springs[edge_index[1], edge_index[0]][:, None]
            data_list.append(self.pre_transform(data) if self.pre_transform is not None else data)
        os.makedirs(osp.dirname(self.processed_paths[0]), exist_ok=True)
        self.save(data_list, self.processed_paths[0])

    def __repr__(self) -> str:
        springs = "" if self.springs else ", springs=False"
        return f"{self.__class__.__name__}({len(self)}, stiffness={self.stiffness:g}, split={self.split}{springs})"
