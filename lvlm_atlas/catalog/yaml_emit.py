"""A small, fast YAML writer for flat records (the catalog's YAML export).

The export is a list of flat records: keys are strings, values are str, int, bool, None or lists of
those. PyYAML builds a node tree for every value and runs its resolver on each scalar, which made the
YAML export the slowest part of site generation; writing such records directly is about ten times faster.

Strings are written plain when that is unambiguous (a conservative character set, and PyYAML's own
resolver says the text reads back as a string), and otherwise double-quoted. A JSON string literal is a
valid YAML double-quoted scalar, so quoting is `json.dumps(..., ensure_ascii=False)` plus `\\u` escapes for
the characters YAML does not allow raw or would read as line breaks (DEL, C1 controls, U+2028/U+2029,
byte-order mark, U+FFFE/U+FFFF). The output is deterministic: it depends only on the records and their
key order. Anything outside the supported types raises TypeError, and text with a lone surrogate (not
valid Unicode; it cannot be written as UTF-8 and libyaml rejects it even escaped) raises ValueError.
"""
from __future__ import annotations

import functools
import json
import re

from yaml import ScalarNode
from yaml.resolver import Resolver

_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = Resolver()
# Plain (unquoted) only for a conservative set: starts with a letter or digit, then letters, digits,
# space and a few punctuation marks; no ": " (a mapping key), no trailing space or colon.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/()+,;:=-]*")
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_char(m: re.Match) -> str:
    return "\\u%04x" % ord(m.group(0))


def scalar(value) -> str:
    """One scalar as YAML text that `yaml.safe_load` reads back as the same value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is not str:
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as a flat YAML scalar; "
                        "records hold only str, int, bool, None and lists of those")
    return _string(value)


@functools.lru_cache(maxsize=1 << 14)  # keys, stages and tags recur in every record; a pure function
def _string(value: str) -> str:
    if (_PLAIN.fullmatch(value) and not value.endswith((" ", ":")) and ": " not in value
            and _RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR_TAG):
        return value
    if _SURROGATE.search(value):
        raise ValueError(f"text {value!r} holds a lone surrogate, which is not valid Unicode; "
                         "fix the text where it came from (a catalog file or an ingested record)")
    quoted = json.dumps(value, ensure_ascii=False)
    return _ESCAPE.sub(_escape_char, quoted) if _ESCAPE.search(quoted) else quoted


def record_lines(record: dict, out: list[str]) -> None:
    """Append the lines of one record, as an item of a block sequence, to `out`."""
    first = True
    for key, value in record.items():
        if type(key) is not str:
            raise TypeError(f"record keys must be strings, not {type(key).__name__} {key!r}")
        lead = "- " if first else "  "
        first = False
        if type(value) is list:
            if not value:
                out.append(f"{lead}{scalar(key)}: []\n")
                continue
            out.append(f"{lead}{scalar(key)}:\n")
            for item in value:
                if type(item) in (list, dict):
                    raise TypeError(f"{key!r} holds a nested {type(item).__name__}; records must be flat")
                out.append(f"  - {scalar(item)}\n")
        else:
            out.append(f"{lead}{scalar(key)}: {scalar(value)}\n")
    if first:
        out.append("- {}\n")


def dump_records(records: list[dict]) -> str:
    """A YAML document holding `records` as a block sequence of mappings."""
    if not records:
        return "[]\n"
    out: list[str] = []
    for record in records:
        if type(record) is not dict:
            raise TypeError(f"records must be dicts, not {type(record).__name__}")
        record_lines(record, out)
    return "".join(out)
