"""sweeps/ is layered, and its imports point one way (read from the source, so an import
inside a function or under TYPE_CHECKING counts as much as one at the top):

    study -> runs -> planning -> execution -> collect | review -> demos -> cli

A module imports its own layer or lower ones, never a higher one nor its sibling (collect and
review share a rank). Across layers it imports the other layer's package, whose ``__init__``
names that layer's public surface in ``__all__``, never the modules inside it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
RANKS = {"study": 0, "runs": 1, "planning": 2, "execution": 3, "collect": 4, "review": 4,
         "demos": 5, "cli": 6}
PACKAGES = ("study", "runs", "planning", "execution", "review", "demos")
DATA = {"studies"}  # the shipped study files (YAML): a package only for package data
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(SWEEPS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SWEEPS.rglob("*.py"))}


def layer(module: str) -> str:
    """sweeps.planning.plan -> planning; sweeps.collect -> collect; sweeps itself -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(module: str) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every sweeps import in ``module``,
    relative imports resolved."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == "sweeps"]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([target] if target else [])])
            if target.split(".")[0] == "sweeps":
                out.append((target, tuple(a.name for a in node.names), node.lineno))
    return out


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in MODULES if m != "sweeps" and layer(m) not in RANKS and layer(m) not in DATA]
    assert not unplaced, f"give these a layer in RANKS (and the docstring of sweeps/__init__.py): {unplaced}"


def test_no_layer_imports_a_higher_one_or_a_sibling():
    bad = []
    for module in MODULES:
        own = layer(module)
        for target, _, line in imports(module):
            other = layer(target)
            if own in ("", *DATA):
                bad.append(f"{module}:{line} imports {target} (this package must import nothing of sweeps)")
            elif other != own and (other not in RANKS or RANKS[other] >= RANKS[own]):
                bad.append(f"{module}:{line} ({own}) imports {target} ({other or 'sweeps'}), "
                           "which is not a lower layer")
    assert not bad, "\n".join(bad)


def test_other_layers_are_imported_through_their_package():
    surfaces = {f"sweeps.{p}": set(importlib.import_module(f"sweeps.{p}").__all__) for p in PACKAGES}
    bad = []
    for module in MODULES:
        for target, names, line in imports(module):
            if layer(target) == layer(module) or layer(target) not in PACKAGES:
                continue
            package = f"sweeps.{layer(target)}"
            if target != package or not names:
                bad.append(f"{module}:{line} imports {target}: use `from {package} import ...`")
            else:
                bad += [f"{module}:{line} takes {name} from {package}, which is not in its __all__"
                        for name in names if name not in surfaces[package]]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_names_its_surface(package):
    module = importlib.import_module(f"sweeps.{package}")
    assert (module.__doc__ or "").strip(), f"sweeps/{package}/__init__.py: say what the layer owns"
    exported = module.__all__
    assert len(exported) == len(set(exported)) and all(hasattr(module, name) for name in exported)
    # A name that is also a module of the package would hide that module: `import
    # sweeps.execution.launch as m` then binds whatever __init__ exported under that name.
    submodules = {p.stem for p in (SWEEPS / package).glob("*.py")} - {"__init__"}
    assert not set(exported) & submodules, f"sweeps.{package} exports names of its own modules"


def test_sweeps_imports_form_no_cycle():
    """Within a layer too (base.py and study.py once imported each other under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, names, _ in imports(module):
            submodules = {f"{target}.{n}" for n in names} & set(MODULES)
            graph[module] |= (submodules or {target}) & set(MODULES)
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
