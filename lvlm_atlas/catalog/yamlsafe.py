"""Strict YAML reading for hand-edited catalog files.

PyYAML silently keeps the last of two duplicate keys and happily expands anchors and aliases
(including "billion laughs" bombs). Catalog files must be plain data, so this module rejects:
duplicate keys, anchors/aliases, tab characters, non-UTF-8 bytes, a byte-order mark, oversized files,
and any document that is not a single mapping. Every problem carries a 1-based line and column.

It also returns, for every value in the document, where it starts (`positions`), keyed by the path of
keys and list indexes leading to it, so schema errors can point at the exact line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolve_cache: dict[str, str] = {}


class Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with a faster implicit-tag resolver.

    The safe loader has no path resolvers, so a node's tag depends only on its kind and, for plain
    scalars, on the value; catalog files repeat the same keys and many values, so plain-scalar tags are
    memoised. The result is the same as PyYAML's `Resolver.resolve`.
    """

    def resolve(self, kind, value, implicit, _scalar=yaml.ScalarNode, _cache=_resolve_cache):
        # called by the C composer for every node (module lookups bound as defaults)
        if self.yaml_path_resolvers:  # pragma: no cover - nobody registers path resolvers on this loader
            return super().resolve(kind, value, implicit)
        if kind is _scalar:
            if not implicit[0]:
                return self.DEFAULT_SCALAR_TAG
            tag = _cache.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_cache) < 100_000:
                    _cache[value] = tag
            return tag
        return self.DEFAULT_SEQUENCE_TAG if kind is yaml.SequenceNode else self.DEFAULT_MAPPING_TAG

    # The safe loader has no path resolvers, so descending into and out of nodes records nothing.
    def descend_resolver(self, current_node, current_index):
        return None

    def ascend_resolver(self):
        return None


MAX_BYTES = 64 * 1024

Path_ = tuple  # a tuple of str keys and int indexes


@dataclass(frozen=True)
class YamlProblem:
    line: int
    col: int
    message: str
    hint: str = ""


@dataclass
class ParsedYaml:
    data: Any = None
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)


def _pos(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _line_col_of_offset(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _scan_anchors(text: str) -> list[YamlProblem]:
    """Find anchors and aliases with the pure-Python event parser (only called when '&' or '*' occur)."""
    problems = []
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line, col = _pos(event.start_mark)
                problems.append(YamlProblem(line, col, f"YAML alias '*{event.anchor}' is not allowed in catalog files",
                                            "write the value out in full instead of referring to an anchor"))
            elif getattr(event, "anchor", None):
                line, col = _pos(event.start_mark)
                problems.append(YamlProblem(line, col, f"YAML anchor '&{event.anchor}' is not allowed in catalog files",
                                            "remove the '&name' anchor and write each value out in full"))
    except yaml.YAMLError:
        pass  # reported by the main parse
    return problems


_BOOL = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.ScalarNode) -> Any:
    """Convert a scalar by its resolved tag (what PyYAML's SafeConstructor would produce)."""
    tag, value = node.tag, node.value
    if tag == "tag:yaml.org,2002:str":
        return value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return _BOOL[value.lower()]
    if tag == "tag:yaml.org,2002:int" and value.lstrip("-+").isdigit():
        return int(value)
    return _constructor.construct_object(node, deep=True)  # floats, timestamps, exotic ints


def _walk(node, path: Path_, out: ParsedYaml) -> Any:
    """Record positions, reject duplicate keys, and build the Python value in one pass."""
    out.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, path + (i,), out) for i, item in enumerate(node.value)]
    if not isinstance(node, yaml.MappingNode):  # pragma: no cover - no other node kinds exist
        raise yaml.YAMLError(f"unexpected node {node!r}")
    result: dict[str, Any] = {}
    seen: dict[str, tuple[int, int]] = {}
    for key_node, value_node in node.value:
        kpos = _pos(key_node.start_mark)
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
            out.problems.append(YamlProblem(*kpos, "YAML merge keys ('<<') are not allowed in catalog files",
                                            "write the merged keys out in full"))
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            out.problems.append(YamlProblem(*kpos, "mapping keys must be plain strings", "write 'key: value'"))
            continue
        key = key_node.value
        if key in seen:
            out.problems.append(YamlProblem(
                *kpos, f"duplicate key '{key}' (first defined at line {seen[key][0]})",
                f"keep one '{key}:' entry; YAML readers silently keep only the last one"))
            continue
        seen[key] = kpos
        out.key_positions[path + (key,)] = kpos
        result[key] = _walk(value_node, path + (key,), out)
    return result


class _NeedsLocating(Exception):
    """Raised by the fast builder on anything it would have to report with a position."""


def _build(node) -> Any:
    """Build the Python value without recording positions (the common, valid case); any duplicate key,
    merge key or non-scalar key raises `_NeedsLocating` so the caller can redo the walk with positions."""
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item) for item in node.value]
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise _NeedsLocating
        key = key_node.value
        if key in result:
            raise _NeedsLocating
        result[key] = _build(value_node)
    return result


def read_yaml(raw: bytes, max_bytes: int = MAX_BYTES, locate: bool = True) -> ParsedYaml:
    """Parse one catalog file strictly. Never raises on bad input: problems are returned.

    With `locate=False` the positions of valid documents are not recorded (faster); problems are always
    reported with their line and column.
    """
    out = ParsedYaml()
    if len(raw) > max_bytes:
        out.problems.append(YamlProblem(1, 1, f"file is {len(raw):,} bytes, over the {max_bytes:,}-byte limit",
                                        "catalog entries are small; remove embedded data (long abstracts, base64)"))
        return out
    if raw.startswith(b"\xef\xbb\xbf"):
        out.problems.append(YamlProblem(1, 1, "file starts with a UTF-8 byte-order mark", "save the file as UTF-8 without BOM"))
        return out
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col_of_offset(raw[: exc.start].decode("utf-8", "replace"), exc.start)
        out.problems.append(YamlProblem(line, col, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                                        "save the file as UTF-8"))
        return out
    if "\x00" in text:
        line, col = _line_col_of_offset(text, text.index("\x00"))
        out.problems.append(YamlProblem(line, col, "file contains a NUL character", "remove binary content"))
        return out
    if "\t" in text:
        line, col = _line_col_of_offset(text, text.index("\t"))
        out.problems.append(YamlProblem(line, col, "tab character found", "indent with spaces and replace tabs in values by spaces"))
        return out
    if "&" in text or "*" in text:
        out.problems.extend(_scan_anchors(text))
        if out.problems:
            return out
    try:
        loader = Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                out.problems.append(YamlProblem(1, 1, "file is empty", "write one paper as a YAML mapping (see catalog/papers/fastv.yaml)"))
                return out
            if not isinstance(node, yaml.MappingNode):
                out.problems.append(YamlProblem(*_pos(node.start_mark), "the document must be a mapping of keys to values",
                                                "start with 'id: your-paper-id' on the first line after the comment"))
                return out
            if not locate:
                try:
                    out.data = _build(node)
                    return out
                except _NeedsLocating:
                    pass
            data = _walk(node, (), out)
            if out.problems:
                return out
            out.data = data
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        msg = " ".join(x for x in (exc.context, exc.problem) if x)
        out.problems.append(YamlProblem(line, col, f"YAML syntax error: {msg}",
                                        "check indentation and quote values that contain ': ' or start with a special character"))
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        out.problems.append(YamlProblem(1, 1, f"YAML error: {exc}", "check the file's syntax"))
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. an impossible date 2024-02-31
        out.problems.append(YamlProblem(1, 1, f"cannot read a value: {exc}", "check dates (YYYY-MM-DD) and numbers"))
    return out
