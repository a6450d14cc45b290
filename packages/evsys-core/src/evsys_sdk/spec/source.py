"""A config's YAML source: YAML 1.2 scalars both ways, parsing that records where every key sits (``Source``),
and problems as ``file:line:col: dotted.key: message`` lines."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.spec.problems import Path as KeyPath
from evsys_sdk.spec.problems import Problem

if TYPE_CHECKING:
    from evsys_sdk.spec.config import ExperimentConfig

# libyaml's parser (when PyYAML was built with it) is ~20x faster; resolution stays in Python.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader with the YAML 1.2 core schema: ``1e-4`` is a float, ``yes``/``on`` are strings."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """Quotes any string a YAML 1.1 *or* 1.2 reader would take for another type (``"1e-4"``)."""


_Dumper.yaml_implicit_resolvers = {
    ch: list(yaml.SafeDumper.yaml_implicit_resolvers.get(ch, [])) + list(_Loader.yaml_implicit_resolvers.get(ch, []))
    for ch in set(yaml.SafeDumper.yaml_implicit_resolvers) | set(_Loader.yaml_implicit_resolvers)
}


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = str(loader.construct_scalar(node))
    if value.startswith(("0o", "0x")):
        return int(value, 0)
    return int(value)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = str(loader.construct_scalar(node)).lower()
    if value.endswith(".inf"):
        return -math.inf if value.startswith("-") else math.inf
    return math.nan if value == ".nan" else float(value)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


@dataclass
class Source:
    """A parsed document's file name and the (line, column) of every key and value, 1-based."""

    filename: str
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    had_matrix: bool = False
    axes: tuple[str, ...] = ()

    def locate(self, path: KeyPath, *, key: bool) -> tuple[int, int] | None:
        table = self.keys if key else self.values
        for n in range(len(path), 0, -1):
            found = table.get(path[:n]) or self.keys.get(path[:n])
            if found:
                return found
        return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


# A config is a few KB; these bounds refuse a hostile or runaway document in milliseconds (an alias bomb,
# nine levels of nine aliases, would otherwise expand to 9**9 nodes).
MAX_CONFIG_BYTES = 16 * 2**20
ALIAS_EXPANSION = 100  # nodes built may exceed the document's distinct nodes this many times (+ a floor)
_EXPANSION_FLOOR = 10_000


@dataclass
class _Builder:
    """Plain values from a composed node graph, recording where each key sits; aliases are expanded
    (each use is a copy) within a budget proportional to the document's own size."""

    loader: Any
    src: Source
    seen: set[int] = field(default_factory=set)
    built: int = 0

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.built += 1
        self.seen.add(id(node))
        if self.built > _EXPANSION_FLOOR + ALIAS_EXPANSION * len(self.seen):
            line, col = _mark(node)
            raise ConfigError(
                f"{self.src.filename}:{line}:{col}: YAML aliases expand to over {self.built} values from "
                f"{len(self.seen)} written ones (an alias bomb?); write the values out instead of nesting aliases"
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.src.keys[(*path, i)] = self.src.values[(*path, i)] = _mark(item)
                items.append(self.build(item, (*path, i)))
            return items
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        src = self.src
        self.loader.flatten_mapping(node)  # merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line, col = _mark(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{src.filename}:{line}:{col}: mapping keys must be scalars")
            raw = self.loader.construct_object(key_node, deep=True)
            key: str | int = raw if isinstance(raw, str | int) else str(raw)
            if key in out:
                raise ConfigError(
                    f"{src.filename}:{line}:{col}: {_dotted((*path, key))}: duplicate key '{key}'; keep one"
                )
            src.keys[(*path, key)] = (line, col)
            src.values[(*path, key)] = _mark(value_node)
            out[key] = self.build(value_node, (*path, key))
        return out


def _syntax_error(text: str, filename: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return ConfigError(f"{filename}: YAML syntax error: {exc.problem or exc.context}")
    lines = text.splitlines()
    # libyaml reports a tab as "found character that cannot start any token", often on the next line
    for n in (mark.line, mark.line - 1):
        line = lines[n] if 0 <= n < len(lines) else ""
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            return ConfigError(
                f"{filename}:{n + 1}:{indent.index(chr(9)) + 1}: a tab in the indentation: YAML does not allow "
                "tabs there; indent with spaces"
            )
    return ConfigError(f"{filename}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {exc.problem or exc.context}")


def parse_yaml_text(text: str, filename: str = "<string>") -> tuple[Any, Source]:
    """Parse one YAML document into plain Python values plus the location of every key."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{filename}: {len(text)} characters is too large for a config (at most {MAX_CONFIG_BYTES})")
    src = Source(filename)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else _Builder(loader, src).build(node, ())
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(text, filename, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: YAML error: {exc}") from None
    finally:
        loader.dispose()
    return data, src


def _dotted(path: KeyPath) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "top-level"


def format_problems(problems: list[Problem], src: Source | None, cfg: ExperimentConfig | None = None) -> list[str]:
    """``file:line:col: dotted.key: message`` lines; problems of matrix-expanded runs point into the
    matrix (an axis or the base run) and are reported once with the runs they affect."""
    lines: dict[str, list[str]] = {}
    for path, msg in problems:
        run_name = None
        if src is not None and src.had_matrix and path[:1] == ("runs",) and len(path) > 1 and cfg and cfg.runs:
            run_name = cfg.runs[int(path[1])].name
            rest = ".".join(map(str, path[2:]))
            axis = next((a for a in src.axes if rest == a or rest.startswith(a + ".")), None)
            path = ("matrix", "axes", axis) if axis else ("matrix", "base_run", *path[2:])
        key_error = msg.startswith(("unknown field", "required field", "duplicate")) or "not a shared param" in msg
        pos = src.locate(path, key=key_error) if src else None
        prefix = f"{src.filename}:{pos[0]}:{pos[1]}: " if src and pos else (f"{src.filename}: " if src else "")
        line = f"{prefix}{_dotted(path)}: {msg}"
        lines.setdefault(line, [])
        if run_name:
            lines[line].append(run_name)
    out = []
    for line, runs in lines.items():
        if runs:
            more = f" and {len(runs) - 1} more" if len(runs) > 1 else ""
            line += f" (run '{runs[0]}'{more})"
        out.append(line)
    return out


def yaml_text(data: Any) -> str:
    """Block-style YAML of plain data, keys in order, every string a YAML 1.1 or 1.2 reader would take for
    another type quoted."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
