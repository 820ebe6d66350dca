"""Irreps arguments of the layers: parsing with errors that name the argument, feature checks, the
layout as plain ints."""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import torch
from e3nn import o3


__all__ = ["IrrepsLike", "Field", "as_irreps", "check_features", "fields"]

IrrepsLike = Union[str, o3.Irreps]


def as_irreps(value: Optional[IrrepsLike], name: str, allow_none: bool = False) -> Optional[o3.Irreps]:
    """Parse ``value`` as e3nn ``Irreps``; the error names the argument."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name}: expected irreps (e.g. '16x0e+8x1o'), got None")
    try:
        irreps = o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"{name}: cannot parse {value!r} as irreps ({err})") from None
    if allow_none and irreps.dim == 0:
        return None
    return irreps


class Field(NamedTuple):
    """One block ``mul x ir`` of an irreps layout, in plain ints (what ``forward`` reads)."""

    start: int
    stop: int
    mul: int
    dim: int  # 2l + 1
    scalar: bool  # the irrep is 0e


def fields(irreps: o3.Irreps) -> Tuple[Field, ...]:
    """The layout of ``irreps`` as :class:`Field` tuples.

    Modules compute this once: ``forward`` then never inspects e3nn ``Irreps`` objects, which
    keeps it cheap and traceable by ``torch.compile``.
    """
    return tuple(
        Field(sl.start, sl.stop, mul, ir.dim, ir == o3.Irrep("0e")) for (mul, ir), sl in zip(irreps, irreps.slices())
    )


def check_features(x: torch.Tensor, dim: int, name: str, irreps: object = None) -> None:
    """Raise a clear error if ``x`` is not a ``[..., dim]`` floating tensor (``irreps`` names the type)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected last dimension {dim} for irreps {irreps}, got shape {tuple(x.shape)}")
