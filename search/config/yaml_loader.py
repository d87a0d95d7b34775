"""The one YAML loader of sweep configs and ``--set`` values.

Numbers follow YAML 1.2 (``1e-3`` is a number, ``0123`` is 123), anchors and aliases are refused
(an alias bomb of a few hundred bytes would expand to millions of nodes), and a key that holds
text (``study``, ``algorithm``, ``data.path``, ...) keeps what the user typed even where YAML
would read a number, a date or a boolean (``search/config/keys.py`` lists those keys).
"""
from __future__ import annotations

import datetime
import math
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from search.config.keys import KEY_KINDS
from search.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a sweep config is a few KB; this bounds what a bad path can cost


_KIND_PREFIXES = {path[:i] for path in KEY_KINDS for i in range(len(path) + 1)}


class _AnchorFound(yaml.MarkedYAMLError):
    """An anchor (&name) or alias (*name) in config YAML."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 numbers and no anchors or aliases.

    YAML 1.1 (PyYAML's default) reads ``1e-3`` as text, ``0123`` as octal 83 and ``1:30`` as
    90; here they are 0.001, 123 and text. Anchors are refused while composing, before any
    alias could be expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorFound(problem="YAML anchors and aliases (&name, *name) are not "
                                       "supported; write the values out",
                               problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_yaml_timestamp(self, node: Any) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # 2019-02-30: left as text, for the key's own check to name
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: Any) -> int:
        text = self.construct_scalar(node).replace("_", "")
        try:
            return int(text, 0) if text.startswith(("0x", "0o")) else int(text)
        except ValueError:  # more digits than Python converts (4300)
            raise yaml.constructor.ConstructorError(
                None, None, f"the number {text[:20]}... has {len(text)} digits",
                node.start_mark) from None


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


ConfigLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)\Z"), list("-+0123456789"))


ConfigLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
                         |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                         |[-+]?\.(?:inf|Inf|INF)
                         |\.(?:nan|NaN|NAN))\Z""", re.X), list("-+0123456789."))


ConfigLoader.add_constructor(_INT, ConfigLoader.construct_yaml_int)


ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", ConfigLoader.construct_yaml_timestamp)


def _load(text: str, where: str, path: tuple[str, ...]) -> Any:
    """``text`` as YAML placed at ``path`` of the config; ``yaml.YAMLError`` if it is not YAML,
    ``ConfigError`` (naming ``where``) for anchors or nesting too deep."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        value = None if node is None else loader.construct_document(node)
    except _AnchorFound as exc:
        raise ConfigError(f"{where}: {exc.problem} (line {exc.problem_mark.line + 1})") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a sweep config") from None
    finally:
        loader.dispose()
    return _keep_kinds(value, node, path)


def _keep_kinds(value: Any, node: Any, path: tuple[str, ...]) -> Any:
    """Undo what YAML changed in the keys of ``KEY_KINDS`` (see there)."""
    if path not in _KIND_PREFIXES:
        return value
    if isinstance(node, yaml.ScalarNode):
        kind = KEY_KINDS.get(path)
        if kind == "whole":
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
        elif kind == "date" and isinstance(value, datetime.date):
            return value.isoformat()
        elif (kind is not None and node.style is None and value is not None
              and not isinstance(value, str)):
            return node.value  # the plain scalar as typed
        return value
    if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if isinstance(key, str) and key in value:
                value[key] = _keep_kinds(value[key], value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode) and isinstance(value, list):
        for index, (item, item_node) in enumerate(zip(value, node.value, strict=False)):
            value[index] = _keep_kinds(item, item_node, (*path, "*"))
    return value


def parse_value(text: str, key: str = "", option: str | None = None) -> Any:
    """A value given on the command line (``--set KEY=VALUE``, ``data --splits YAML``) for the
    config key ``key`` (dotted): YAML with the project's rules, or the text itself where it is
    not valid YAML. Errors name ``option`` (e.g. ``--splits``)."""
    path = tuple(key.split(".")) if key else ()
    try:
        return _load(text, option or f"the value of {key or 'an option'}", path)
    except yaml.YAMLError:
        return text


def read_yaml_file(path: str | Path) -> Any:
    """A config file's YAML, or ``ConfigError`` with one line: missing, not a regular file,
    over ``MAX_CONFIG_BYTES``, unreadable, not text, not YAML."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        what = "does not exist" if isinstance(exc, FileNotFoundError) else \
            f"cannot be read ({exc.strerror or exc})"
        raise ConfigError(f"config file {path} {what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"config file {path} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"config file {path} is not a regular file (a pipe, socket or "
                          "device); give a YAML file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KB; "
                          "a sweep config is a few KB of YAML")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file (not UTF-8)") from None
    try:
        return _load(text, f"config file {path}", ())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"config file {path} is not valid YAML{where}: "
                          f"{' '.join(str(problem).split())}") from None
