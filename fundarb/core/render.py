"""Render the position transition table as Mermaid, Graphviz DOT and a Markdown table.

The renderers read :data:`fundarb.core.position.TRANSITIONS` and nothing else, so a diagram
is always what the code does. Edges from one state to another are merged, their labels listing
the events that can take that step; self-loops are left out of the diagrams (they are in the
Markdown table).

>>> from fundarb.core.render import to_mermaid
>>> to_mermaid().splitlines()[0]
'stateDiagram-v2'
"""

from __future__ import annotations

from collections import defaultdict

from fundarb.core.position import TERMINAL_STATES, TRANSITIONS, PositionState, Rule

__all__ = ["edges", "to_dot", "to_markdown", "to_mermaid"]


def edges(rules: tuple[Rule, ...] = TRANSITIONS) -> dict[tuple[PositionState, PositionState], list[str]]:
    """``(source, target) -> sorted event names`` over every declared non-self transition."""
    out: dict[tuple[PositionState, PositionState], set[str]] = defaultdict(set)
    for r in rules:
        for t in r.targets:
            if t is not r.source:
                out[(r.source, t)].add(r.event.__name__)
    return {k: sorted(v) for k, v in sorted(out.items(), key=lambda kv: (kv[0][0].name, kv[0][1].name))}


def _label(names: list[str], limit: int = 4) -> str:
    shown = names[:limit]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more else "")


def to_mermaid(rules: tuple[Rule, ...] = TRANSITIONS) -> str:
    """A Mermaid ``stateDiagram-v2`` of the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {PositionState.PLANNED.name}"]
    for s in PositionState:
        lines.append(f'    state "{s.value}" as {s.name}')
    for (src, dst), names in edges(rules).items():
        lines.append(f"    {src.name} --> {dst.name}: {_label(names)}")
    for s in sorted(TERMINAL_STATES, key=lambda s: s.name):
        lines.append(f"    {s.name} --> [*]")
    return "\n".join(lines) + "\n"


def to_dot(rules: tuple[Rule, ...] = TRANSITIONS) -> str:
    """A Graphviz DOT digraph of the table."""
    lines = [
        "digraph position {",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=9];',
        '    start [shape=point, label=""];',
        f"    start -> {PositionState.PLANNED.name};",
    ]
    for s in PositionState:
        shape = ", peripheries=2" if s in TERMINAL_STATES else ""
        lines.append(f'    {s.name} [label="{s.value}"{shape}];')
    for (src, dst), names in edges(rules).items():
        lines.append(f'    {src.name} -> {dst.name} [label="{_label(names, 3)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_markdown(rules: tuple[Rule, ...] = TRANSITIONS) -> str:
    """Every rule of the table, one row each: state, event, possible next states, guard."""
    lines = [
        "# Position state machine: transition table",
        "",
        "Generated from `fundarb/core/position.py` by `python -m fundarb statecharts`; do not edit.",
        "",
        "| from | event | to | guard |",
        "|---|---|---|---|",
    ]
    for r in sorted(rules, key=lambda r: (list(PositionState).index(r.source), r.event.__name__)):
        targets = ", ".join(t.name for t in sorted(r.targets, key=list(PositionState).index))
        lines.append(f"| {r.source.name} | {r.event.__name__} | {targets} | {r.guard} |")
    return "\n".join(lines) + "\n"
