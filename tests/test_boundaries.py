"""The layers of docs/architecture.md: who may import whom."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHARED = {"storage.terms"}
"""Modules any layer may import: the terms ovseg_core and storage share (no dependencies)."""

FORBIDDEN = {
    "ovseg_core": {"prefect", "duckdb", "storage", "flows", "deployments"},
    "storage": {"torch", "torchvision", "open_clip", "segment_anything", "mobile_sam",
                "ovseg_core", "prefect", "flows", "deployments"},
    "flows": {"deployments", "torch", "torchvision", "open_clip", "segment_anything", "mobile_sam"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level package names imported anywhere in a module (including inside functions),
    except the SHARED modules."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names
                         if alias.name not in SHARED)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module not in SHARED:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_roots(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_no_hard_cuda_calls():
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "ovseg_core").rglob("*.py")
            if ".cuda()" in p.read_text()]
    assert not hits, f"use the data's device instead of .cuda(): {hits}"


def test_boundary_checker_sees_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import duckdb.experimental\nfrom prefect import flow\n"
                      "from storage.terms import IGNORE_INDEX\nfrom storage.rle import x\n")
    assert imported_roots(sample) == {"duckdb", "prefect", "storage"}
    sample.write_text("from storage.terms import IGNORE_INDEX\nimport storage.terms\n")
    assert imported_roots(sample) == set()


def test_the_shared_terms_import_nothing():
    """`storage.terms` may be imported by every layer because it depends on nothing (numpy
    only inside the painting function)."""
    tree = ast.parse((ROOT / "storage" / "terms.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in top} == {
        "__future__", "typing"}
