"""docs/configuration.md, generated from the run configuration's pydantic model.

Every setting of `flows.config.RunConfig`, section by section (a nested model is a section), with
its YAML type, its default and its description. `uv run python -m flows.config_doc` rewrites the
document; `--check` exits 1 when it is stale (a test runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from flows.config import RunConfig

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration reference

`ovseg run --config run.yaml` (and every Prefect deployment) takes one YAML file of these
settings. Every setting is optional unless its default says "required"; unknown keys are
errors. Generated from `flows/config.py` by `uv run python -m flows.config_doc`; do not edit by
hand. `null` in YAML is Python's `None`.
"""
SCALARS = {str: "text", int: "integer", float: "number", bool: "true/false"}


def _model_of(annotation) -> type[BaseModel] | None:
    """The pydantic model inside `annotation` (`X`, `X | None`), or None."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def type_name(annotation) -> str:
    """A reader's name for a field's type: `number or null`, `list of text`, `one of: a, b`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of: " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping {type_name(args[0])} -> {type_name(args[1])}"
    if annotation is type(None):
        return "null"
    model = _model_of(annotation)
    if model is not None:
        return f"section ({model.__name__})"
    return SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(field) -> str:
    """The default as YAML would write it; a nested section's default is its own defaults."""
    if field.default_factory is not None:
        value = field.default_factory()
        return "(its defaults)" if isinstance(value, BaseModel) else f"`{value}`"
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """(dotted key, model) of `model` and every section below it, depth first."""
    found = [(prefix, model)]
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        if sub is not None and sub is not model and not name.startswith("_"):
            key = f"{prefix}.{name}" if prefix else name
            if sub.__name__ == "DatasetRef":
                continue  # one section for every dataset reference, below
            found += sections(sub, key)
    return found


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | "
                    f"{meaning} |")
    return rows


def render() -> str:
    """The configuration reference (Markdown)."""
    from flows.config import DatasetRef

    parts = [HEADER]
    for key, model in sections(RunConfig):
        title = f"`{key}:`" if key else "Top level"
        parts += [f"## {title}", "", _doc(model), "", *_table(model, key), ""]
    parts += ["## Dataset reference (`data.source`, `data.target`, ...)", "", _doc(DatasetRef),
              "", *_table(DatasetRef, "<dataset>"), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/configuration.md from RunConfig.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when docs/configuration.md differs from the rendering")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not DOCUMENT.exists() or DOCUMENT.read_text() != text
        if stale:
            print("docs/configuration.md is stale: run `uv run python -m flows.config_doc`")
        return int(stale)
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
