"""Layered configuration: built-in defaults < user YAML < environment < CLI flags.

Each layer is a nested mapping plus, for every leaf it sets, a human-readable
source ("config/codeforge.yaml:12", "env CODEFORGE_HTTP__PORT", "flag --port").
The merged mapping is converted once into `Settings`; any problem becomes a
`ConfigError` whose message is one line naming the key, where the value came
from and what is expected — so a bad deploy fails at start, not at first use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import msgspec
import yaml

from codeforge.settings import Settings

ENV_PREFIX = "CODEFORGE_"
# Variables under the prefix that are not settings.
RESERVED_ENV = ("CODEFORGE_CONFIG", "CODEFORGE_SECRET_", "CODEFORGE_TEST_")
SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey")
REDACTED = "***"

Tree = dict[str, Any]


class ConfigError(Exception):
    """The configuration cannot be used; str() is one line fit for a terminal."""


class LoadedConfig(msgspec.Struct, frozen=True):
    """Settings plus, for every leaf that was set, where its value came from."""

    settings: Settings
    sources: dict[str, str]
    config_file: str | None = None

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "default")


def default_config_path() -> Path:
    """The built-in defaults file, from a source checkout or an installed wheel."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (
        package_dir.parent / "config" / "codeforge.yaml",
        package_dir / "_bundled" / "config" / "codeforge.yaml",
    ):
        if candidate.is_file():
            return candidate
    raise ConfigError("built-in defaults config/codeforge.yaml are missing from this install")


def load_config(
    *,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    defaults_file: Path | None = None,
) -> LoadedConfig:
    """Build the effective settings from every layer.

    `config_file` falls back to $CODEFORGE_CONFIG. `flags` maps dotted keys
    ("http.port") to values given on the command line; None values are ignored.
    Raises ConfigError on a missing file, bad YAML, an unknown key or an invalid value.
    """
    env = dict(os.environ if env is None else env)
    merged: Tree = {}
    sources: dict[str, str] = {}

    defaults_path = defaults_file or default_config_path()
    _merge(merged, sources, *_yaml_layer(defaults_path, _display(defaults_path)))

    chosen = config_file or env.get("CODEFORGE_CONFIG") or None
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "--config" if config_file else "CODEFORGE_CONFIG"
            raise ConfigError(f"config file {path} (from {origin}) does not exist")
        _merge(merged, sources, *_yaml_layer(path, _display(path)))

    _merge(merged, sources, *_env_layer(env))
    _merge(merged, sources, *_flag_layer(flags or {}))

    settings = _convert(merged, sources)
    for key, expected in settings.problems():
        raise ConfigError(_invalid(key, _lookup(merged, key), sources, expected))
    return LoadedConfig(settings=settings, sources=sources, config_file=str(chosen or "") or None)


def effective_items(loaded: LoadedConfig) -> list[tuple[str, Any, str]]:
    """(dotted key, value with secrets redacted, source) for every setting, in order."""
    rows: list[tuple[str, Any, str]] = []
    for key, value in _leaves(msgspec.to_builtins(loaded.settings)):
        rows.append((key, redact(key, value), loaded.source_of(key)))
    return rows


def redact(key: str, value: Any) -> Any:
    """Hide secret values; URLs keep their shape with the password masked."""
    if not isinstance(value, str) or not value:
        return value
    leaf = key.rsplit(".", 1)[-1].lower()
    # `*_secret` fields hold the *name* of a secret, which is safe to show.
    if leaf.endswith("_secret"):
        return value
    if any(word in leaf for word in SECRET_WORDS):
        return REDACTED
    return re.sub(r"(://[^:/@\s]+:)[^@/\s]+@", rf"\1{REDACTED}@", value)


# --- layers ---------------------------------------------------------------


def _yaml_layer(path: Path, display: str) -> tuple[Tree, dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as e:
        raise ConfigError(f"cannot read config file {display}: {e.strerror}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark else display
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"config file {where} is not valid YAML: {problem}") from e
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {display} must hold a mapping of settings at the top")
    marks: dict[str, str] = {}
    if node is not None:
        _collect_marks(node, "", display, marks)
    return data, marks


def _collect_marks(node: yaml.Node, prefix: str, display: str, marks: dict[str, str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        marks[key] = f"{display}:{key_node.start_mark.line + 1}"
        _collect_marks(value_node, f"{key}.", display, marks)


def _env_layer(env: Mapping[str, str]) -> tuple[Tree, dict[str, str]]:
    tree: Tree = {}
    marks: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name.startswith(RESERVED_ENV):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {name} has an empty part between '__'")
        _set(tree, parts, _parse_env_value(env[name]))
        marks[".".join(parts)] = f"env {name}"
    return tree, marks


def _parse_env_value(raw: str) -> Any:
    # Structured values (lists, mappings) may be given as JSON; scalars stay
    # strings and are converted to the field's type by msgspec.
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _flag_layer(flags: Mapping[str, Any]) -> tuple[Tree, dict[str, str]]:
    tree: Tree = {}
    marks: dict[str, str] = {}
    for key, value in flags.items():
        if value is None:
            continue
        _set(tree, key.split("."), value)
        marks[key] = f"flag --{key.rsplit('.', 1)[-1].replace('_', '-')}"
    return tree, marks


# --- merging and conversion -------------------------------------------------


def _merge(
    into: Tree, sources: dict[str, str], layer: Tree, marks: dict[str, str], prefix: str = ""
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], sources, value, marks, f"{dotted}.")
            continue
        into[key] = value
        # Forget sources of the subtree this value replaces.
        for stale in [k for k in sources if k.startswith(f"{dotted}.")]:
            del sources[stale]
        for leaf, _ in _leaves(value, dotted) if isinstance(value, dict) else [(dotted, value)]:
            sources[leaf] = marks.get(leaf, marks.get(dotted, "unknown"))


def _convert(merged: Tree, sources: dict[str, str]) -> Settings:
    try:
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(_explain(str(e), merged, sources)) from e


_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _explain(message: str, merged: Tree, sources: dict[str, str]) -> str:
    match = _PATH.search(message)
    path = re.sub(r"\[(\d+)\]", r".\1", match.group("path")) if match else ""
    reason = _PATH.sub("", message)
    unknown = _UNKNOWN.match(reason)
    if unknown:
        key = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
        known = _known_fields(path)
        return (
            f"unknown setting {key} (from {sources.get(key, 'unknown')}); "
            f"known keys{' under ' + path if path else ''}: {', '.join(known)}"
        )
    return _invalid(path, _lookup(merged, path), sources, _expected(reason, path))


def _invalid(key: str, value: Any, sources: dict[str, str], expected: str) -> str:
    source = sources.get(key, "default")
    return f"invalid setting {key} = {value!r} (from {source}): expected {expected}"


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "object": "a mapping of settings",
}


def _expected(reason: str, path: str) -> str:
    allowed = _literal_values(_field_type(path))
    if allowed:
        return "one of " + ", ".join(str(v) for v in allowed)
    # msgspec says "Expected `int`, got `str`" or "Expected `int` >= 1".
    match = re.match(r"Expected `(?P<type>[^`]+)`(?P<rest>.*)", reason)
    if not match:
        return reason.replace("`", "")
    rest = match.group("rest").replace("`", "")
    if rest.startswith(", got"):
        rest = ""
    return _TYPE_WORDS.get(match.group("type"), match.group("type")) + rest


def _field_type(path: str) -> Any:
    current: Any = Settings
    for part in [p for p in path.split(".") if p]:
        try:
            fields = {f.name: f for f in msgspec.structs.fields(current)}
        except TypeError:
            return None
        if part not in fields:
            return None
        current = fields[part].type
    return current


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return ()


def _known_fields(path: str) -> list[str]:
    try:
        return [f.name for f in msgspec.structs.fields(_field_type(path))]
    except TypeError:
        return []


def _lookup(tree: Any, dotted: str) -> Any:
    for part in [p for p in dotted.split(".") if p]:
        if isinstance(tree, dict):
            tree = tree.get(part)
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return None
    return tree


def _set(tree: Tree, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = tree.setdefault(part, {})
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[parts[-1]] = value


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, child in value.items():
            rows.extend(_leaves(child, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
