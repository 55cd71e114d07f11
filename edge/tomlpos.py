"""Find the line of a key path in TOML text, for error messages.

``tomllib`` gives no positions, so this scans the text once, following table
headers (``[a.b]``), arrays of tables (``[[rooms]]``, counted per parent) and
``key = value`` lines, and maps each full key path to its line.  A path inside
an inline table or a multi-line value falls back to its nearest known parent.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")

Path = tuple[str | int, ...]


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def key_lines(text: str) -> dict[Path, int]:
    lines: dict[Path, int] = {}
    array_counts: dict[Path, int] = {}  # path of an array of tables -> last index
    current: Path = ()
    in_multiline: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if raw.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(raw)
        if header and not raw.lstrip().startswith("#"):
            is_array = header.group(1) == "[["
            resolved: list[str | int] = []
            parts = _parts(header.group(2))
            for i, part in enumerate(parts):
                resolved.append(part)
                last = i == len(parts) - 1
                key = tuple(resolved)
                if last and is_array:
                    array_counts[key] = array_counts.get(key, -1) + 1
                    resolved.append(array_counts[key])
                elif key in array_counts:
                    resolved.append(array_counts[key])
            current = tuple(resolved)
            lines.setdefault(current, lineno)
            if is_array:
                lines.setdefault(current[:-1], lineno)
            continue
        assignment = _KEY.match(raw)
        if assignment and not raw.lstrip().startswith("#"):
            path = current + tuple(_parts(assignment.group(1)))
            lines.setdefault(path, lineno)
            rest = raw[assignment.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def locate(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Line of ``loc`` (a pydantic error location), or of its nearest parent."""
    known = key_lines(text)
    path: Path = tuple(loc)
    while path:
        if path in known:
            return known[path]
        path = path[:-1]
    return None
