"""The workload script subset (bench/script.py): parsing, expressions with pgbench's integer
rules, and one clear line with the script's line number for what pgbench would refuse."""

from __future__ import annotations

from random import Random

import pytest

from txnlab.bench.script import ScriptError, SetCommand, SqlCommand, parse_script


def evaluate(text: str, seed: int = 1) -> dict[str, object]:
    """The variables after running every \\set of `text` (a statement is appended)."""
    script = parse_script(text + "\nSELECT 1;\n")
    variables: dict[str, object] = {"client_id": 0, "scale": 1}
    rng = Random(seed)
    for command in script.commands:
        if isinstance(command, SetCommand):
            variables[command.name] = command.evaluate(variables, rng)
    return variables


def test_division_truncates_toward_zero_and_modulo_takes_the_dividends_sign_as_in_pgbench() -> None:
    values = evaluate("\\set a -7 / 2\n\\set b 7 / -2\n\\set c -7 % 2\n\\set d 7 % -2\n\\set e 7 / 2")
    assert (values["a"], values["b"], values["c"], values["d"], values["e"]) == (-3, -3, -1, 1, 3)


def test_operators_follow_precedence_parentheses_and_unary_minus() -> None:
    values = evaluate("\\set x 2 + 3 * 4\n\\set y (2 + 3) * 4\n\\set z -(:x - 20) * -1\n\\set w - - 5")
    assert (values["x"], values["y"], values["z"], values["w"]) == (14, 20, -6, 5)


def test_functions_abs_least_greatest() -> None:
    values = evaluate("\\set a abs(-4)\n\\set b least(5, 2, 9)\n\\set c greatest(5, 2, 9)\n\\set d least(3)")
    assert (values["a"], values["b"], values["c"], values["d"]) == (4, 2, 9, 3)


def test_random_is_uniform_over_both_bounds_inclusive() -> None:
    seen = {evaluate("\\set r random(1, 3)", seed)["r"] for seed in range(200)}
    assert seen == {1, 2, 3}


def test_a_statement_over_several_lines_with_variables_and_casts_is_one_command() -> None:
    script = parse_script(
        "\\set id random(1, 10)  \n-- a comment\n\nBEGIN;\nUPDATE t\n   SET v = v + 1   -- bump\n"
        "   WHERE id = :id::int;\nCOMMIT;\n"
    )
    update = script.statements[1]
    assert update.line == 5
    assert update.text == "UPDATE t\nSET v = v + 1\nWHERE id = :id::int"
    assert update.render({"id": 7}) == "UPDATE t\nSET v = v + 1\nWHERE id = 7::int"
    modulo = parse_script("\\set a 3\nSELECT 10 % :a, '%s';").statements[0]
    assert modulo.render({"a": 3}) == "SELECT 10 % 3, '%s'"


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
