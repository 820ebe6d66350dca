"""The base of the package's datasets: an ``InMemoryDataset`` whose processed cache fails clearly."""
from torch_geometric.data import Data, InMemoryDataset

__all__ = ["CachedDataset"]


class CachedDataset(InMemoryDataset):
    """``InMemoryDataset`` whose unreadable processed cache (truncated, garbage, from another
    version) raises an error that names the file and the fix, instead of ``EOFError`` or
    ``OSError`` from deep inside ``torch.load``."""

    def load(self, path: str, data_cls=Data) -> None:
        try:
            super().load(path, data_cls)
        except Exception as err:  # noqa: BLE001 - whatever torch.load raises, the fix is the same
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise ValueError(
                f"{path}: the processed cache is unreadable ({type(err).__name__}{': ' + detail if detail else ''}); "
                f"delete it, or pass force_reload=True to {type(self).__name__} to rebuild it"
            ) from None
