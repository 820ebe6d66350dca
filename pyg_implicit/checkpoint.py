r"""Checkpoints that are safe to load: tensors, numbers, strings and plain containers, never code.

``torch.load(path, weights_only=False)`` unpickles arbitrary objects, so a shared ``.pt`` file can
run code when it is opened. Every file this package writes loads with ``weights_only=True``
instead. A model is saved as its ``state_dict`` plus the plain configuration that builds it:

.. code-block:: python

    {"format": "pyg_implicit.model", "version": 1, "class": "SteerableCNN",
     "config": {"irreps_in": "1x1o+1x1o+1x0e", "group": {"name": "so2"}, ...},
     "state_dict": {...}}

Every model of the package is registered with :func:`saveable`, which records its constructor
arguments as plain data (irreps as strings, a group by name, or by its generators when it is not
in the catalogue, a wrapped model as its own class and configuration). :func:`load_model` rebuilds
the model from them and loads the weights.

Example:
    >>> import os, tempfile
    >>> from pyg_implicit import load_model, save_model
    >>> from pyg_implicit.models import SteerableCNN
    >>> model = SteerableCNN("1x1o", "4x0e+2x1o", "1x0e", group="so2", num_layers=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
    >>> save_model(model, path)
    >>> type(load_model(path)).__name__
    'SteerableCNN'
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import pickle
from typing import Any, Dict, Optional, Type, TypeVar, Union

import torch
from e3nn import o3
from torch import nn

from .groups import Group, get_group

__all__ = ["saveable", "save_model", "load_model", "load_checkpoint", "save_checkpoint", "model_config"]

FORMAT, VERSION = "pyg_implicit.model", 1
_REGISTRY: Dict[str, Type[nn.Module]] = {}
M = TypeVar("M", bound=Type[nn.Module])


def saveable(cls: M) -> M:
    """Class decorator: record each instance's constructor arguments (:func:`model_config`) and
    register the class, so that :func:`load_model` can rebuild it."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config = {}
        for name, value in list(bound.arguments.items())[1:]:
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                config.update({key: _encode(val, f"{cls.__name__}({key}=...)") for key, val in value.items()})
            elif signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__}: a saveable model cannot take *{name}")
            else:
                config[name] = _encode(value, f"{cls.__name__}({name}=...)")
        init(self, *args, **kwargs)
        self._saveable_config = config

    cls.__init__ = __init__
    if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__] is not cls:
        raise ValueError(f"saveable: a different class named {cls.__name__!r} is already registered")
    _REGISTRY[cls.__name__] = cls
    return cls


def model_config(model: nn.Module) -> dict:
    """The plain configuration ``{"class": ..., "config": ...}`` that rebuilds ``model``."""
    config = getattr(model, "_saveable_config", None)
    if config is None:
        raise TypeError(
            f"model: {type(model).__name__} is not a saveable model (decorate its class with "
            "pyg_implicit.checkpoint.saveable, or save its state_dict yourself)"
        )
    return {"class": type(model).__name__, "config": config}


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, o3.Irreps):
        return {"irreps": str(value)}
    if isinstance(value, Group):
        try:
            if get_group(value.name) == value:
                return {"group": value.name}
        except ValueError:
            pass
        return {"group": value.name, "lie_generators": value.lie_algebra.clone(), "discrete_generators": value.discrete_generators.clone()}
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, nn.Module):
        return {"model": model_config(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, where) for k, v in value.items()}}
    raise TypeError(f"{where}: {type(value).__name__} cannot be saved as plain data (tensors, numbers, strings, irreps, groups, models)")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "irreps" in value:
        return o3.Irreps(value["irreps"])
    if "group" in value:
        if "lie_generators" in value:
            return Group(value["group"], value["lie_generators"], value["discrete_generators"])
        return get_group(value["group"])
    if "model" in value:
        return _build(value["model"])
    if "dict" in value:
        return {k: _decode(v) for k, v in value["dict"].items()}
    raise ValueError(f"checkpoint: unknown entry {sorted(value)} in a model configuration")


def _build(spec: dict) -> nn.Module:
    name = spec.get("class")
    if name not in _REGISTRY:  # the package's own models register when pyg_implicit.models is imported
        importlib.import_module(f"{__package__}.models")
    if name not in _REGISTRY:
        raise ValueError(f"checkpoint: unknown model class {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**{key: _decode(value) for key, value in spec["config"].items()})


def save_checkpoint(obj: Any, path: str) -> None:
    """``torch.save`` through a temporary file and a rename, so that a process killed while saving
    leaves the previous file intact rather than a truncated one."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location: Optional[Union[str, torch.device]] = None) -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the fix."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path}: refusing to load: it holds objects other than tensors and plain containers, and "
            f"torch.load would have to run code from the file to rebuild them ({first}). Files written "
            "by pyg_implicit never do; open it with torch.load(weights_only=False) only if you trust its source."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable checkpoint, truncated or corrupt ({type(err).__name__}: {err}); delete it") from None


def save_model(model: nn.Module, path: str) -> None:
    """Write ``model`` as its configuration and ``state_dict`` (loadable with ``weights_only=True``)."""
    spec = model_config(model)
    save_checkpoint({"format": FORMAT, "version": VERSION, **spec, "state_dict": model.state_dict()}, path)


def load_model(path: str, map_location: Optional[Union[str, torch.device]] = None) -> nn.Module:
    """Rebuild a model written by :func:`save_model` and load its weights; never runs code from the file."""
    obj = load_checkpoint(path, map_location)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        raise ValueError(f"{path}: not a pyg_implicit model file (expected format {FORMAT!r}, written by save_model)")
    if obj.get("version") != VERSION:
        raise ValueError(f"{path}: model file version {obj.get('version')!r}, this pyg_implicit reads version {VERSION}")
    model = _build(obj)
    model.load_state_dict(obj["state_dict"])
    return model
