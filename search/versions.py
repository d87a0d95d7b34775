"""Versions of TradeTune and the stack it runs on, read from the installed packages' metadata
(nothing is imported): shown by ``tradetune --version`` and recorded in every study."""
from __future__ import annotations

import sys
from importlib import metadata

# RLlib and Tune ship inside the ray package, so ray's version is theirs.
PACKAGES = ("tradetune", "ray", "optuna", "torch", "tensortrade", "numpy", "pandas")


def versions_of(names: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each package in ``names``, or "not installed"."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def package_versions() -> dict[str, str]:
    """``{"tradetune": "0.1.0", "python": "3.12.1", "ray": ..., ...}``; a package that is not
    installed shows as "not installed"."""
    versions = versions_of(PACKAGES)
    return {"tradetune": versions.pop("tradetune"), "python": sys.version.split()[0],
            **versions}
