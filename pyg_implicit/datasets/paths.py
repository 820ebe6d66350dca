"""Where the real data files for tests and examples live (no download happens at run time)."""
import hashlib
import os
import os.path as osp

__all__ = ["shared_data_dir", "file_fingerprint"]

_REPO = osp.normpath(osp.join(osp.dirname(osp.abspath(__file__)), "..", ".."))


def shared_data_dir() -> str:
    """``$PYG_IMPLICIT_SHARED_DATA`` if set; else the first existing of ``../shared/data`` beside the
    repository, ``../shared/data`` beside the working directory and ``/work/shared/data`` (this
    project's machines); else the first of these (so error messages name the expected place)."""
    if os.environ.get("PYG_IMPLICIT_SHARED_DATA"):  # set and not empty (an empty value is not the current folder)
        return osp.normpath(os.environ["PYG_IMPLICIT_SHARED_DATA"])
    candidates = [osp.join(_REPO, "..", "shared", "data"), osp.join(os.getcwd(), "..", "shared", "data"), "/work/shared/data"]
    return osp.normpath(next((c for c in candidates if osp.isdir(c)), candidates[0]))


def file_fingerprint(*paths: str) -> str:
    """Eight hex digits of the files' real paths, sizes and modification times (``"none"`` for no
    files). Processed-cache names carry it, so a cache built from one source file is never
    returned for another (or for the same file after it changed)."""
    if not paths:
        return "none"
    digest = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{osp.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:8]
