"""``import tradetune``: the documented import is exactly the Python API, and stays light."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import search.api
import tradetune

ROOT = Path(__file__).resolve().parents[1]


def test_the_facade_is_the_api_name_for_name():
    assert sorted(tradetune.__all__) == sorted(search.api.__all__)
    for name in tradetune.__all__:
        assert getattr(tradetune, name) is getattr(search.api, name), name


def test_importing_tradetune_imports_neither_ray_nor_torch():
    code = ("import sys, tradetune; "
            "print(sorted(m for m in ('ray', 'torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_api_errors_speak_python_and_the_command_line_speaks_flags(tmp_path, monkeypatch,
                                                                  capsys):
    """The same refusal, read by both audiences: the API names the argument, the command its
    option (the message is written once, ``trainables.errors.both``)."""
    import pytest

    from search.cli import main

    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path))
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(tradetune.StorageError) as error:
        tradetune.open_study("absent", storage=storage).best()
    assert "storage=URL" in str(error.value) and "--storage" not in str(error.value)
    assert "tradetune.launch('CONFIG.yaml')" in str(error.value)
    assert "--storage URL" in error.value.cli_message
    assert "`tradetune launch CONFIG.yaml`" in error.value.cli_message
    assert main(["best", "--study", "absent", "--storage", storage]) == 1
    said = capsys.readouterr().err
    assert "or pass --storage URL" in said and "tradetune.launch" not in said
