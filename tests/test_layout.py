"""The import rule of TradeTune's packages, walked over every import (also those inside
functions): one direction, no circles, no reaching into another module's private names.

The layers, from the top (each may import only its own layer and the ones below it; README
"Layout" says why each sits where it does):
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tradetune", "search", "trainables", "spaces")

# Top to bottom. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("tradetune",),                                   # the documented import for users
    ("search.cli",),                                  # parsing and rendering only
    ("search.api",),                                  # the library's public surface
    ("search.sweep",),                                # the only code that runs Tune
    ("search.results",),                              # reads a study, never starts Tune
    ("search.study",),                                # the only code that touches Optuna's
                                                      # storage, schema and SQL
    ("search.config",),                               # the sweep config and its checks
    ("search.errors", "search.events", "search.formats", "search.versions", "search"),
    ("trainables",),                                  # the env and the trainable
    ("spaces",),                                      # search spaces: pure data and rules
    # The vocabulary every package speaks, plain Python: the error family, the env and
    # training settings with their defaults, the action sets, the metric names.
    ("trainables.errors", "trainables.settings", "trainables.actions", "trainables.metrics"),
]
# What the command line may use: the API and the vocabulary it speaks in, nothing behind it.
CLI_MAY_IMPORT = ("search.api", "search.errors", "search.events", "search.formats",
                  "search.versions", "search.config.yaml_loader", "search.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _target(module: str, name: str | None) -> str | None:
    """The module of ours that ``from module import name`` (or ``import module``) loads."""
    if name and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module if module in MODULES else None


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import of ours in
    ``name``, wherever it stands in the file."""
    found = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names
                      if alias.name.split(".")[0] in PACKAGES]
    return found


def _layer(module: str) -> int:
    best = max((prefix for layer in LAYERS for prefix in layer
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for module, imported, _ in _imports(name):
            target = _target(module, imported)
            if target and target != name:
                graph[name].add(target)
    return graph


def test_every_module_has_a_layer():
    for name in MODULES:
        _layer(name)


def test_imports_go_down_the_layers_only():
    wrong = []
    for name in MODULES:
        for module, imported, line in _imports(name):
            target = _target(module, imported)
            if target and _layer(target) < _layer(name):
                wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line} imports {target} "
                             f"(layer {LAYERS[_layer(target)][0]} is above "
                             f"{LAYERS[_layer(name)][0]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_no_module_takes_another_modules_private_names():
    wrong = [f"{MODULES[name].relative_to(ROOT)}:{line} takes {imported} from {module}"
             for name in MODULES for module, imported, line in _imports(name)
             if imported and imported.startswith("_") and not imported.startswith("__")
             and _target(module, imported) == module and module != name]
    assert not wrong, "\n".join(wrong)


def test_the_command_line_uses_only_the_public_surface():
    wrong = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {_target(module, imported)}"
             for name in MODULES if name.startswith("search.cli")
             for module, imported, line in _imports(name)
             if _target(module, imported) and not any(
                 _target(module, imported) == allowed
                 or _target(module, imported).startswith(allowed + ".")
                 for allowed in CLI_MAY_IMPORT)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("search.")
                                        and not n.startswith("search.study")))
def test_optuna_internals_stay_in_the_study_package(name):
    """Optuna's private attributes, its tables and raw SQL are touched in ``search/study/``
    only, so an Optuna upgrade that changes them is fixed in one package."""
    text = MODULES[name].read_text()
    for internal in ("._study_id", "._trial_id", "study._storage", "._backend", "sqlalchemy",
                     "trial_user_attributes", "trial_values"):
        assert internal not in text, f"{name} uses {internal}"


def test_market_data_modules_do_not_import_the_env():
    graph = _graph()
    for name in ("market", "synthetic", "features", "splits", "bar_files"):
        assert "trainables.env" not in graph[f"trainables.{name}"], name


def test_reading_walk_forward_settings_imports_no_pandas():
    """The config check and the trainable's run plan read ``data.walk_forward``: no pandas."""
    code = ("import sys; from trainables.splits import walk_forward_settings; "
            "walk_forward_settings({'folds': 3}); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ")] if "\n## " in layout else layout
    missing = [str(path.relative_to(ROOT)) for name, path in MODULES.items()
               if path.name != "__main__.py"
               and (path.name if path.name != "__init__.py" else path.parent.name + "/")
               not in layout]
    assert not missing, f"README 'Layout' does not name: {missing}"
