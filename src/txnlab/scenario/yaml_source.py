"""Read a YAML scenario file into plain dicts and lists that remember their line numbers.

The validator needs line numbers to point at the problem ("atm.yaml:14: ..."), and
PyYAML only keeps them on its node tree, so the loader attaches them to the values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from txnlab.errors import ScenarioError


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


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry 1-based line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:  # type: ignore[override]
        self.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        result.text_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
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


def read_yaml(path: Path, text: str | None = None) -> LineDict:
    """Parse a scenario file; a syntax error becomes a ScenarioError naming the line."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(str(path), f"cannot read the file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ScenarioError(str(path), "the file is not UTF-8 text") from None
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError(str(path), f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), f"invalid YAML: {exc}") from None
    if not isinstance(document, LineDict):
        raise ScenarioError(str(path), "a scenario file must be a mapping (name:, title:, steps: ...)", 1)
    return document
