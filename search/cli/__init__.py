"""The ``tradetune`` command: parsing (``parser.py``), running through the Python API
(``commands.py``) and showing results (``render.py``). Nothing here is used by the library."""
from search.cli.commands import main

__all__ = ["main"]
