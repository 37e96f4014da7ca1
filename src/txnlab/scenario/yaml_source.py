"""Read a YAML scenario file into plain dicts and lists that remember their line numbers.

The validator needs line numbers to point at the problem ("atm.yaml:14: ..."), and
PyYAML only keeps them on its node tree, so the loader attaches them to the values.

A scenario file may come from anyone, so the loader bounds what it accepts before it
builds any Python object: the file's size, the nesting depth (checked while PyYAML
composes its node graph) and the number of values once aliases are expanded (counted
on the node graph, where an alias bomb is still a few nodes: it explodes only when
constructed). Every failure is one ScenarioError with the line when there is one.

A number with a fraction or an exponent (`0.10`, `12345678901234567.89`) is read as the
exact Decimal of its digits, never as a float: it is compared with the text the server
prints (`0.10` is not `0.1`).
"""

from __future__ import annotations

import decimal
from pathlib import Path
from typing import Any

import yaml

from txnlab.errors import ScenarioError
from txnlab.scenario.quote import quote

MAX_FILE_BYTES = 256 * 1024  # the largest catalogue file is about 6 KB
MAX_DEPTH = 32  # mappings and lists inside each other; the catalogue needs 7
MAX_VALUES = 50_000  # values after expanding aliases; the catalogue's largest file has about 700


class LineDict(dict[str, Any]):
    """A mapping from the file; `line` is where it starts, `key_lines[k]` where key k is,
    `text_lines[k]` the line where the text of value k begins (after `|` for a block)."""

    line: int = 0
    key_lines: dict[str, int]
    text_lines: dict[str, int]


class LineList(list[Any]):
    """A sequence from the file; `line` is where it starts, `item_lines[i]` where item i is,
    `text_lines[i]` the line where the text of item i begins."""

    line: int = 0
    item_lines: list[int]
    text_lines: list[int]


def _text_line(node: yaml.Node) -> int:
    """The 1-based line of a value's first character of text: a block scalar (`|`, `>`)
    starts on the line after its indicator."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        line += 1
    return line


def _error(problem: str, node: yaml.Node) -> yaml.MarkedYAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry 1-based line numbers, and which
    refuses documents nested deeper than MAX_DEPTH while composing them."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"values are nested more than {MAX_DEPTH} deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a date like 2017-13-45, a 5000-digit number
            raise _error(f"cannot read {quote(node.value)}: {str(exc).split(':')[0][:80]}", node) from None

    def construct_exact_number(self, node: yaml.ScalarNode) -> decimal.Decimal | float:
        """YAML's float, as the Decimal of its digits as written (`0.10` keeps its zero);
        `.inf` and `.nan` as Decimal's Infinity and NaN. A YAML 1.1 base-60 number
        (`1:30.5`), which has no decimal form, stays a float."""
        text = str(self.construct_scalar(node)).replace("_", "")
        special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
        try:
            return decimal.Decimal(special.get(text.lower(), text))
        except decimal.InvalidOperation:
            return self.construct_yaml_float(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        self.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        result.text_lines = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise _error(f"a key must be text, not {kind}", key_node)
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = key_node.value  # `1:`, `true:`: the key as written
            if key in result:
                raise _error(f"duplicate key {quote(key)}", key_node)
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
            result.text_lines[key] = _text_line(value_node)
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:  # type: ignore[override]
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        result.text_lines = [_text_line(child) for child in node.value]
        return result


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _LineLoader.construct_exact_number)


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values, depth) of the document once its aliases are expanded, computed on the
    node graph without expanding it: each distinct node is visited once (an alias is
    the same node object again) and its size and height are remembered.

    Raises ConstructorError at an alias inside the value it names (`&a [*a]`), which
    would never finish expanding."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()  # visited, children not yet done: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in open_:  # everything above its entry on the stack lies inside it
                raise _error("an alias (*name) stands for a value that contains it", node)
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        size[id(node)] = min(1 + sum(size[id(c)] for c in children), MAX_VALUES + 1)
        height[id(node)] = 1 + max((height[id(c)] for c in children), default=0)
    return size[id(root)], height[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = f"the file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded"
        raise ScenarioError(str(path), problem, line) from None


def _read(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(str(path), f"cannot read the file: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(str(path), f"the file is larger than {MAX_FILE_BYTES // 1024} KB, too large for a scenario")
    return _decode(path, data)


def _compose(path: Path, loader: _LineLoader, text: str) -> yaml.Node | None:
    """PyYAML's node graph of the document, within MAX_DEPTH and MAX_VALUES."""
    node = loader.get_single_node()
    if node is None:
        return None
    values, depth = _expanded_size(node)
    if values > MAX_VALUES:
        raise ScenarioError(
            str(path), f"the document has more than {MAX_VALUES} values once its aliases (*name) are expanded", 1
        )
    if depth > MAX_DEPTH:
        raise ScenarioError(
            str(path), f"values are nested more than {MAX_DEPTH} deep once aliases (*name) are expanded", 1
        )
    return node


def read_yaml(path: Path, text: str | None = None) -> LineDict:
    """Parse a scenario file (or `text` as if it were that file); a syntax error, a file
    too large, too deep or with too many values becomes a ScenarioError naming the line."""
    if text is None:
        text = _read(path)
    elif len(text) > MAX_FILE_BYTES:
        raise ScenarioError(str(path), f"the text is larger than {MAX_FILE_BYTES // 1024} KB, too large for a scenario")
    try:
        loader = _LineLoader(text)
        try:
            node = _compose(path, loader, text)
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        problem = f"invalid YAML: the character {quote(chr(exc.character))} is not allowed in a YAML file"
        raise ScenarioError(str(path), problem, text.count("\n", 0, exc.position) + 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        prefix = "" if isinstance(exc, yaml.constructor.ConstructorError) else "invalid YAML: "
        raise ScenarioError(str(path), f"{prefix}{problem[:160]}", line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), "invalid YAML: " + " ".join(str(exc).split())[:160]) from None
    if not isinstance(document, LineDict):
        raise ScenarioError(str(path), "a scenario file must be a mapping (name:, title:, steps: ...)", 1)
    return document
