"""Limits on YAML that people upload (mapping specs, connection settings), checked on
the parser's event stream before anything is built.

Building the document is where YAML hurts: the composer recurses once per nesting level
(thousands of ``[`` overflow Python's stack), and aliases make a small file expand
exponentially (the "billion laughs": nine aliases of nine aliases of ... ). The event
stream is produced without recursion and without expanding aliases, so counting on it is
cheap: nesting depth, the number of aliases, and the number of nodes the document would
have once every alias is expanded. A document over a limit is refused with the line
where it went over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 256 * 1024
    #: Specs nest a handful of levels; 64 is far beyond any real document.
    max_depth: int = 64
    max_aliases: int = 1_000
    #: Nodes after expanding every alias (a 256 KiB spec has at most ~100,000 nodes).
    max_nodes: int = 200_000


DEFAULT_LIMITS = YamlLimits()


class YamlTooLarge(ValueError):
    """The document is over a limit; ``line`` (1-based) is where, when known."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def check_yaml(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`YamlTooLarge` when ``text`` is over ``limits``. Syntax errors met on
    the way are raised as ruamel's own ``YAMLError`` (the caller reports those already)."""
    size = len(text.encode("utf-8"))
    if size > limits.max_bytes:
        raise YamlTooLarge(
            None, f"is {size // 1024} KiB; the most accepted is {limits.max_bytes // 1024} KiB"
        )
    _refuse_bracket_runs(text, limits.max_depth)
    # Node counts of the collections being read (innermost last), and of each anchor.
    open_counts: list[int] = []
    open_anchors: list[str | None] = []
    anchors: dict[str, int] = {}
    aliases = 0
    total = 0
    for event in YAML(typ="rt").parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, CollectionStartEvent):
            if len(open_counts) >= limits.max_depth:
                raise YamlTooLarge(
                    line,
                    f"is nested more than {limits.max_depth} levels deep; flatten the structure",
                )
            open_counts.append(1)
            open_anchors.append(event.anchor)
            continue
        if isinstance(event, CollectionEndEvent):
            count = open_counts.pop()
            anchor = open_anchors.pop()
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise YamlTooLarge(
                    line, f"uses more than {limits.max_aliases} aliases (*name); write it out"
                )
            count = anchors.get(str(event.anchor), 1)
            anchor = None
        elif isinstance(event, ScalarEvent):
            count, anchor = 1, event.anchor
        else:
            continue
        if anchor is not None:
            anchors[str(anchor)] = count
        if open_counts:
            open_counts[-1] += count
        else:
            total += count
        expanded = total + sum(open_counts)
        if expanded > limits.max_nodes:
            raise YamlTooLarge(
                line,
                f"expands to more than {limits.max_nodes:,} values through its aliases "
                "(*name); an alias repeats everything its anchor (&name) holds, so nested "
                "aliases multiply; write the values out or use fewer aliases",
            )


def _refuse_bracket_runs(text: str, max_depth: int) -> None:
    """A fast path for the plainest deep document, a run of ``[`` or ``{``: ruamel's
    scanner spends time quadratic in the open brackets (up to its 1,024-character
    look-ahead) before the first event would be refused."""
    run = re.search(r"[\[{](?:\s*[\[{]){" + str(max_depth) + "}", text)
    if run is not None:
        line = text.count("\n", 0, run.start()) + 1
        raise YamlTooLarge(
            line, f"is nested more than {max_depth} levels deep; flatten the structure"
        )
