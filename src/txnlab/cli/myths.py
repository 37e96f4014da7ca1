"""`txnlab myths`: every claim in the catalogue, checked on the server, with the evidence."""

from __future__ import annotations

import json

import click
from tabulate import tabulate

from txnlab.checks import ClaimVerdict, check_claim
from txnlab.cli.options import color_option, format_option, server_options, use_color
from txnlab.errors import ExitCode
from txnlab.cli.run import lab_on_server
from txnlab.scenario import Catalogue


@click.command("myths")
@format_option
@color_option
@server_options
def myths_command(output_format: str, color: bool | None, dsn: str | None, step_timeout: float) -> int:
    """Check the claims scenarios make about PostgreSQL (the 2017 blog's, mostly).

    Each claim's scenario runs at the level the claim is about; the verdict (true or
    false on this server) is derived from what happened, with the evidence.
    """
    claimed = [s for s in Catalogue().scenarios.values() if s.claim is not None]
    verdicts: list[ClaimVerdict] = []
    with lab_on_server(dsn, step_timeout) as lab:
        for scenario in claimed:
            assert scenario.claim is not None
            verdicts.append(check_claim(scenario, lab.run(scenario, scenario.claim.level)))
        version = lab.server_version
    if output_format == "json":
        click.echo(json.dumps([_as_dict(v) for v in verdicts], indent=2))
    else:
        click.echo(_table(verdicts, version, output_format, use_color(color) and output_format == "text"))
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
    }


def _table(verdicts: list[ClaimVerdict], version: str, output_format: str, color: bool) -> str:
    def mark(verdict: ClaimVerdict) -> str:
        text = "TRUE" if verdict.true else "FALSE"
        if not verdict.as_expected:
            text += " (unexpected)"
        return click.style(text, fg="green" if verdict.true else "red", bold=True) if color else text

    rows = [
        [v.says, v.source or "", mark(v), f"at {v.level.value}: " + "; ".join(v.evidence) + f" (txnlab run {v.scenario})"]
        for v in verdicts
    ]
    headers = ["claim", "source", f"on PostgreSQL {version}", "evidence"]
    if output_format == "markdown":
        return tabulate(rows, headers=headers, tablefmt="github")
    return tabulate(rows, headers=headers, tablefmt="simple_grid", maxcolwidths=[40, 20, None, 50])
