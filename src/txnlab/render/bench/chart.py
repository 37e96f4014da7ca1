"""`txnlab bench`'s chart: throughput per level, one line per client count, and beside it
each workload measure (lost_updates...) per level, the same way. pgbench's runs are dashed
lines of the same colour as txnlab's for that client count.

matplotlib is imported only when a chart is drawn (it takes about half a second), and drawn
through its Agg canvas, so no display is needed. The chart is sized for a projector: large
type, thick lines, a colour-blind-safe palette (Okabe and Ito's, as the HTML report).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from txnlab.bench.model import LoadResult
from txnlab.levels import Level
from txnlab.render.bench.report import BenchReport
from txnlab.render.bench.table import measure_names, meta_line

FORMATS = ("svg", "png")
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PANEL_INCHES = (7.0, 5.6)
STYLE = {"font.size": 15, "axes.titlesize": 17, "axes.labelsize": 15, "legend.fontsize": 13,
         "xtick.labelsize": 14, "ytick.labelsize": 14, "axes.grid": True, "grid.color": "#dde1e6",
         "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "path"}


MAX_COLUMNS = 2


def render_chart(report: BenchReport, fmt: str) -> bytes:
    """The chart as an SVG or PNG file's bytes (`fmt`: "svg" or "png"); the same results give
    the same bytes (no date in the file, ids salted with the scenario's name)."""
    if fmt not in FORMATS:
        raise ValueError(f"chart format {fmt!r} is not one of {FORMATS}")
    import matplotlib

    with matplotlib.rc_context({**STYLE, "svg.hashsalt": report.scenario.name}):
        figure = chart_figure(report)
        out = io.BytesIO()
        figure.savefig(out, format=fmt, dpi=150, metadata=_metadata(fmt))
    return out.getvalue()


def chart_figure(report: BenchReport) -> Any:
    """The chart as a matplotlib Figure on an Agg canvas: the throughput panel, then one panel
    per measure; each line labelled `N clients` (`· tool` with pgbench), x = the levels run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measures = measure_names(report.results)
    panels = 1 + len(measures)
    # At most two panels side by side, so that each keeps its size on a projector's 16:9 screen.
    columns = min(panels, MAX_COLUMNS)
    rows = -(-panels // columns)
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(rows, columns, squeeze=False).flatten()
    for unused in grid[panels:]:
        figure.delaxes(unused)
    axes = grid[:panels]
    levels = list(dict.fromkeys(r.level for r in report.results))
    server_counts = all(r.tps is not None for r in report.results)
    _panel(axes[0], report.results, levels, (lambda r: r.tps) if server_counts else (lambda r: r.tps_client))
    axes[0].set_title("Throughput")
    axes[0].set_ylabel("committed per second" + (" (server)" if server_counts else " (client's count)"))
    for ax, name in zip(axes[1:], measures):
        _panel(ax, report.results, levels, lambda r, name=name: r.measures.get(name))
        ax.set_title(name)
        ax.set_ylabel("on the data after the run")  # a measure counts what the run left behind
        if _whole(report.results, name):
            ax.yaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", frameon=False,
                  ncols=len(labels) if len(labels) <= 4 else (len(labels) + 1) // 2)  # pairs: tools side by side
    figure.suptitle(f"{report.scenario.name} · {meta_line(report)}", fontsize=17)
    return figure


def svg_element(report: BenchReport) -> str:
    """The chart as an `<svg>` element to put inline in HTML (its XML prolog and DOCTYPE dropped)."""
    svg = render_chart(report, "svg").decode("utf-8")
    return svg[svg.index("<svg"):]


def _panel(ax: Any, results: Sequence[LoadResult], levels: list[Level],
           value: Callable[[LoadResult], float | None]) -> None:
    """One line per client count (and tool) over the levels; a run without a value leaves a gap."""
    clients = sorted({r.clients for r in results})
    tools = list(dict.fromkeys(r.tool for r in results))
    for index, count in enumerate(clients):
        for tool in tools:
            runs = {r.level: r for r in results if r.clients == count and r.tool == tool}
            if not runs:
                continue
            ys = [_value(value, runs.get(level)) for level in levels]
            label = f"{count} client{'s' if count != 1 else ''}" + (f" · {tool}" if len(tools) > 1 else "")
            ax.plot(range(len(levels)), ys, label=label, color=PALETTE[index % len(PALETTE)],
                    marker=MARKERS[index % len(MARKERS)], markersize=9, linewidth=2.8,
                    linestyle="--" if tool == "pgbench" else "-")
    ax.set_xticks(range(len(levels)), [level.value.replace(" ", "\n") for level in levels])
    ax.yaxis.set_major_formatter(_tick)
    ax.set_xlim(-0.3, len(levels) - 0.7)
    top = max(ax.get_ylim()[1], 1.0)
    ax.set_ylim(-0.03 * top, top)  # zero just above the axis, so that a line at zero shows


def _tick(value: float, _position: int) -> str:
    """A y-axis tick with thousands separators (250,000 rather than 250000)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def _value(value: Callable[[LoadResult], float | None], result: LoadResult | None) -> float:
    figure = None if result is None else value(result)
    return float("nan") if figure is None else float(figure)


def _whole(results: Sequence[LoadResult], name: str) -> bool:
    return all(float(r.measures[name]).is_integer() for r in results if name in r.measures)


def _metadata(fmt: str) -> dict[str, Any]:
    """No date in the file (the same results give the same file), and txnlab as its creator."""
    return {"Date": None, "Creator": "txnlab"} if fmt == "svg" else {"Software": "txnlab"}
