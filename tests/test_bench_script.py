"""The workload script subset (bench/script.py): parsing, expressions with pgbench's integer
rules, and one clear line with the script's line number for what pgbench would refuse."""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

import pytest
from psycopg import pq

from txnlab.bench.clients import ClientResult, script_transaction
from txnlab.bench.script import ScriptError, SetCommand, SqlCommand, parse_script


@pytest.fixture(scope="module")
def pg(server_dsn: str) -> Iterator[pq.PGconn]:
    conn = pq.PGconn.connect(server_dsn.encode())
    assert conn.status == pq.ConnStatus.OK
    yield conn
    conn.finish()


def run(pg: pq.PGconn, text: str, seed: int = 1, client: int = 0) -> list[str]:
    """The row the server returns for the script's last statement, as text: the script runs
    through the generated transaction exactly as a bench client runs it."""
    compiled = script_transaction(pg, parse_script(text), client, Random(seed).random, ClientResult(client))
    res = compiled.transaction(compiled.draw())
    return [res.get_value(0, i).decode() for i in range(res.nfields)]  # type: ignore[union-attr]


def evaluate(pg: pq.PGconn, text: str, seed: int = 1) -> dict[str, int]:
    """The variables after running every \\set of `text`, read back from a SELECT of them."""
    names = [c.name for c in parse_script(text + "\nSELECT 1;").commands if isinstance(c, SetCommand)]
    row = run(pg, text + "\nSELECT " + ", ".join(f":{name}" for name in names) + ";\n", seed)
    return {name: int(value) for name, value in zip(names, row)}


def test_division_truncates_toward_zero_and_modulo_takes_the_dividends_sign_as_in_pgbench(pg: pq.PGconn) -> None:
    values = evaluate(pg, "\\set a -7 / 2\n\\set b 7 / -2\n\\set c -7 % 2\n\\set d 7 % -2\n\\set e 7 / 2")
    assert (values["a"], values["b"], values["c"], values["d"], values["e"]) == (-3, -3, -1, 1, 3)


def test_operators_follow_precedence_parentheses_and_unary_minus(pg: pq.PGconn) -> None:
    values = evaluate(pg, "\\set x 2 + 3 * 4\n\\set y (2 + 3) * 4\n\\set z -(:x - 20) * -1\n\\set w - - 5")
    assert (values["x"], values["y"], values["z"], values["w"]) == (14, 20, -6, 5)


def test_functions_abs_least_greatest(pg: pq.PGconn) -> None:
    values = evaluate(pg, "\\set a abs(-4)\n\\set b least(5, 2, 9)\n\\set c greatest(5, 2, 9)\n\\set d least(3)")
    assert (values["a"], values["b"], values["c"], values["d"]) == (4, 2, 9, 3)


def test_random_is_uniform_over_both_bounds_inclusive(pg: pq.PGconn) -> None:
    seen = {evaluate(pg, "\\set r random(1, 3)\n\\set s random(-2, :r)", seed)["s"] for seed in range(200)}
    assert seen == {-2, -1, 0, 1, 2, 3}


def test_a_statement_over_several_lines_with_variables_and_casts_is_one_command() -> None:
    script = parse_script(
        "\\set id random(1, 10)  \n-- a comment\n\nBEGIN;\nUPDATE t\n   SET v = v + 1   -- bump\n"
        "   WHERE id = :id::int;\nCOMMIT;\n"
    )
    update = script.statements[1]
    assert update.line == 5
    assert update.text == "UPDATE t\nSET v = v + 1\nWHERE id = :id::int"


def test_variables_are_replaced_in_the_text_sent_and_nothing_else_is_touched(pg: pq.PGconn) -> None:
    row = run(pg, "\\set a 3\nSELECT 10 % :a, '%s {x} \\n', :a::text || 'x', :client_id, :scale;", client=4)
    assert row == ["1", "%s {x} \\n", "3x", "4", "1"]


def test_gset_ends_a_select_and_its_columns_become_known_variables() -> None:
    script = parse_script("BEGIN;\nSELECT balance FROM a WHERE id = 1 \\gset p_\nUPDATE a SET balance = :p_balance;\nEND;\n")
    select = script.statements[1]
    assert isinstance(select, SqlCommand) and select.gset == "p_" and select.text == "SELECT balance FROM a WHERE id = 1"


def test_a_single_statement_is_a_whole_transaction() -> None:
    assert len(parse_script("UPDATE t SET v = v + 1;").statements) == 1


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("BEGIN;\n\\sleep 10 ms\nCOMMIT;", 2, "unsupported command \\sleep"),
        ("\\set a 1\n\\set b :c + 1\nSELECT 1;", 2, "unknown variable :c"),
        ("\\set a 1 +\nSELECT 1;", 1, "bad expression: ends too early"),
        ("\\set a 1.5\nSELECT 1;", 1, "only integers"),
        ("\\set a foo(1)\nSELECT 1;", 1, "unsupported function foo()"),
        ("\\set a random(1)\nSELECT 1;", 1, "random takes 2 arguments"),
        ("BEGIN;\nSELECT :nope;\nCOMMIT;", 2, "unknown variable :nope"),
        ("-- nothing\n\\set a 1\n", 1, "no SQL statement"),
        ("BEGIN;\nSELECT 1;\n", 2, "exactly one transaction"),
        ("SELECT 1;\nSELECT 2;\n", 1, "exactly one transaction"),
        ("BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nCOMMIT;", 1, "exactly one transaction"),
        ("BEGIN;\nSELECT 1\n", 2, "not ended by ';'"),
    ],
)
def test_what_pgbench_would_refuse_is_one_line_with_the_scripts_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(ScriptError) as raised:
        parse_script(text)
    assert raised.value.line == line
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_printed_python_source_is_the_transaction_that_runs(pg: pq.PGconn) -> None:
    text = ("\\set a random(1, 1000000)\n\\set b (:a * 7 - 3) % 10 + :client_id\nBEGIN;\n"
            "SELECT :a AS x, -:b AS y \\gset p_\nSELECT :p_x, :p_y, :b;\nCOMMIT;\n")
    script = parse_script(text)
    source = script.python_source(client_id=2)
    assert "# line 4: SELECT :a AS x, -:b AS y" in source
    assert "_res = _exec(f'SELECT {v_a} AS x, -{v_b} AS y'.encode())" in source
    assert "v_p_x = _row.get('p_x', v_p_x)" in source
    # The source a newcomer prints, executed as printed, sends what the compiled client sends.
    sent: list[bytes] = []

    def exec_(sql: bytes) -> pq.PGresult:
        sent.append(sql)
        return pg.exec_(sql)

    compiled = script_transaction(pg, script, 2, Random(5).random, ClientResult(2))
    namespace = dict(compiled.transaction.__globals__, _exec=exec_, _random=Random(5).random)
    exec(source, namespace)
    namespace["transaction"](namespace["draw"]())
    a = 1 + int(1000000 * Random(5).random())
    b = (a * 7 - 3) % 10 + 2
    assert sent[1:3] == [f"SELECT {a} AS x, -{b} AS y".encode(), f"SELECT {a}, {-b}, {b}".encode()]
    compiled_sent: list[bytes] = []
    compiled = script_transaction(pg, script, 2, Random(5).random, ClientResult(2))
    compiled.transaction.__globals__["_exec"] = lambda sql: compiled_sent.append(sql) or pg.exec_(sql)
    compiled.transaction(compiled.draw())
    assert compiled_sent == sent


def test_a_runtime_error_points_at_its_script_line_and_rolls_back(pg: pq.PGconn) -> None:
    result = ClientResult(0)
    compiled = script_transaction(
        pg, parse_script("BEGIN;\nSELECT 0 AS zero \\gset\n\\set q 1 / :zero\nSELECT :q;\nCOMMIT;\n"),
        0, Random(1).random, result,
    )
    with pytest.raises(ZeroDivisionError):
        compiled.transaction(compiled.draw())
    assert result.stopped_line == 3
    assert pg.transaction_status == pq.TransactionStatus.IDLE
    unknown = script_transaction(pg, parse_script("BEGIN;\nSELECT 1 AS one \\gset\nSELECT :two;\nCOMMIT;\n"),
                                 0, Random(1).random, result)
    with pytest.raises(ScriptError, match="^line 3: unknown variable :two"):
        unknown.transaction(unknown.draw())
    assert result.stopped_line == 3 and pg.transaction_status == pq.TransactionStatus.IDLE


@pytest.mark.parametrize("sql", ["BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;",
                                 "BEGIN;\nSET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;",
                                 "START TRANSACTION isolation level repeatable read;\nSELECT 1;\nCOMMIT;",
                                 "SET default_transaction_isolation = 'serializable';",
                                 "BEGIN;\nSET LOCAL transaction_isolation = 'serializable';\nSELECT 1;\nCOMMIT;"])
def test_a_script_that_chooses_its_own_isolation_level_is_refused_at_that_line(sql: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(sql)
    assert "sets an isolation level" in caught.value.problem
    assert caught.value.line == next(i for i, line in enumerate(sql.splitlines(), 1)
                                     if "ISOLATION" in line.upper())


def test_isolation_level_inside_a_string_is_text_not_a_setting() -> None:
    parse_script("BEGIN;\nSELECT 'isolation level';\nCOMMIT;")
