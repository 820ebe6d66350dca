"""Where the real data files for tests and examples live (no download happens at run time)."""
import os
import os.path as osp

__all__ = ["shared_data_dir"]

_REPO = osp.normpath(osp.join(osp.dirname(osp.abspath(__file__)), "..", ".."))


def shared_data_dir() -> str:
    """``$PYG_IMPLICIT_SHARED_DATA`` if set; else the first existing of ``../shared/data`` beside the
    repository, ``../shared/data`` beside the working directory and ``/work/shared/data`` (this
    project's machines); else the first of these (so error messages name the expected place)."""
    if "PYG_IMPLICIT_SHARED_DATA" in os.environ:
        return osp.normpath(os.environ["PYG_IMPLICIT_SHARED_DATA"])
    candidates = [osp.join(_REPO, "..", "shared", "data"), osp.join(os.getcwd(), "..", "shared", "data"), "/work/shared/data"]
    return osp.normpath(next((c for c in candidates if osp.isdir(c)), candidates[0]))
