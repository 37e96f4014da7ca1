"""`txnlab drivers`, round 3: the HTML table fits a 1280 px projector, every header names the
version of each package it speaks of, the savepoint row probes the same behaviour on every
driver, and titles and cells carry no stray markup.

Cells are derived live on the real server; the width is measured in headless Chromium
when one is installed (else that one test skips and the CSS rules below still hold).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from txnlab.drivers_table import catalogue
from txnlab.drivers_table.bench import run_probes
from txnlab.drivers_table.model import DriversTable
from txnlab.drivers_table.render import DRIVERS_CSS, header, html_page, html_section, render_markdown, render_text

pytestmark = pytest.mark.database

PROJECTOR = (1280, 2000)  # px: the viewport the table must fit without a horizontal scrollbar
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.fixture(scope="module")
def table(server_dsn: str) -> DriversTable:
    return run_probes(server_dsn, catalogue.drivers(), catalogue.BEHAVIOURS, catalogue.probes())


def _overflow_px(page: str, tmp_path: Path) -> int:
    """How many px wider than the viewport `page` lays out in headless Chromium at PROJECTOR.
    The page's Content-Security-Policy forbids scripts: this copy drops it to measure."""
    measured = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace(
        "</body>", "<script>document.body.dataset.overflow = "
        "document.documentElement.scrollWidth - document.documentElement.clientWidth;</script></body>")
    path = tmp_path / "measured.html"
    path.write_text(measured, encoding="utf-8")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={PROJECTOR[0]},{PROJECTOR[1]}",
         "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    found = re.search(r'data-overflow="(-?\d+)"', done.stdout)
    assert found, done.stdout[-500:]
    return int(found.group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed to lay the page out")
def test_the_html_table_fits_a_1280px_projector_without_horizontal_scrolling(table: DriversTable, tmp_path) -> None:
    assert _overflow_px(html_page(table), tmp_path) == 0


def test_the_html_table_shares_the_page_width_and_wraps_long_sql(table: DriversTable) -> None:
    """The rules that keep it in the page's width whatever the cells hold: a fixed layout at
    100 %, line breaks inside long SQL, and anywhere as a last resort."""
    rules = " ".join(DRIVERS_CSS.split())
    assert "table.drivers { table-layout: fixed; width: 100%; }" in rules
    assert "table.drivers td { overflow-wrap: anywhere; }" in rules
    section = html_section(table)
    assert "<code>SELECT current_setting(&#x27;<wbr>transaction_isolation&#x27;)</code>" in section \
        or "<code>SELECT current_setting('<wbr>transaction_isolation')</code>" in section
    assert "VALUES (1)</code>" in section  # a short token stays whole


def test_sqlalchemy_headers_name_sqlalchemys_version_and_the_drivers(table: DriversTable, cli) -> None:  # type: ignore[no-untyped-def]
    sqlalchemy = importlib.metadata.version("SQLAlchemy")
    expected = {
        "sqlalchemy+psycopg2": f"SQLAlchemy {sqlalchemy} + psycopg2 {importlib.metadata.version('psycopg2-binary')}",
        "sqlalchemy+psycopg": f"SQLAlchemy {sqlalchemy} + psycopg 3 {importlib.metadata.version('psycopg')}",
        "sqlalchemy+asyncpg": f"SQLAlchemy {sqlalchemy} + asyncpg {importlib.metadata.version('asyncpg')}",
    }
    assert {d.key: header(d) for d in table.drivers if d.key in expected} == expected
    markdown, html = render_markdown(table), html_section(table)
    text = render_text(table, 80)
    for name in expected.values():
        assert name in markdown.splitlines()[0] and f"<th>{name}</th>" in html and f"  {name}: " in text
    code, out, _ = cli("drivers", "--format", "json")
    drivers = {d["key"]: d for d in json.loads(out)["drivers"]}
    assert code == 0 and drivers["sqlalchemy+psycopg"]["version"] == sqlalchemy
    assert drivers["sqlalchemy+psycopg"]["dbapi"]["version"] == importlib.metadata.version("psycopg")
    assert drivers["sqlalchemy+psycopg2"]["dbapi"]["package"] == "psycopg2-binary"
    assert drivers["psycopg2"]["dbapi"] is None


def test_the_savepoint_row_releases_the_savepoint_then_commits_on_every_driver(table: DriversTable) -> None:
    """Like for like: a savepoint, an INSERT inside it, the savepoint released, then COMMIT."""
    for driver in table.drivers:
        sent = [" ".join(s.split()).rstrip(";") for s in table.cell("savepoint", driver.key).sent]
        assert [s.split()[0] for s in sent] == ["BEGIN", "INSERT", "SAVEPOINT", "INSERT", "RELEASE", "COMMIT"], \
            (driver.key, sent)
        assert sent[4].split()[-1] == sent[2].split()[-1], (driver.key, sent)  # the one it made
        assert table.cell("savepoint", driver.key).happened.endswith("committed: 2"), driver.key


def test_html_cells_without_an_error_carry_no_empty_class(table: DriversTable) -> None:
    assert 'class=""' not in html_section(table)


def test_row_titles_show_code_as_code_in_markdown_and_html(table: DriversTable) -> None:
    assert "| `with` block on the connection " in render_markdown(table)
    assert "\\`" not in render_markdown(table)
    assert "<th><code>with</code> block on the connection</th>" in html_section(table)
