"""MkDocs hook: the Reference pages, generated from the installed code at every build (never committed:
the repository holds a placeholder per page, so links to it resolve on GitHub too).

- ``reference/config.md``: every config model, from ``ExperimentConfig``'s JSON schema;
- ``reference/extensions/<kind>.md``: every installed extension of each kind, its params from the JSON
  schema ``evsys schema KIND NAME`` prints (``schema_for``), and the algorithm families;
- ``reference/cli.md``: every ``evsys`` command and option, walked from the argparse parser;
- ``reference/hooks.md``: the pluggy hook specs;
- ``reference/api.md``: the public Python API (``evsys_sdk.__all__``) through mkdocstrings.

What a page shows depends on what is installed: ``nox -s docs`` installs core and every plugin.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

# A generated page's first line: the build made it, so edits belong in the code it reads.
_GENERATED = "<!-- generated at build time by docs/_tools/reference.py from the installed code: do not edit -->\n\n"


def on_files(files: Files, config: Any) -> Files:
    generated = pages()
    stale = sorted(f.src_uri for f in files if f.src_uri.startswith("reference/") and f.src_uri not in generated)
    if stale:
        raise PluginError(f"docs/{stale[0]}: a reference placeholder that nothing generates; delete it")
    for path, text in generated.items():
        placeholder = files.get_file_from_path(path)
        if placeholder is not None:
            files.remove(placeholder)
        files.append(File.generated(config, path, content=_GENERATED + text))
    return files


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    from evsys_sdk.plugins.registry import KINDS

    out = {
        "reference/config.md": config_page(),
        "reference/cli.md": cli_page(),
        "reference/hooks.md": hooks_page(),
        "reference/api.md": api_page(),
    }
    for kind in KINDS:
        out[f"reference/extensions/{kind}.md"] = extensions_page(kind)
    return out


# ---------------------------------------------------------------- JSON schema -> tables


def _md(text: Any) -> str:
    """Docstrings and descriptions are written with reST's ``literal``: Markdown's is `literal`."""
    return str(text).replace("``", "`")


def _cell(text: Any) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any], link: Any = None) -> str:
    """A JSON schema's type in a few words: ``integer``, ``list of string``, ``ModelConfig | null``."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return link(name) if link else name
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return " \\| ".join(_code(v) for v in schema["enum"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " \\| ".join(type_of(s, link) for s in schema[union])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return type_of(schema["allOf"][0], link)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " \\| ".join(kind)
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, dict) and items:
            return f"list of {type_of(items, link)}"
        if "prefixItems" in schema:
            return "tuple of (" + ", ".join(type_of(s, link) for s in schema["prefixItems"]) + ")"
        return "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"map of {type_of(extra, link)}"
        return "object"
    return kind or "any"


_BOUNDS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("minItems", ">= {} items"),
    ("maxItems", "<= {} items"),
    ("pattern", "matches `{}`"),
)


def bounds_of(schema: dict[str, Any]) -> str:
    """Bounds, from the schema itself or the members of a nullable union (``int | None`` with ``ge=1``)."""
    parts = [fmt.format(schema[key]) for key, fmt in _BOUNDS if key in schema]
    for member in schema.get("anyOf", []):
        parts += [fmt.format(member[key]) for key, fmt in _BOUNDS if key in member]
    items = schema.get("items")
    if isinstance(items, dict):
        inner = [fmt.format(items[key]) for key, fmt in _BOUNDS if key in items]
        if inner:
            parts.append("each " + ", ".join(inner))
    hint = schema.get("search")
    if isinstance(hint, dict):
        (dist, arg), *_ = hint.items()
        parts.append(f"search: `{dist} {json.dumps(arg)}`")
    elif hint is False:
        parts.append("never searched")
    return ", ".join(_cell(p) for p in parts)


def fields_table(schema: dict[str, Any], link: Any = None) -> str:
    """One row per property: name, type, default (or *required*), bounds, description."""
    props = schema.get("properties", {})
    if not props:
        return "No params.\n"
    required = set(schema.get("required", []))
    rows = ["| field | type | default | bounds | description |", "|---|---|---|---|---|"]
    for name, prop in props.items():
        default = "*required*" if name in required else _code(prop["default"]) if "default" in prop else ""
        description = _cell(prop.get("description", ""))
        rows.append(f"| `{name}` | {type_of(prop, link)} | {default} | {bounds_of(prop)} | {description} |")
    return "\n".join(rows) + "\n"


def _anchor(name: str) -> str:
    return name.lower().replace(".", "").replace("_", "-")


def model_section(title: str, schema: dict[str, Any], level: int, link: Any = None) -> str:
    doc = _md(schema.get("description", ""))
    return f"{'#' * level} {title}\n\n" + (f"{doc}\n\n" if doc else "") + fields_table(schema, link) + "\n"


# ---------------------------------------------------------------- pages


def config_page() -> str:
    from evsys_sdk import BenchmarkSpec, ExperimentConfig
    from evsys_sdk.tracking.conclusions import Expectation

    schema = ExperimentConfig.model_json_schema()
    defs = schema.pop("$defs", {})
    link = lambda name: f"[{name}](#{_anchor(name)})"  # noqa: E731
    out = [
        "# Config reference\n",
        "Every model of the experiment config, from `ExperimentConfig`'s JSON schema (`evsys schema --all` adds "
        "every installed extension's params; the params of each `kind` are in the extension pages). Every model "
        "forbids unknown keys.\n",
        model_section("ExperimentConfig", schema, 2, link),
    ]
    out += [model_section(name, defs[name], 2, link) for name in sorted(defs)]
    out.append(
        "## metadata\n\n`metadata` is free-form but for the keys the experiment reads: `hypothesis` and `tags` "
        "(recorded), `success_metric` (what best means: `train/final_loss`, or `NAME.METRIC` of a benchmark), "
        "`expect` and `benchmark` (a list), whose models follow.\n"
    )
    for title, model in (("metadata.benchmark[]: BenchmarkSpec", BenchmarkSpec), ("metadata.expect", Expectation)):
        sub = model.model_json_schema()
        sub.pop("$defs", None)
        out.append(model_section(title, sub, 3))
    return "\n".join(out)


def _params_sections(schema: dict[str, Any], level: int) -> str:
    defs = schema.pop("$defs", {})
    text = fields_table(schema) + "\n"
    for name in sorted(defs):
        text += model_section(f"`{name}`", defs[name], level, None)
    return text


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def extensions_page(kind: str) -> str:
    from evsys_sdk import schema_for
    from evsys_sdk.plugins.registry import FAMILY_NAMES, KINDS, family_backends, registry

    reg = registry(kind)
    title = KINDS[kind].replace("_", " ")
    out = [
        f"# {title.capitalize()}\n",
        f"Every installed `{kind}`, with its params (`evsys schema {kind} NAME` prints the same as JSON schema). "
        "A param's bounds are checked when a config is loaded; a `search` hint is the distribution "
        "`space: auto` of `evsys evolve` samples.\n",
    ]
    if kind == "algorithm":
        out.append("## Families\n")
        out.append(
            "`kind: sft` (or another family) resolves by `backend.kind` to the implementation below; these are "
            "the params every implementation of a family accepts.\n"
        )
        for family in FAMILY_NAMES:
            routes = ", ".join(f"{b} → `{a}`" for b, a in family_backends(family).items()) or "no backend installed"
            out.append(f"### `{family}`\n\nRoutes: {routes}.\n\n" + _params_sections(schema_for(kind, family), 4))
        out.append("## Implementations\n")
    level = 3 if kind == "algorithm" else 2
    for name, cls in reg.items():
        source = reg.source_of(name)
        out.append(f"{'#' * level} `{name}`\n")
        out.append(f"From **{source}**, class `{cls.__module__}.{cls.__qualname__}`. {_cell(_summary(cls))}\n")
        out.append(_params_sections(schema_for(kind, name), level + 1))
    return "\n".join(out)


def _actions_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| argument | default | help |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = ", ".join(action.option_strings) or (action.metavar or action.dest)
        if action.choices:
            name += " {" + ",".join(map(str, action.choices)) + "}"
        default = "" if action.default in (None, False, argparse.SUPPRESS) or action.required else _code(action.default)
        if action.option_strings and action.required:
            default = "*required*"
        rows.append(f"| `{_cell(name)}` | {default} | {_cell(action.help or '')} |")
    return "\n".join(rows) + "\n" if len(rows) > 2 else ""


def _commands(parser: argparse.ArgumentParser, path: str, level: int, help_text: str) -> list[str]:
    out = [f"{'#' * level} `{path}`\n"]
    if help_text or parser.description:
        out.append(_cell(parser.description or help_text) + "\n")
    out.append("```text\n" + parser.format_usage().strip() + "\n```\n")
    table = _actions_table(parser)
    if table:
        out.append(table)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out += _commands(sub, f"{path} {name}", min(level + 1, 4), helps.get(name, ""))
    return out


def cli_page() -> str:
    from evsys_sdk.cli.main import build_parser

    parser = build_parser()
    out = [
        "# CLI reference\n",
        "Every `evsys` command, walked from its argparse parser, plugins' verbs included "
        "(`evsys_register_commands`). `evsys COMMAND --help` prints the same.\n",
    ]
    out += _commands(parser, "evsys", 2, "")
    return "\n".join(out)


def hooks_page() -> str:
    from evsys_sdk.plugins import hookspecs

    out = [
        "# Hook specs\n",
        "The pluggy hooks a plugin implements (`evsys_sdk.plugins.hookspecs`; decorate with `evsys_sdk.hookimpl`). "
        "A plugin is a module of hook implementations named by an `evsys_sdk.plugins` entry point; see "
        "[Writing a plugin](../plugins.md).\n",
    ]
    for name, fn in vars(hookspecs).items():  # in the order the module defines them
        opts = getattr(fn, f"{hookspecs.PROJECT}_spec", None)
        if not inspect.isfunction(fn) or opts is None:
            continue
        first = " (first result wins)" if opts.get("firstresult") else ""
        sig = str(inspect.signature(fn)).replace("'", "")
        out.append(f"## `{name}`{first}\n\n```python\ndef {name}{sig}\n```\n\n{_md(inspect.getdoc(fn) or '')}\n")
    return "\n".join(out)


def api_page() -> str:
    import evsys_sdk

    by_module: dict[str, list[str]] = {}
    helpers: list[str] = []  # register_KIND / get_KIND / list_KIND: one closure per kind, in one table
    for name, module in sorted(evsys_sdk._WHERE.items(), key=lambda item: (item[1], item[0])):
        if getattr(getattr(evsys_sdk, name), "__qualname__", "").startswith("_helpers."):
            helpers.append(name)
        else:
            by_module.setdefault(module, []).append(name)
    out = [
        "# Python API\n",
        "Every name `evsys_sdk` exports (`from evsys_sdk import NAME`), grouped by the module that defines it, "
        "rendered from its docstring.\n",
    ]
    for module, names in by_module.items():
        out.append(f"## `{module}`\n")
        out += [f"::: {module}.{name}\n" for name in names]
    out.append("## Registry helpers\n")
    out.append(
        "One trio per extension kind, each a shortcut to `registry(kind)`: `register_KIND(name=None)` is a class "
        "decorator (the class's `name` attribute when no name is given), `get_KIND(name)` returns the class "
        "(discovering plugins first; an unknown name raises `UnknownKindError` with a did-you-mean and an "
        "install hint), `list_KIND()` the sorted names.\n"
    )
    out.append("| kind | names |\n|---|---|")
    trios: dict[str, list[str]] = {}
    for name in helpers:
        trios.setdefault(name.split("_", 1)[1], []).append(f"`{name}`")
    out += [f"| {kind} | {', '.join(names)} |" for kind, names in sorted(trios.items())]
    return "\n".join(out) + "\n"
