"""`txnlab myths`: every claim in the catalogue, checked on the server, with the evidence."""

from __future__ import annotations

import json

import click
from tabulate import tabulate

from txnlab.checks import ClaimVerdict, check_claim
from txnlab.cli.options import color_option, format_option, server_options, terminal_width, use_color
from txnlab.errors import ExitCode
from txnlab.cli.run import lab_on_server
from txnlab.render.fit import fit_table
from txnlab.render.markdown import inline
from txnlab.scenario import Catalogue
from txnlab.timeline import JSON_SCHEMA_VERSION


@click.command("myths")
@format_option
@color_option
@server_options
def myths_command(output_format: str, color: bool | None, dsn: str | None, step_timeout: float) -> int:
    """Check the claims scenarios make about PostgreSQL (the 2017 blog's, mostly).

    Each claim's scenario runs at the level the claim is about; the verdict (true or
    false on this server) is derived from what happened, with the evidence and the
    driver versions its sessions ran through.
    """
    claimed = [s for s in Catalogue().scenarios.values() if s.claim is not None]
    verdicts: list[ClaimVerdict] = []
    with lab_on_server(dsn, step_timeout) as lab:
        for scenario in claimed:
            assert scenario.claim is not None
            verdicts.append(check_claim(scenario, lab.run(scenario, scenario.claim.level)))
        version = lab.server_version
    if output_format == "json":
        document = {"schema_version": JSON_SCHEMA_VERSION, "claims": [_as_dict(v) for v in verdicts]}
        click.echo(json.dumps(document, indent=2))
    elif output_format == "markdown":
        click.echo(_markdown(verdicts, version))
    else:
        click.echo(_table(verdicts, version, use_color(color), terminal_width()))
    return int(ExitCode.OK if all(v.as_expected for v in verdicts) else ExitCode.MISMATCH)


def _as_dict(verdict: ClaimVerdict) -> dict[str, object]:
    return {
        "scenario": verdict.scenario,
        "claim": verdict.says,
        "source": verdict.source,
        "level": verdict.level.value,
        "true": verdict.true,
        "matches_expectation": verdict.as_expected,
        "evidence": list(verdict.evidence),
        "checked_with": list(verdict.drivers),
    }


def _mark(verdict: ClaimVerdict) -> str:
    return ("TRUE" if verdict.true else "FALSE") + ("" if verdict.as_expected else " (unexpected)")


def _evidence(verdict: ClaimVerdict) -> str:
    return f"at {verdict.level.value}: " + "; ".join(verdict.evidence) + f" (txnlab run {verdict.scenario})"


def _headers(version: str) -> list[str]:
    return ["claim", "source", f"on PostgreSQL {version}", "checked with", "evidence"]


def _table(verdicts: list[ClaimVerdict], version: str, color: bool, width: int) -> str:
    """Claims, verdicts and evidence as a grid no wider than `width` display columns."""
    def mark(verdict: ClaimVerdict) -> str:
        return click.style(_mark(verdict), fg="green" if verdict.true else "red", bold=True) if color else _mark(verdict)

    rows = [[v.says, v.source or "", mark(v), ", ".join(v.drivers), _evidence(v)] for v in verdicts]
    return fit_table(rows, _headers(version), width=width, tablefmt="simple_grid")


def _markdown(verdicts: list[ClaimVerdict], version: str) -> str:
    """Claims as a Markdown table, every value escaped."""
    rows = [[inline(v.says), inline(v.source or ""), inline(_mark(v)), inline(", ".join(v.drivers)), inline(_evidence(v))]
            for v in verdicts]
    return tabulate(rows, headers=[inline(h) for h in _headers(version)], tablefmt="github")
