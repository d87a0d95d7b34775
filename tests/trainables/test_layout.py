"""The trainables package has no import circle, counting imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "trainables"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("trainables.")}


def test_no_module_of_trainables_imports_itself_through_others():
    graph = {p.stem: _imports(p) & {q.stem for q in PACKAGE.glob("*.py")} - {p.stem}
             for p in PACKAGE.glob("*.py")}
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


def test_market_data_modules_do_not_import_the_env():
    for name in ("market", "synthetic", "features", "splits", "bar_files"):
        assert "env" not in _imports(PACKAGE / f"{name}.py"), name


def test_reading_walk_forward_settings_imports_no_pandas():
    """The config check and the trainable's run plan read ``data.walk_forward``: no pandas."""
    import subprocess
    import sys

    code = ("import sys; from trainables.splits import walk_forward_settings; "
            "walk_forward_settings({'folds': 3}); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
