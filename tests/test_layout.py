"""The package's layering: layers and models never import from the layers above them."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pyg_implicit"


def _imports(path: pathlib.Path):
    """Absolute module names imported by ``path`` (relative imports resolved against the package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).parent.parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module
            else:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else []))


@pytest.mark.parametrize("layer", ["nn", "models"])
def test_layers_and_models_do_not_import_upwards(layer):
    above = ("pyg_implicit.datasets", "pyg_implicit.transforms", "pyg_implicit.training")
    offending = [(path.name, name) for path in (PACKAGE / layer).glob("*.py") for name in _imports(path) if name.startswith(above)]
    assert not offending, offending


def test_models_use_public_modules_only():
    private = [(path.name, name) for path in (PACKAGE / "models").glob("*.py") for name in _imports(path)
               if name.startswith("pyg_implicit") and any(part.startswith("_") for part in name.split("."))]  # fmt: skip
    assert not private, private


def test_sources_compile_without_warnings():
    r"""No invalid escape sequences: in a plain docstring ``\theta`` is a tab and ``\mathbb`` a warning (use r-strings)."""
    import warnings

    sources = [p for folder in ("pyg_implicit", "examples", "benchmarks", "tests") for p in (PACKAGE.parent / folder).rglob("*.py")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in sources:
            compile(path.read_text(), str(path), "exec")
