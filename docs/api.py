"""Build the API reference from the docstrings, with pdoc: ``make docs`` (or
``python docs/api.py [OUTPUT_DIR]``, default ``build/api``).

The build fails on a pdoc warning and on a public module, class, function or method of
``crm_domain``, ``projections`` or ``adapters`` without a docstring (pdoc renders
docstrings but does not require them). ``tests/e2e/test_api_docs.py`` runs the same checks
in the test suite, so CI fails too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGES = ("crm_domain", "projections", "adapters")
DEFAULT_OUTPUT = Path("build/api")

# Not ours to fix: pdoc also renders what our classes inherit from libraries, and cannot
# resolve an annotation a library imports only for type checking (eventsourcing's ``Query``,
# inherited by ``crm_domain.infrastructure.postgres_recorder.FlushingPostgresApplicationRecorder``).
LIBRARY_WARNINGS: tuple[str, ...] = (
    "Error parsing type annotation list[Query] for "
    "eventsourcing.postgres.PostgresAggregateRecorder.lock_table_statements.",
)


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split("."))


def public_modules() -> Iterator[ModuleType]:
    """Every public module of the documented packages (``__main__`` is a script)."""
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if not _is_private(info.name):
                yield importlib.import_module(info.name)


def _own_doc(obj: Any) -> str:
    """The docstring an object declares (a dataclass's generated signature is none)."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def _class_gaps(cls: type[Any], qualname: str) -> Iterator[str]:
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        where = f"{qualname}.{name}"
        if inspect.isclass(member):
            if member.__qualname__ == f"{cls.__qualname__}.{name}":  # defined here
                if not inspect.getdoc(member):
                    yield where
                yield from _class_gaps(member, where)
        elif isinstance(member, property | functools.cached_property):
            if not _own_doc(member):
                yield where
        elif (
            isinstance(member, staticmethod | classmethod) or inspect.isfunction(member)
        ) and not inspect.getdoc(getattr(cls, name)):
            # (an override is documented by the method it overrides)
            yield where


def undocumented() -> list[str]:
    """Dotted names of the public modules, classes, functions and methods lacking a
    docstring."""
    gaps: list[str] = []
    for module in public_modules():
        if not _own_doc(module):
            gaps.append(module.__name__)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue  # private, or imported from elsewhere (checked where defined)
            if "[" in name:
                continue  # pydantic's parametrisation of a generic model, e.g. Command[UUID]
            where = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                if not _own_doc(obj):
                    gaps.append(where)
                gaps.extend(_class_gaps(obj, where))
            elif inspect.isfunction(obj) and not _own_doc(obj):
                gaps.append(where)
    return sorted(gaps)


def build(output: Path) -> list[str]:
    """Render the reference into ``output``; the warnings pdoc gave (none is good).

    pdoc documents a package's submodules, except in a package with an ``__all__`` (which
    lists what a user imports, not the submodules): those it leaves out are named here.
    """
    import pdoc

    specs = list(PACKAGES)
    for module in public_modules():
        parent_name, _, name = module.__name__.rpartition(".")
        exported = getattr(sys.modules[parent_name], "__all__", None) if parent_name else None
        if exported is not None and name not in exported:
            specs.append(module.__name__)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*specs, output_directory=output)
    return [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
        and not str(w.message).startswith(LIBRARY_WARNINGS)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build into the given directory; exit 1 on a warning or an undocumented name."""
    args = sys.argv[1:] if argv is None else list(argv)
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    gaps = undocumented()
    problems = build(output) + [f"no docstring: {name}" for name in gaps]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"API reference in {output}/index.html")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
