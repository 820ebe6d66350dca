"""The base of the package's datasets: an ``InMemoryDataset`` whose processed cache is written
atomically and fails clearly when unreadable."""
import json
import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.data.data import BaseData
from torch_geometric.io import fs

__all__ = ["CachedDataset"]


@contextmanager
def _written_atomically(path: str) -> Iterator[str]:
    """A temporary path to write; renamed to ``path`` when the block succeeds (``os.replace`` is
    atomic: a reader sees the old file or the whole new one), removed when it fails."""
    partial = f"{path}.{os.getpid()}.partial"
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


class CachedDataset(InMemoryDataset):
    """``InMemoryDataset`` whose processed cache is written atomically (to a temporary file, then
    renamed), so that processes building the same cache at the same time (parallel sweeps, several
    ranks) never read a half-written file; and whose unreadable cache (truncated, garbage, from
    another version) raises an error that names the file and the fix, instead of ``EOFError`` or
    ``OSError`` from deep inside ``torch.load``."""

    def _process(self) -> None:
        """PyG's processing step, with its side files (``pre_transform.pt``, ``pre_filter.pt``, which
        PyG writes in place after :meth:`process`) written atomically as well: a process that starts
        meanwhile reads them to compare the transforms, and would read half a file."""
        torch_save = fs.torch_save

        def save_atomically(obj: Any, path: str) -> None:
            with _written_atomically(path) as partial:
                torch_save(obj, partial)

        fs.torch_save = save_atomically
        try:
            super()._process()
        finally:
            fs.torch_save = torch_save

    @classmethod
    def save(cls, data_list: Sequence[BaseData], path: str) -> None:
        with _written_atomically(path) as partial:
            super().save(data_list, partial)

    @staticmethod
    def save_json(obj: Any, path: str) -> None:
        """Writes a side file of the cache (class names, a processing report) atomically."""
        with _written_atomically(path) as partial, open(partial, "w") as f:
            json.dump(obj, f, indent=1)

    def load(self, path: str, data_cls=Data) -> None:
        try:
            super().load(path, data_cls)
        except Exception as err:  # noqa: BLE001 - whatever torch.load raises, the fix is the same
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise ValueError(
                f"{path}: the processed cache is unreadable ({type(err).__name__}{': ' + detail if detail else ''}); "
                f"delete it, or pass force_reload=True to {type(self).__name__} to rebuild it"
            ) from None
