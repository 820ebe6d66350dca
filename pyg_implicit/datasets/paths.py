"""Where the real data files for tests and examples live (no download happens at run time)."""
import os
import os.path as osp

__all__ = ["shared_data_dir"]


def shared_data_dir() -> str:
    """``$PYG_IMPLICIT_SHARED_DATA``, else ``../shared/data`` beside the repository root."""
    default = osp.join(osp.dirname(osp.abspath(__file__)), "..", "..", "..", "shared", "data")
    return osp.normpath(os.environ.get("PYG_IMPLICIT_SHARED_DATA", default))
