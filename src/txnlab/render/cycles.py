"""The HTML report's derived anomalies: each cycle drawn as inline SVG (transactions as nodes,
dependencies as labelled arrows), its explanation beside it, and each edge linked to the steps
that are its evidence (the rows of the run's step list). Nothing is loaded: no script, no font.

Solid arrows rest on facts observed exactly (the trigger's log); dashed ones are inferred (a
read matched to a version by its values); dotted ones are predicate anti-dependencies (a read
by condition). See docs/history.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from txnlab.history.model import DerivedAnomaly, Edge
from txnlab.render.derived import HEADING, anomaly_title, derived
from txnlab.render.markup import escape
from txnlab.render.report import RunReport

# Geometry, in SVG units (CSS pixels at full size).
WIDTH = 560  # labels stand outside the cycle, so the drawing is wider than the ring
HEIGHT, PAIR_HEIGHT = 400, 220  # three transactions or more; two
RING = 125  # radius of the circle the transactions sit on
LABEL_GAP = 12  # from the curve's middle to its label, outwards
NODE_RY = 26
BOW = 40  # how far an arrow bows from the straight line, per arrow between the same two transactions
CHAR = 9.0  # a character's width at 15px, to size a node to its name

StepHref = Callable[[str], "str | None"]  # a step's name -> the id of its row in the step list, or None


def derived_section(report: RunReport, step_href: StepHref) -> str:
    """The run's derived anomalies as HTML (empty when the run recorded no history): the
    heading, each anomaly as a figure (its drawing) beside its explanation and its evidence,
    or the line saying there is no cycle; then the caveats (see render.derived)."""
    said = derived(report)
    if said is None or report.analysis is None:
        return ""
    parts = [f'<div class="derived"><h4>{escape(HEADING)}</h4>']
    for number, anomaly in enumerate(report.analysis.anomalies, 1):
        parts.append(_anomaly(anomaly, number, step_href))
    if report.analysis.anomalies:
        parts.append(f'<p class="meta">{escape(LEGEND)}</p>')
    else:
        parts.append(f'<p class="no-cycle">{escape(said.no_cycle)}</p>')
    if said.caveats:
        parts.append('<ul class="caveats">' + "".join(f"<li>{escape(line)}</li>" for line in said.caveats) + "</ul>")
    return "\n".join([*parts, "</div>"])


def _anomaly(anomaly: DerivedAnomaly, number: int, step_href: StepHref) -> str:
    explanation = "".join(f"<p>{escape(line)}</p>" for line in anomaly.explanation)
    evidence = "".join(f"<li>{_evidence(edge, step_href)}</li>" for edge in anomaly.cycle)
    return (
        f'<div class="anomaly" data-name="{escape(anomaly.name)}">'
        f"<figure class=\"cycle\">{cycle_svg(anomaly, number, step_href)}</figure>"
        f'<div class="explanation"><p class="title">{escape(anomaly_title(anomaly))}</p>{explanation}'
        f'<ol class="evidence">{evidence}</ol></div></div>'
    )


def _evidence(edge: Edge, step_href: StepHref) -> str:
    """An edge in words, then each step it rests on, linked to its row in the step list."""
    steps = []
    for step in edge.steps:
        href = step_href(step)
        steps.append(f'<a href="#{escape(href)}">{escape(step)}</a>' if href else escape(step))
    how = "inferred" if edge.inferred else "observed"
    kind = f"{edge.kind}{' predicate' if edge.predicate else ''}, {how}"
    return (f'<span class="edge-kind">{escape(edge.source)} → {escape(edge.target)} ({escape(kind)})</span> '
            f"{escape(edge.evidence)}" + (f' <span class="steps">(steps {", ".join(steps)})</span>' if steps else ""))


def _height(names: Sequence[str]) -> int:
    return PAIR_HEIGHT if len(names) <= 2 else HEIGHT


def _places(names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Each transaction's centre: two side by side, more around a circle from the top, clockwise."""
    cx, cy = WIDTH / 2, _height(names) / 2 + (12 if len(names) > 2 else 0)
    start = math.pi if len(names) == 2 else -math.pi / 2
    return {
        name: (cx + RING * math.cos(start + 2 * math.pi * i / len(names)),
               cy + RING * math.sin(start + 2 * math.pi * i / len(names)))
        for i, name in enumerate(names)
    }


def _rx(name: str) -> float:
    return max(34.0, len(name) * CHAR / 2 + 14)


def _rim(centre: tuple[float, float], rx: float, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from an ellipse's centre towards a point crosses the ellipse."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    t = 1 / math.sqrt((ux / rx) ** 2 + (uy / NODE_RY) ** 2)
    return centre[0] + ux * t, centre[1] + uy * t


def cycle_svg(anomaly: DerivedAnomaly, number: int, step_href: StepHref) -> str:
    """The cycle as an SVG drawing: a node per transaction, an arrow per edge labelled with its
    kind and object, each arrow a link to the first step it rests on (its other steps are in the
    evidence list beside it), its evidence as the tooltip."""
    names = list(dict.fromkeys(n for e in anomaly.cycle for n in (e.source, e.target)))
    places = _places(names)
    seen: dict[tuple[str, str], int] = {}
    arrows = []
    for edge in anomaly.cycle:
        index = seen.get((edge.source, edge.target), 0)
        seen[(edge.source, edge.target)] = index + 1
        arrows.append(_arrow(edge, places, index, step_href))
    nodes = [
        f'<g class="txn"><ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{_rx(name):.1f}" ry="{NODE_RY}"/>'
        f'<text x="{x:.1f}" y="{y + 5:.1f}">{escape(name)}</text></g>'
        for name, (x, y) in places.items()
    ]
    label = f"{anomaly.name}: a cycle of {len(anomaly.cycle)} dependencies between {', '.join(names)}"
    return (f'<svg class="cycle" viewBox="0 0 {WIDTH} {_height(names)}" role="img" aria-label="{escape(label)}" '
            f'data-anomaly="{number}">' + "".join(arrows) + "".join(nodes) + "</svg>")


def _arrow(edge: Edge, places: dict[str, tuple[float, float]], index: int, step_href: StepHref) -> str:
    """One edge: a curve from its source to its target that bows to its left: outwards, as the
    transactions go clockwise round the cycle, and the two directions between the same two
    transactions never overlap. Its label stands just outside the curve's middle."""
    (x1, y1), (x2, y2) = places[edge.source], places[edge.target]
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    nx, ny = (y2 - y1) / length, -(x2 - x1) / length  # the left of the direction of travel (y grows down)
    bow = BOW * (1 + 2 * index)
    control = ((x1 + x2) / 2 + nx * bow, (y1 + y2) / 2 + ny * bow)
    start = _rim((x1, y1), _rx(edge.source), control)
    end = _rim((x2, y2), _rx(edge.target), control)
    mid = (0.25 * start[0] + 0.5 * control[0] + 0.25 * end[0], 0.25 * start[1] + 0.5 * control[1] + 0.25 * end[1])
    css = " ".join(["dep", edge.kind, *(["predicate"] if edge.predicate else []), *(["inferred"] if edge.inferred else [])])
    path = (f'<path d="M{start[0]:.1f},{start[1]:.1f} Q{control[0]:.1f},{control[1]:.1f} '
            f'{end[0]:.1f},{end[1]:.1f}"/>')
    anchor = "start" if nx > 0.3 else "end" if nx < -0.3 else "middle"
    x, y = mid[0] + nx * LABEL_GAP, mid[1] + ny * LABEL_GAP + 5 + (6 if ny > 0.3 else 0)
    text = (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
            f'{escape(f"{edge.kind} {edge.object}")}</text>')
    body = f"<title>{escape(edge.evidence)}</title>{path}{text}"
    href = next((h for h in map(step_href, edge.steps) if h), None)
    data = f'data-from="{escape(edge.source)}" data-to="{escape(edge.target)}" data-kind="{edge.kind}"'
    if href is None:
        return f'<g class="{css}" {data}>{body}</g>'
    return f'<a class="{css}" href="#{escape(href)}" {data}>{body}</a>'


CSS = """
.derived { margin: .4em 0 1.2em; }
.derived h4 { margin: .6em 0 .3em; }
.derived .anomaly { display: flex; flex-wrap: wrap; gap: .5em 1.5em; align-items: flex-start; margin-bottom: .8em; }
figure.cycle { margin: 0; flex: 0 0 480px; max-width: 100%; }
figure.cycle svg { width: 480px; max-width: 100%; height: auto; display: block; }
.derived .explanation { flex: 1 1 420px; }
.derived .explanation p { margin: .15em 0; }
.derived .title { font-weight: 700; color: var(--bad-ink); font-size: 1.05em; }
.derived p.no-cycle { color: var(--ok); font-weight: 600; }
.derived ul.caveats { color: var(--wait-ink); font-size: .9em; }
.derived p.meta { font-size: .85em; }
ol.evidence { font-size: .9em; padding-left: 1.4em; }
ol.evidence .edge-kind { font-weight: 700; }
.txn ellipse { fill: #fff; stroke: var(--ink); stroke-width: 2; }
.txn text { text-anchor: middle; font-weight: 700; }
.dep path { fill: none; stroke: var(--ink); stroke-width: 2.5; marker-end: url(#txl-arrow); }
.dep.rw path { stroke: var(--bad); }
.dep.inferred path { stroke-dasharray: 8 5; }
.dep.predicate path { stroke-dasharray: 2 5; stroke-linecap: round; }
.dep text { font-size: 14px; font-weight: 600; paint-order: stroke; stroke: #fff;
  stroke-width: 5px; stroke-linejoin: round; }
a.dep:hover path, a.dep:focus path { stroke-width: 4; }
"""

LEGEND = ("In a cycle: solid arrow, observed exactly (both writes in the trigger's log); dashed, inferred "
          "(a read matched to a version by its values); dotted, a predicate anti-dependency (a read by "
          "condition); rw arrows in red. An arrow links to its step.")
