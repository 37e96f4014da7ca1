"""Mutations of catalogue scenario files, shared by the hypothesis test and the big trial.

Each mutation takes the file's bytes and a `random.Random` (hypothesis supplies one it
controls) and returns new bytes: the kinds of damage a hand edit, a bad merge, a wrong
encoding or a hostile file does to a YAML scenario.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

Mutation = Callable[[bytes, random.Random], bytes]

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
YAML_FILES = sorted(p for p in CATALOGUE.rglob("*.yaml") if not p.name.startswith("_"))

SCALAR_REPLACEMENTS = [
    b"[a, b]", b"{a: 1}", b"[[x]]", b"42", b"40001", b"-1.5e9", b"null", b"~", b"true",
    b'"true"', b"''", b"2017-13-45", b"2017-01-01", b"!!binary aGk=", b"!!python/object:os.system x",
    b"&a x", b"*nowhere", b"0x1F", b"1" * 5000, b"[]", b"{}", b"? [k]\n  : v", b"\"\\x01\"",
]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def delete_line(data: bytes, rnd: random.Random) -> bytes:
    lines = _lines(data)
    del lines[rnd.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(data: bytes, rnd: random.Random) -> bytes:
    lines = _lines(data)
    i = rnd.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\n".join(lines)


def swap_lines(data: bytes, rnd: random.Random) -> bytes:
    lines = _lines(data)
    i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def replace_scalar(data: bytes, rnd: random.Random) -> bytes:
    """Put a list, a map, a number, null... where a `key: value` line has its value."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if b": " in line and not line.rstrip().endswith(b"|")]
    if not candidates:
        return data
    i = rnd.choice(candidates)
    key, _, _ = lines[i].partition(b": ")
    lines[i] = key + b": " + rnd.choice(SCALAR_REPLACEMENTS)
    return b"\n".join(lines)


def replace_list_item(data: bytes, rnd: random.Random) -> bytes:
    """Put a list, a map or a number where a step name or a list item belongs."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if line.lstrip().startswith(b"- ")]
    if not candidates:
        return data
    i = rnd.choice(candidates)
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = indent + b"- " + rnd.choice(SCALAR_REPLACEMENTS)
    return b"\n".join(lines)


def deep_nesting(data: bytes, rnd: random.Random) -> bytes:
    depth = rnd.choice([50, 500, 5000, 50000])
    opener, closer = rnd.choice([(b"[", b"]"), (b"{a: ", b"}")])
    value = opener * depth + b"x" + closer * depth
    return data + b"\nsteps: " + value + b"\n"


def alias_bomb(data: bytes, rnd: random.Random) -> bytes:
    """The billion laughs: each list in `tags:` holds the previous one nine times (a few
    hundred bytes), and a later value is the last one: 9**levels items once expanded."""
    levels = rnd.randrange(3, 12)
    anchors = [b"&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    anchors += [b"&l%d [%s]" % (n, b", ".join([b"*l%d" % (n - 1)] * 9)) for n in range(1, levels)]
    lines = [line for line in _lines(data) if not line.startswith(b"tags:")]
    lines.insert(0, b"tags: [" + b", ".join(anchors) + b"]")
    later = [i for i, line in enumerate(lines) if i and b": " in line and not line.rstrip().endswith(b"|")]
    if later:
        i = rnd.choice(later)
        lines[i] = lines[i].partition(b": ")[0] + b": *l%d" % (levels - 1)
    return b"\n".join(lines)


def control_characters(data: bytes, rnd: random.Random) -> bytes:
    i = rnd.randrange(len(data) + 1)
    char = bytes([rnd.choice([0, 1, 7, 8, 11, 12, 13, 27, 127])])
    return data[:i] + char * rnd.randrange(1, 4) + data[i:]


def invalid_utf8(data: bytes, rnd: random.Random) -> bytes:
    i = rnd.randrange(len(data) + 1)
    return data[:i] + rnd.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xfe\xfe"]) + data[i:]


def huge_value(data: bytes, rnd: random.Random) -> bytes:
    size = rnd.choice([10_000, 1_000_000, 3_000_000])
    key = rnd.choice([b"name", b"title", b"bogus_key", b"levels", b"tags"])
    value = rnd.choice([b"x", b"\xc3\xa9", b"a b "]) * (size // 4)
    if key in (b"levels", b"tags"):
        value = b"[" + value + b"]"
    return key + b": " + value + b"\n" + data


def truncate(data: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.randrange(len(data) + 1)]


def flip_indentation(data: bytes, rnd: random.Random) -> bytes:
    lines = _lines(data)
    i = rnd.randrange(len(lines))
    lines[i] = rnd.choice([b"  ", b"\t", b""]) + lines[i].lstrip() if rnd.random() < 0.5 else b" " + lines[i]
    return b"\n".join(lines)


MUTATIONS: dict[str, Mutation] = {
    f.__name__: f
    for f in (
        delete_line, duplicate_line, swap_lines, replace_scalar, replace_list_item, deep_nesting,
        alias_bomb, control_characters, invalid_utf8, huge_value, truncate, flip_indentation,
    )
}


def mutate(data: bytes, rnd: random.Random, count: int) -> tuple[bytes, list[str]]:
    """Apply `count` mutations chosen by `rnd`; returns the bytes and the mutations' names."""
    names = [rnd.choice(sorted(MUTATIONS)) for _ in range(count)]
    for name in names:
        data = MUTATIONS[name](data, rnd)
    return data, names
