r"""Closed subgroups of :math:`O(3)` and their equivariant linear and bilinear maps.

A group :math:`G \le O(3)` is given the way one writes it on paper: by the generators of
its Lie algebra (infinitesimal rotations, :math:`3 \times 3` antisymmetric matrices) and by
discrete generators (:math:`3 \times 3` orthogonal matrices: a quarter turn, a mirror, the
inversion :math:`-I`). Every closed subgroup of :math:`O(3)` has this form: its identity
component :math:`G_0` is trivial, :math:`SO(2)` about an axis, or :math:`SO(3)`, and the
discrete generators pick finitely many cosets of :math:`G_0`.

Features are fields of e3nn irreps of :math:`O(3)` *restricted* to :math:`G`. A linear map
:math:`W: \rho_1 \to \rho_2` is :math:`G`-equivariant iff

.. math::
    D_2(g) W = W D_1(g) \quad \text{for every discrete generator } g, \qquad
    d\rho_2(A) W = W d\rho_1(A) \quad \text{for every Lie generator } A,

a homogeneous linear system in :math:`W` whose null space is solved once (SVD), made
canonical (it depends only on the subspace, not on the SVD routine) and cached. Bilinear
maps are linear maps out of :math:`\rho_1 \otimes \rho_2`. For :math:`G \supseteq SO(3)`
Schur's lemma and the Clebsch-Gordan coefficients are recovered, which the tests check.
"""
from __future__ import annotations

import contextlib
import math
import re
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import torch
from e3nn import o3

__all__ = [
    "Group",
    "get_group",
    "irreps_D",
    "GROUP_NAMES",
    "rotation_x",
    "rotation_z",
    "rotation_axis_angle",
]

_DTYPE = torch.float64
# Null-space threshold on eigenvalues of C^T C (squared singular values of the constraints C):
# null directions come out at ~1e-15, the others at >= ~1e-3 (e.g. |1 - exp(2 pi i / N)|^2).
_NULL_TOL = 1e-10
_MAX_COSETS = 2000


@contextlib.contextmanager
def _float64():
    """e3nn builds Wigner matrices in the default dtype: make that float64 while we solve."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(_DTYPE)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _single_thread():
    """Solve on one thread: the matrices are at most a few hundred wide, so threads only add
    overhead, and with the cores already busy OpenMP's spin-waiting made the solves 100x slower
    (measured: 28 s instead of 0.2 s for all O(3) bilinear bases up to l = 3)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@lru_cache(maxsize=None)
def _cg_embedding(l: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``((Q^T Q)^{-1} Q^T, Q)`` for ``Q = wigner_3j(1, l-1, l)``, float64."""
    with _float64():
        Q = o3.wigner_3j(1, l - 1, l).reshape(3 * (2 * l - 1), 2 * l + 1)
    return torch.linalg.solve(Q.T @ Q, Q.T), Q


def wigner_D_exact(l: int, R: torch.Tensor) -> torch.Tensor:
    r"""The Wigner matrix :math:`D^l(R)` ``[..., 2l+1, 2l+1]`` of rotations ``R`` ([..., 3, 3]), float64.

    e3nn computes it from Euler angles, whose ``acos`` loses digits near the poles (for a rotation
    about z by :math:`10^{-5}` the error reaches :math:`10^{-11}`). Here :math:`D^1(R) = R` (e3nn's
    ``1o`` basis is :math:`(x, y, z)`) and :math:`D^l = P (D^1 \otimes D^{l-1}) Q` with :math:`Q` the
    Clebsch-Gordan embedding of :math:`l` in :math:`1 \otimes (l-1)`: products only, exact to
    machine precision for every rotation.
    """
    R = R.to(_DTYPE)
    D = torch.ones(*R.shape[:-2], 1, 1, dtype=_DTYPE, device=R.device)
    for k in range(1, l + 1):
        P, Q = (M.to(R.device) for M in _cg_embedding(k))
        kron = torch.einsum("...ab,...cd->...acbd", R, D).reshape(*R.shape[:-2], 3 * (2 * k - 1), 3 * (2 * k - 1))
        D = P @ kron @ Q
    return D


def irreps_D(irreps: Union[str, o3.Irreps], R: torch.Tensor) -> torch.Tensor:
    r"""Block-diagonal representation matrices :math:`D(R)` ``[..., d, d]`` of ``irreps`` at ``R`` in :math:`O(3)`.

    Equals ``e3nn.o3.Irreps.D_from_matrix`` (an improper :math:`R = -R'` acts as
    :math:`p\, D^l(R')`), but exact to float64 for every element (see :func:`wigner_D_exact`)
    and whatever the default dtype. Computed in float64 on ``R``'s device, returned in ``R``'s dtype.
    """
    irreps = o3.Irreps(irreps)
    R64 = R.to(_DTYPE)
    det = torch.linalg.det(R64)[..., None, None]  # +-1
    proper = det * R64
    out = torch.zeros(*R.shape[:-2], irreps.dim, irreps.dim, dtype=_DTYPE, device=R.device)
    start = 0
    for mul, ir in irreps:
        D = wigner_D_exact(ir.l, proper) * (det if ir.p == -1 else 1.0)
        for _ in range(mul):
            out[..., start : start + ir.dim, start : start + ir.dim] = D
            start += ir.dim
    return out.to(R.dtype)


def _generator_matrices() -> torch.Tensor:
    r"""Cartesian generators :math:`(L_k)_{ij} = -\epsilon_{kij}` of :math:`so(3)`, shape [3, 3, 3]."""
    L = torch.zeros(3, 3, 3, dtype=_DTYPE)
    for k, i, j in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        L[k, i, j] = -1.0
        L[k, j, i] = 1.0
    return L


_L = _generator_matrices()


def rotation_axis_angle(axis: Sequence[float], angle: float) -> torch.Tensor:
    """Rotation by ``angle`` (radians) about ``axis`` as a float64 [3, 3] matrix."""
    n = torch.as_tensor(axis, dtype=_DTYPE)
    n = n / n.norm()
    return torch.matrix_exp(angle * torch.einsum("k,kij->ij", n, _L))


def rotation_z(angle: float) -> torch.Tensor:
    """Rotation by ``angle`` about the z axis."""
    return rotation_axis_angle([0.0, 0.0, 1.0], angle)


def rotation_x(angle: float) -> torch.Tensor:
    """Rotation by ``angle`` about the x axis."""
    return rotation_axis_angle([1.0, 0.0, 0.0], angle)


def _axial_vector(A: torch.Tensor) -> torch.Tensor:
    """The vectors ``a`` ([..., 3]) with ``A = sum_k a_k L_k`` for antisymmetric matrices ``A`` ([..., 3, 3])."""
    return A[..., [2, 0, 1], [1, 2, 0]]


def _span_basis(mats: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
    """Orthonormal basis (rows) of the span of a stack of flattened matrices."""
    mats = mats.flatten(1)
    if mats.shape[0] == 0:
        return mats
    _, s, vh = torch.linalg.svd(mats, full_matrices=False)
    return vh[s > tol * max(1.0, s[0].item())]


def _canonical_null_space(constraints: torch.Tensor, dim: int) -> torch.Tensor:
    r"""Canonical orthonormal basis of the null space of ``constraints`` ([m, dim]).

    A decomposition gives *some* orthonormal basis; it differs between LAPACK builds and would make
    saved weights machine-dependent. The orthogonal projector :math:`P` onto the null space is
    unique, so the basis is built from the columns of :math:`P` by Gram-Schmidt with column
    pivoting (largest residual first, lowest index on ties): a function of the subspace alone.
    Returns a [n, dim] tensor with orthonormal rows.
    """
    if constraints.shape[0] == 0:
        return torch.eye(dim, dtype=_DTYPE)
    # eigh of the small Gram matrix: robust where LAPACK's SVD fails to converge on the many
    # repeated singular values of these constraint matrices, and faster.
    evals, evecs = torch.linalg.eigh(constraints.T @ constraints)
    null = evecs[:, evals < _NULL_TOL * max(1.0, float(evals[-1]))].T  # [n, dim]
    n = null.shape[0]
    if n == 0:
        return null
    residual = null.T @ null  # projector, columns span the null space
    basis = []
    for _ in range(n):
        norms = residual.norm(dim=0)
        best = norms.max()
        j = int(torch.nonzero(norms > best - 1e-9).min())
        v = residual[:, j] / norms[j]
        basis.append(v)
        residual = residual - torch.outer(v, v @ residual)
    basis = torch.stack(basis)
    # Fix the sign: the largest-magnitude entry (lowest index on ties) is positive.
    for i in range(n):
        a = basis[i].abs()
        j = int(torch.nonzero(a > a.max() - 1e-9).min())
        if basis[i, j] < 0:
            basis[i] = -basis[i]
    return basis


class Group:
    r"""A closed subgroup :math:`G \le O(3)`, given by generators.

    Args:
        name (str): A display name.
        lie_generators (Tensor, optional): Antisymmetric matrices ``[k, 3, 3]`` spanning (after
            closure under commutators) the Lie algebra of the identity component. For example
            the rotation generator about z for :math:`SO(2)`.
        discrete_generators (Tensor, optional): Orthogonal matrices ``[m, 3, 3]``; with the
            identity component they generate the group. Each must normalise the Lie algebra.

    Example:
        The group of rotations about z together with the mirror :math:`y \to -y` ("cone"):

        >>> Lz = torch.tensor([[0., -1., 0.], [1., 0., 0.], [0., 0., 0.]], dtype=torch.float64)
        >>> mirror_y = torch.diag(torch.tensor([1., -1., 1.], dtype=torch.float64))
        >>> cone = Group("cone", lie_generators=[Lz], discrete_generators=[mirror_y])
        >>> cone.lie_dim, cone.has_improper, bool(cone.contains(rotation_z(0.3)))
        (1, True, True)
        >>> cone.invariant_basis("1o")  # the z component of a vector (e3nn orders 1o as x, y, z)
        tensor([[0., 0., 1.]], dtype=torch.float64)
    """

    def __init__(
        self,
        name: str,
        lie_generators: Optional[Union[torch.Tensor, Sequence[torch.Tensor]]] = None,
        discrete_generators: Optional[Union[torch.Tensor, Sequence[torch.Tensor]]] = None,
    ) -> None:
        self.name = name
        lie = _as_stack(lie_generators, "lie_generators")
        disc = _as_stack(discrete_generators, "discrete_generators")
        if lie.numel() and (lie + lie.transpose(-1, -2)).abs().max() > 1e-9:
            raise ValueError(
                f"lie_generators: expected antisymmetric 3x3 matrices (largest |A + A^T| is "
                f"{float((lie + lie.transpose(-1, -2)).abs().max()):.1e})"
            )
        eye = torch.eye(3, dtype=_DTYPE)
        deviation = float((disc @ disc.transpose(-1, -2) - eye).abs().max()) if disc.numel() else 0.0
        if deviation > 1e-9:
            raise ValueError(
                f"discrete_generators: expected orthogonal 3x3 matrices, but R R^T differs from I by {deviation:.1e} "
                "(the bases are solved exactly, so give the generators in float64: float32 rounding alone leaves "
                "~1e-7, e.g. pyg_implicit.groups.rotation_z(2 * math.pi / 6) rather than a float32 copy)"
            )
        self.lie_algebra = _lie_closure(lie)  # [k, 3, 3], orthonormal, k in {0, 1, 3}
        for g in disc:
            conj = g @ self.lie_algebra @ g.T
            if self.lie_algebra.shape[0] and (
                _span_basis(torch.cat([self.lie_algebra, conj])).shape[0] != self.lie_algebra.shape[0]
            ):
                raise ValueError(
                    "discrete_generators: each generator g must satisfy g A g^T in the span of "
                    "the Lie algebra; the group they generate with it is larger (add Lie generators)"
                )
        self.discrete_generators = disc
        self.coset_representatives = self._enumerate_cosets()
        self._cache: dict = {}

    # ------------------------------------------------------------------ structure
    @property
    def lie_dim(self) -> int:
        """Dimension of the Lie algebra: 0 (finite group), 1 (contains SO(2)) or 3 (contains SO(3))."""
        return self.lie_algebra.shape[0]

    @property
    def axis(self) -> Optional[torch.Tensor]:
        """Rotation axis of the identity component when it is :math:`SO(2)`, else ``None``."""
        if self.lie_dim != 1:
            return None
        a = _axial_vector(self.lie_algebra[0])
        return a / a.norm()

    @property
    def is_finite(self) -> bool:
        return self.lie_dim == 0

    @property
    def has_improper(self) -> bool:
        """Whether the group contains elements of determinant -1 (mirrors, inversion)."""
        return bool((torch.det(self.coset_representatives) < 0).any())

    @property
    def order(self) -> Union[int, float]:
        """Number of elements (``math.inf`` for a continuous group)."""
        return self.coset_representatives.shape[0] if self.is_finite else math.inf

    @property
    def contains_so3(self) -> bool:
        """``True`` for SO(3) and O(3), where Schur's lemma leaves e3nn's layers."""
        return self.lie_dim == 3

    def _in_identity_component(self, R: torch.Tensor, atol: float = 1e-7) -> torch.Tensor:
        det_ok = torch.det(R) > 0
        eye = torch.eye(3, dtype=R.dtype)
        if self.lie_dim == 3:
            return det_ok
        if self.lie_dim == 1:
            n = self.axis.to(R.dtype)
            return det_ok & ((R @ n - n).norm(dim=-1) < atol)
        return (R - eye).flatten(-2).norm(dim=-1) < atol

    def _enumerate_cosets(self) -> torch.Tensor:
        """Representatives of ``G / G_0`` by breadth-first closure of the discrete generators."""
        reps = [torch.eye(3, dtype=_DTYPE)]
        frontier = [reps[0]]
        while frontier:
            new = []
            for a in frontier:
                for g in self.discrete_generators:
                    b = g @ a
                    known = torch.stack(reps)
                    if not self._in_identity_component(known.transpose(-1, -2) @ b).any():
                        reps.append(b)
                        new.append(b)
                        if len(reps) > _MAX_COSETS:
                            raise ValueError(
                                "discrete_generators: they generate a group that is not closed "
                                "(more than %d components; an irrational rotation angle?)" % _MAX_COSETS
                            )
            frontier = new
        return torch.stack(reps)

    def contains(self, R: torch.Tensor, atol: float = 1e-7) -> torch.Tensor:
        """Whether each matrix in ``R`` ([..., 3, 3]) is an element of the group."""
        R = R.to(_DTYPE)
        rel = self.coset_representatives.transpose(-1, -2) @ R[..., None, :, :]  # [..., c, 3, 3]
        return self._in_identity_component(rel, atol).any(dim=-1)

    def is_subgroup_of(self, other: "Group") -> bool:
        r"""Whether :math:`G \le H` for :math:`H` = ``other``: the Lie algebra of :math:`G` lies in that
        of :math:`H` and every component of :math:`G` (its coset representatives) meets :math:`H`."""
        lie_inside = _span_basis(torch.cat([other.lie_algebra, self.lie_algebra])).shape[0] == other.lie_dim
        return lie_inside and bool(other.contains(self.coset_representatives).all())

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        r"""``n`` random elements as float64 matrices ``[n, 3, 3]``, distributed by the Haar measure.

        An element is a uniformly chosen coset representative times a Haar-random element of
        the identity component (a uniform angle about the axis, or a uniform rotation).
        """
        idx = torch.randint(self.coset_representatives.shape[0], (n,), generator=generator)
        reps = self.coset_representatives[idx]
        if self.lie_dim == 0:
            return reps
        if self.lie_dim == 1:
            theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=_DTYPE)
            A = self.lie_algebra[0] / _axial_vector(self.lie_algebra[0]).norm()
            return reps @ torch.matrix_exp(theta[:, None, None] * A)
        q = torch.randn(n, 4, generator=generator, dtype=_DTYPE)
        return reps @ o3.quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))

    # ------------------------------------------------------------------ representations
    def lie_rep(self, irrep: o3.Irrep) -> torch.Tensor:
        r"""The Lie algebra generators in ``irrep``: :math:`d\rho(A_k)`, shape [k, 2l+1, 2l+1]."""
        with _float64():
            X = o3.so3_generators(irrep.l)  # images of L_x, L_y, L_z
        return torch.einsum("nk,kij->nij", _axial_vector(self.lie_algebra), X)

    def discrete_rep(self, irrep: o3.Irrep) -> torch.Tensor:
        """The discrete generators in ``irrep``, shape [m, 2l+1, 2l+1]."""
        if self.discrete_generators.shape[0] == 0:
            return torch.zeros(0, irrep.dim, irrep.dim, dtype=_DTYPE)
        return irreps_D(o3.Irreps([(1, irrep)]), self.discrete_generators)

    # ------------------------------------------------------------------ equivariant maps
    @_single_thread()
    def _intertwiners(self, reps_in: tuple, reps_out: tuple) -> torch.Tensor:
        """Orthonormal basis [n, d_out, d_in] of ``{W : R_out W = W R_in}`` for all generators."""
        (lie_in, disc_in), (lie_out, disc_out) = reps_in, reps_out
        d_in, d_out = lie_in.shape[-1], lie_out.shape[-1]
        eye_in = torch.eye(d_in, dtype=_DTYPE)
        eye_out = torch.eye(d_out, dtype=_DTYPE)
        rows = []
        # vec(R_out W - W R_in) = (R_out (x) I - I (x) R_in^T) vec(W)   (row-major vec)
        for A_in, A_out in zip(lie_in, lie_out):
            rows.append(torch.kron(A_out, eye_in) - torch.kron(eye_out, A_in.T.contiguous()))
        for D_in, D_out in zip(disc_in, disc_out):
            rows.append(torch.kron(D_out, eye_in) - torch.kron(eye_out, D_in.T.contiguous()))
        constraints = torch.cat(rows) if rows else torch.zeros(0, d_in * d_out, dtype=_DTYPE)
        return _canonical_null_space(constraints, d_in * d_out).reshape(-1, d_out, d_in)

    def _irrep_reps(self, irrep: o3.Irrep) -> tuple:
        return self.lie_rep(irrep), self.discrete_rep(irrep)

    def linear_basis(self, irrep_in: Union[str, o3.Irrep], irrep_out: Union[str, o3.Irrep]) -> torch.Tensor:
        r"""Basis of the :math:`G`-equivariant linear maps ``irrep_in -> irrep_out``.

        Returns:
            float64 tensor ``[n, 2 l_out + 1, 2 l_in + 1]``, orthonormal in the Frobenius inner
            product (``n = 0`` when no map exists).
        """
        ir_in, ir_out = o3.Irrep(irrep_in), o3.Irrep(irrep_out)
        key = ("linear", ir_in, ir_out)
        if key not in self._cache:
            self._cache[key] = self._intertwiners(self._irrep_reps(ir_in), self._irrep_reps(ir_out))
        return self._cache[key]

    def invariant_basis(self, irrep: Union[str, o3.Irrep]) -> torch.Tensor:
        """Basis ``[n, 2l+1]`` of the :math:`G`-invariant vectors of ``irrep`` (where biases may live)."""
        return self.linear_basis("0e", irrep)[..., 0]

    def stable_decomposition(self, irrep: Union[str, o3.Irrep]) -> Tuple[torch.Tensor, Tuple[int, ...]]:
        r"""Split the restricted irrep into its invariant vectors and :math:`G`-stable blocks.

        Returns an orthogonal matrix :math:`Q` ``[2l+1, 2l+1]`` and block sizes: the first ``n``
        rows are :meth:`invariant_basis` (``n`` blocks of size 1), the remaining rows are grouped
        into blocks spanning subspaces :math:`V_1, \dots, V_k` of the invariants' orthogonal
        complement with :math:`D(g) V_i = V_i` for every :math:`g \in G`. So :math:`Q f` lists the
        :math:`G`-invariant components of a field :math:`f` first, and the norm of each later
        block is a :math:`G`-invariant too: these are the invariants of degree one and two that a
        nonlinearity or a normalisation may use (for :math:`SO(2)` and ``1o``: :math:`z` and
        :math:`\sqrt{x^2 + y^2}`; for :math:`O(3)`: the ``0e`` value or the field norm).

        The :math:`V_i` are the eigenspaces, on the complement, of a fixed generic combination of the
        symmetric :math:`G`-equivariant maps ``irrep -> irrep`` (they commute with :math:`G`, so
        their eigenspaces are stable; for a multiplicity-free restriction these are its irreducible
        components). Only the projectors onto the blocks are canonical, not the rows inside a
        block: use :math:`Q` through functions of the projections (norms, scalings), as the layers do.
        """
        ir = o3.Irrep(irrep)
        key = ("stable", ir)
        if key not in self._cache:
            invariant = self.invariant_basis(ir)  # [n, d], canonical
            d = ir.dim
            evals, evecs = torch.linalg.eigh(torch.eye(d, dtype=_DTYPE) - invariant.T @ invariant)
            complement = evecs[:, evals > 0.5].T  # [d - n, d], orthonormal rows
            commutant = self.linear_basis(ir, ir)  # [m, d, d]
            symmetric = commutant + commutant.transpose(-1, -2)
            # generic fixed weights (seeded): no accidental equal eigenvalues across blocks
            weights = 1 + torch.rand(commutant.shape[0], generator=torch.Generator().manual_seed(0), dtype=_DTYPE)
            M = complement @ torch.einsum("k,kij->ij", weights, symmetric) @ complement.T
            evals, evecs = torch.linalg.eigh(M)
            rows, sizes, start = [invariant], [1] * invariant.shape[0], 0
            scale = 1e-8 * max(1.0, float(evals.abs().max())) if evals.numel() else 0.0
            for i in range(1, evals.numel() + 1):
                if i == evals.numel() or evals[i] - evals[i - 1] > scale:
                    rows.append(evecs[:, start:i].T @ complement)
                    sizes.append(i - start)
                    start = i
            self._cache[key] = (torch.cat(rows), tuple(sizes))
        return self._cache[key]

    def bilinear_basis(
        self,
        irrep_in1: Union[str, o3.Irrep],
        irrep_in2: Union[str, o3.Irrep],
        irrep_out: Union[str, o3.Irrep],
    ) -> torch.Tensor:
        r"""Basis of the :math:`G`-equivariant bilinear maps ``irrep_in1 x irrep_in2 -> irrep_out``.

        :math:`B(x, y)_k = \sum_{ij} C_{kij} x_i y_j` with :math:`D_{out}(g) C = C (D_1(g) \otimes D_2(g))`.
        For :math:`G \supseteq SO(3)` this is the Clebsch-Gordan tensor (``e3nn.o3.wigner_3j``).

        Returns:
            float64 tensor ``[n, d_out, d_in1, d_in2]``, orthonormal in the Frobenius inner product.
        """
        ir1, ir2, ir_out = o3.Irrep(irrep_in1), o3.Irrep(irrep_in2), o3.Irrep(irrep_out)
        key = ("bilinear", ir1, ir2, ir_out)
        if key not in self._cache:
            (lie1, disc1), (lie2, disc2) = self._irrep_reps(ir1), self._irrep_reps(ir2)
            e1, e2 = torch.eye(ir1.dim, dtype=_DTYPE), torch.eye(ir2.dim, dtype=_DTYPE)
            # the tensor-product representation: D_1 (x) D_2 and its derivative A_1 (x) I + I (x) A_2
            lie = torch.einsum("kab,cd->kacbd", lie1, e2) + torch.einsum("ab,kcd->kacbd", e1, lie2)
            disc = torch.einsum("kab,kcd->kacbd", disc1, disc2)
            d = ir1.dim * ir2.dim
            basis = self._intertwiners((lie.reshape(-1, d, d), disc.reshape(-1, d, d)), self._irrep_reps(ir_out))
            self._cache[key] = basis.reshape(-1, ir_out.dim, ir1.dim, ir2.dim)
        return self._cache[key]

    # ------------------------------------------------------------------ dunder
    def __repr__(self) -> str:
        return f"Group({self.name})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return self.name == other.name and torch.equal(self.lie_algebra, other.lie_algebra) and torch.equal(
            self.discrete_generators, other.discrete_generators
        )

    def __hash__(self) -> int:
        return hash((self.name, self.lie_dim, self.discrete_generators.shape[0]))


def _as_stack(mats, name: str) -> torch.Tensor:
    if mats is None:
        return torch.zeros(0, 3, 3, dtype=_DTYPE)
    if isinstance(mats, torch.Tensor):
        mats = mats.to(_DTYPE)
        mats = mats[None] if mats.dim() == 2 else mats
    else:
        mats = torch.stack([torch.as_tensor(m, dtype=_DTYPE) for m in mats]) if len(mats) else torch.zeros(0, 3, 3, dtype=_DTYPE)
    if mats.dim() != 3 or mats.shape[1:] != (3, 3):
        raise ValueError(f"{name}: expected a stack of 3x3 matrices, got shape {tuple(mats.shape)}")
    return mats


def _lie_closure(lie: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the Lie subalgebra of so(3) generated by ``lie`` (dimension 0, 1 or 3)."""
    basis = _span_basis(lie).reshape(-1, 3, 3)
    while True:
        brackets = [a @ b - b @ a for a in basis for b in basis]
        grown = _span_basis(torch.cat([basis] + [br[None] for br in brackets])).reshape(-1, 3, 3)
        if grown.shape[0] == basis.shape[0]:
            break
        basis = grown
    if basis.shape[0] == 1:
        # Normalise the SO(2) generator to the unit-speed rotation about its axis, axis sign canonical.
        a = _axial_vector(basis[0])
        a = a / a.norm()
        j = int(torch.argmax(a.abs()))
        a = a if a[j] > 0 else -a
        basis = torch.einsum("k,kij->ij", a, _L)[None]
    elif basis.shape[0] == 3:
        basis = _L.clone()
    return basis


# ---------------------------------------------------------------------- the catalogue
_I = torch.eye(3, dtype=_DTYPE)
_INV = -_I
_MIRROR_Z = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=_DTYPE))
_MIRROR_Y = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=_DTYPE))
_FLIP_X = rotation_x(math.pi)  # half-turn about x
_C3_DIAG = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=_DTYPE)  # 3-fold about (1,1,1)
_SWAP_XY = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=_DTYPE)  # mirror x = y
_PHI = (1 + 5**0.5) / 2
_C5_ICO = rotation_axis_angle([0.0, 1.0, _PHI], 2 * math.pi / 5)  # 5-fold about an icosahedron vertex


def _catalogue() -> dict:
    Lz, ALL = [_L[2]], list(_L)
    tet = [_C3_DIAG, rotation_z(math.pi)]
    octa = [_C3_DIAG, rotation_z(math.pi / 2)]
    ico = [_C3_DIAG, rotation_z(math.pi), _C5_ICO]
    return {
        "trivial": ([], []),
        "o3": (ALL, [_INV]),
        "so3": (ALL, []),
        "so2": (Lz, []),
        "o2": (Lz, [_FLIP_X]),
        "cone": (Lz, [_MIRROR_Y]),
        "cyl": (Lz, [_INV]),
        "fullcyl": (Lz, [_FLIP_X, _INV]),
        "inv": ([], [_INV]),
        "mirror": ([], [_MIRROR_Z]),
        "t": ([], tet),
        "th": ([], tet + [_INV]),
        "td": ([], tet + [_SWAP_XY]),
        "o": ([], octa),
        "oh": ([], octa + [_INV]),
        "i": ([], ico),
        "ih": ([], ico + [_INV]),
    }


GROUP_NAMES = tuple(_catalogue()) + ("c<N>", "d<N>")
"""Names :func:`get_group` accepts (``c<N>``/``d<N>`` for any ``N >= 1``)."""


@lru_cache(maxsize=None)
def _named_group(name: str) -> Group:
    catalogue = _catalogue()
    if name in catalogue:
        lie, disc = catalogue[name]
        return Group(name, lie, disc)
    match = re.fullmatch(r"([cd])(\d+)", name)
    if match and int(match.group(2)) >= 1:
        n = int(match.group(2))
        disc = [rotation_z(2 * math.pi / n)] if n > 1 else []
        if match.group(1) == "d":
            disc.append(_FLIP_X)
        return Group(name, [], disc)
    raise ValueError(
        f"group: unknown group name {name!r}; expected one of {', '.join(GROUP_NAMES)} "
        "(case-insensitive), or a pyg_implicit.groups.Group"
    )


def get_group(group: Union[str, Group]) -> Group:
    r"""Return the group named ``group`` (case-insensitive), or ``group`` itself if it is a :class:`Group`.

    Names: ``o3``, ``so3``; about the z axis ``so2``, ``o2`` (with a half-turn about x),
    ``cone`` (with the mirror :math:`y \to -y`), ``cyl`` (:math:`SO(2) \times` inversion),
    ``fullcyl`` (:math:`O(2) \times` inversion); ``inv``, ``mirror`` (:math:`z \to -z`),
    ``trivial``; ``c<N>``, ``d<N>`` (cyclic and dihedral about z, the flip a half-turn about x);
    ``t``, ``th``, ``td``, ``o``, ``oh``, ``i``, ``ih`` (tetrahedral, octahedral, icosahedral).
    """
    if isinstance(group, Group):
        return group
    if not isinstance(group, str):
        raise TypeError(f"group: expected a group name or a Group, got {type(group).__name__}")
    return _named_group(group.strip().lower())
