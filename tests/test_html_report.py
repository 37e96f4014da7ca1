"""The HTML handout: a page made from real runs on the server, checked as HTML (lanes, waits
and their links, error marks, escaping, nothing loaded from anywhere), then opened in
headless Chromium, which must render it without a console message."""

from __future__ import annotations

import dataclasses
import html.parser
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from scenario_text import scenario_from_yaml
from txnlab.errors import ServerError
from txnlab.levels import Level
from txnlab.render.describe import verdict_line
from txnlab.render.html import render_report
from txnlab.render.report import RunReport
from txnlab.runner.lab import Lab
from txnlab.scenario import Catalogue
from txnlab.timeline import Event, Outcome, Timeline
from txnlab.workflow import run_cell

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts"
TITLE = "Isolation <workshop> & friends"
RUNS = [*(("atm-lost-update", level) for level in Level), ("deadlock", Level.READ_COMMITTED)]
RUNS.append(("read-only-anomaly", Level.SERIALIZABLE))  # three sessions, and `<` in its SQL

# A step that waits until txnlab's step timeout cancels it, and one never sent: it needs
# a value that an earlier read did not return.
ODD_ENDS = """
name: odd-ends
title: A step that never finishes, and one never sent
summary: Session a holds a row lock; b waits for it until the step timeout.
sessions: {a: {}, b: {}, c: {}}
setup: CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0);
steps:
  - {name: a_lock, session: a, sql: UPDATE t SET v = 1 WHERE id = 1}
  - {name: c_read, session: c, sql: SELECT v FROM t WHERE id = 2}
  - {name: c_use, session: c, sql: "SELECT ${c_read.v} + 1"}
  - {name: b_wait, session: b, sql: UPDATE t SET v = 2 WHERE id = 1}
  - {name: b_commit, session: b, sql: COMMIT}
expect: {all: {}}
"""


# -- reading the page back ------------------------------------------------------------------


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    ancestors: tuple[tuple[str, dict[str, str]], ...]
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def inside(self, tag: str, css: str | None = None) -> bool:
        return any(t == tag and (css is None or css in a.get("class", "").split()) for t, a in self.ancestors)

    @property
    def run(self) -> str | None:
        """The id of the run (article) the element belongs to."""
        return next((a.get("id") for t, a in self.ancestors if t == "article"), None)


class Page(html.parser.HTMLParser):
    """Every element with its attributes, its ancestors and its own text; and all text."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.texts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, tuple((e.tag, e.attrs) for e in self.open))
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}, tuple((e.tag, e.attrs) for e in self.open)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index].tag == tag:
                del self.open[index:]
                return

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for element in self.open:
            element.text += data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def find(self, tag: str, css: str | None = None, run: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (css is None or css in e.classes)
            and (run is None or e.run == run)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


def run_id(name: str, level: Level) -> str:
    return f"{name}-{level.value.replace(' ', '-')}"


def rect(bar: Element, page: Page) -> tuple[float, float]:
    """The x extent of a bar's rectangle."""
    shape = next(e for e in page.elements if e.tag == "rect" and e.ancestors and e.ancestors[-1][1] is bar.attrs)
    return float(shape.attrs["x"]), float(shape.attrs["x"]) + float(shape.attrs["width"])


def cells(page: Page, row: Element) -> list[str]:
    return [" ".join(td.text.split()) for td in page.find("td") if td.ancestors[-1][1] is row.attrs]


def releaser(timeline: Timeline, done: Event, blocker: str) -> Event:
    """The event recorded just before the completion in the blocker's session."""
    return [e for e in timeline.events if e.session == blocker and e.seq < done.seq][-1]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(lab: Lab, catalogue: Catalogue) -> dict[str, RunReport]:
    made = {}
    for name, level in RUNS:
        try:
            made[run_id(name, level)] = run_cell(lab, catalogue.scenarios[name], level)
        except ServerError:  # e.g. a role that may not SET deadlock_timeout on this server
            continue
    return made


@pytest.fixture(scope="module")
def page_text(reports: dict[str, RunReport]) -> str:
    return render_report(list(reports.values()), TITLE)


@pytest.fixture(scope="module")
def page(page_text: str) -> Page:
    return Page(page_text)


def report(reports: dict[str, RunReport], name: str, level: Level) -> RunReport:
    if run_id(name, level) not in reports:
        pytest.skip(f"{name} could not run at {level.value} on this server")
    return reports[run_id(name, level)]


# -- the page's content ---------------------------------------------------------------------


def test_each_run_has_one_lane_per_session_and_a_bar_per_event(page: Page, reports: dict[str, RunReport]) -> None:
    assert len(page.find("article", css="run")) == len(reports)
    for rid, run in reports.items():
        lanes = [e.attrs["data-session"] for e in page.find("g", css="lane", run=rid)]
        assert lanes == list(run.timeline.sessions)
        bars = page.find("g", css="bar", run=rid)
        assert [int(b.attrs["data-seq"]) for b in bars] == [e.seq for e in run.timeline.events]
        for bar, event in zip(bars, run.timeline.events):
            assert bar.attrs["data-session"] == event.session and bar.attrs["data-step"] == event.step
        by_lane: dict[str, list[tuple[float, float]]] = {}
        for bar in bars:
            by_lane.setdefault(bar.attrs["data-session"], []).append(rect(bar, page))
        for extents in by_lane.values():
            extents.sort()
            assert all(a[1] <= b[0] for a, b in zip(extents, extents[1:])), f"{rid}: bars overlap in a lane"


def test_the_waiting_update_is_a_span_linked_to_the_commit_that_released_it(
    page: Page, reports: dict[str, RunReport]
) -> None:
    run = report(reports, "atm-lost-update", Level.READ_COMMITTED)
    rid = run_id("atm-lost-update", Level.READ_COMMITTED)
    events = run.timeline.events
    done = next(e for e in events if e.after_wait)
    commit = releaser(run.timeline, done, done.blocked_by[0])
    assert (done.step, commit.step) == ("atm2_write", "atm1_commit")

    [wait] = page.find("g", css="wait", run=rid)
    assert wait.attrs["data-step"] == "atm2_write" and wait.attrs["data-until"] == str(done.seq)
    assert "waits for atm1" in wait.text
    [link] = page.find("g", css="link", run=rid)
    assert link.classes == ["link", "released"]
    assert (link.attrs["data-from"], link.attrs["data-to"]) == (str(commit.seq), str(done.seq))

    # the span starts before the COMMIT is sent and its completion ends after that (not
    # always after the COMMIT's own result: each session's thread clocks its own result);
    # the arrow runs from the COMMIT's bar to the completion's
    commit_bar = rect(page.find("g", css="bar", run=rid, data_seq=str(commit.seq))[0], page)
    done_bar = rect(page.find("g", css="bar", run=rid, data_seq=str(done.seq))[0], page)
    wait_x = rect(wait, page)
    assert wait_x[0] < commit_bar[0] < done_bar[1] and wait_x[1] <= done_bar[0] + 1
    [line] = [e for e in page.find("line", run=rid) if e.inside("g", "link")]
    assert commit_bar[0] <= float(line.attrs["x1"]) <= commit_bar[1]
    assert done_bar[0] <= float(line.attrs["x2"]) <= done_bar[1]


def test_the_deadlock_victim_gave_up_and_its_abort_released_the_other_transfer(
    page: Page, reports: dict[str, RunReport]
) -> None:
    run = report(reports, "deadlock", Level.READ_COMMITTED)
    rid = run_id("deadlock", Level.READ_COMMITTED)
    assert len(page.find("g", css="wait", run=rid)) == 2
    links = {link.attrs["data-to"]: link for link in page.find("g", css="link", run=rid)}
    for done in (e for e in run.timeline.events if e.after_wait):
        source = releaser(run.timeline, done, done.blocked_by[0])
        link = links[str(done.seq)]
        assert link.attrs["data-from"] == str(source.seq)
        if done.error is not None:  # the victim: transfer1 was still waiting, holding row 1
            assert (done.error.sqlstate, source.outcome, link.classes[1]) == ("40P01", Outcome.BLOCKED, "held")
        else:  # the victim's abort released row 2
            assert (source.step, link.classes[1]) == ("t2_credit_alice", "released")


@pytest.mark.parametrize(
    ("name", "level", "sqlstate", "message"),
    [
        ("atm-lost-update", Level.REPEATABLE_READ, "40001", "could not serialize access due to concurrent update"),
        ("atm-lost-update", Level.SERIALIZABLE, "40001", "could not serialize access due to concurrent update"),
        ("deadlock", Level.READ_COMMITTED, "40P01", "deadlock detected"),
    ],
)
def test_errors_are_marked_with_their_sqlstate_and_message(
    page: Page, reports: dict[str, RunReport], name: str, level: Level, sqlstate: str, message: str
) -> None:
    report(reports, name, level)
    rid = run_id(name, level)
    [bar] = page.find("g", css="error", run=rid, data_sqlstate=sqlstate)
    assert "✗" in bar.text and message in bar.text  # the mark, and the message in the tooltip
    assert sqlstate in [e.text for e in page.find("text", css="callout", run=rid)]
    [row] = [r for r in page.find("tr", css="error", run=rid) if f"ERROR {sqlstate}" in r.text]
    assert f"✗ completed after the wait: ERROR {sqlstate} {message}" in " ".join(row.text.split())


def test_the_verdict_table_line_and_note_and_the_narrated_step_list(page: Page, reports: dict[str, RunReport]) -> None:
    run = report(reports, "atm-lost-update", Level.READ_COMMITTED)
    rid = run_id("atm-lost-update", Level.READ_COMMITTED)
    [verdict] = page.find("div", css="verdict", run=rid)
    assert verdict.classes == ["verdict", "ok"]
    [headline] = page.find("p", css="headline", run=rid)
    assert headline.text == "✓ " + verdict_line(dataclasses.replace(run.verdict, note=None))
    assert headline.text.startswith("✓ read committed: as expected — lost update happens")
    [note] = page.find("p", css="note", run=rid)
    assert note.text == run.verdict.note
    rows = [cells(page, tr) for tr in page.find("tr", run=rid) if tr.inside("div", "verdict")]
    expected = [[f.subject, f.expected, f.observed, "✓ match"] for f in run.verdict.findings]
    assert rows[1:] == expected  # under the header row
    assert ["anomaly (lost update)", "happens", "happens", "✓ match"] in expected
    narrations = [td.text for td in page.find("td", css="narration", run=rid)]
    assert narrations[0] == run.scenario.steps["atm1_read"].narration
    assert sum(1 for n in narrations if n) == sum(1 for s in run.scenario.steps.values() if s.narration)


def test_sql_and_titles_are_escaped(page_text: str, page: Page, reports: dict[str, RunReport]) -> None:
    run = report(reports, "read-only-anomaly", Level.SERIALIZABLE)
    [write] = [e for e in run.timeline.events if e.step == "withdraw_write"]
    assert " < 10 THEN" in write.sql
    assert " &lt; 10 THEN" in page_text and " < 10 THEN" not in page_text
    sql = [e.text for e in page.find("pre", css="sql", run=run_id("read-only-anomaly", Level.SERIALIZABLE))]
    assert any(" < 10 THEN" in text for text in sql)
    assert "<workshop>" not in page_text and "Isolation &lt;workshop&gt; &amp; friends" in page_text
    assert page.find("title")[0].text == TITLE and page.find("h1")[0].text == TITLE
    assert not page.find("workshop")


def test_the_page_loads_nothing_and_links_only_its_references(page_text: str, page: Page) -> None:
    loaders = {"script", "link", "img", "iframe", "frame", "object", "embed", "audio", "video", "source", "base"}
    assert not [e.tag for e in page.elements if e.tag in loaders | {"form"}]
    for element in page.elements:
        for name in ("src", "srcset", "poster", "data", "action", "formaction", "background", "xlink:href"):
            assert name not in element.attrs, f"<{element.tag} {name}=...>"
        href = element.attrs.get("href")
        if href is not None and not href.startswith("#"):
            assert element.tag == "a" and element.inside("ul", "references"), href
            assert re.match(r"https?://", href)
    assert "@import" not in page_text
    assert set(re.findall(r"url\(([^)]*)\)", page_text)) <= {"#txl-hatch", "#txl-arrow"}
    assert re.search(r"http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';", page_text)
    references = [a.attrs["href"] for a in page.find("a") if a.inside("ul", "references")]
    assert "https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED" in references


def test_a_timeout_and_a_skipped_step_are_marked(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "step_timeout", 0.3)
    scenario = scenario_from_yaml(ODD_ENDS)
    run = run_cell(lab, scenario, Level.READ_COMMITTED)
    page = Page(render_report([run], "odd ends"))
    [skipped] = page.find("g", css="skipped")
    assert skipped.attrs["data-step"] == "c_use" and "∅" in skipped.text
    [timeout] = page.find("g", css="timeout")
    assert timeout.attrs["data-step"] == "b_wait" and "⚠" in timeout.text
    assert {"skipped", "timeout"} <= {e.text for e in page.find("text", css="callout")}
    [link] = page.find("g", css="link")
    assert link.classes == ["link", "held"] and link.attrs["data-from"] == "1"  # a_lock: the lock b waited for
    [verdict] = page.find("div", css="verdict")
    assert verdict.classes == ["verdict", "bad"]
    assert "the run ended early: step b_wait (b) did not finish within 0.3 s" in page.text
    assert page.find("td", css="bad")[0].text == "timed out ⚠"  # its outcome is unknown, not "ran ✗"


# -- in a real browser ----------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium is not installed (/usr/bin/chromium, Debian package chromium)"
)
CONSOLE = re.compile(r":CONSOLE[(:\]]|Uncaught")


def chromium(url: str, screenshot: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    """Render a page in headless Chromium with nothing to fetch from the network; its log on stderr."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        f"--screenshot={screenshot}", "--window-size=1400,2000", url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """What the page said on the console: Chromium logs it as `...:INFO:CONSOLE:12] "message", source: ...`."""
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "chromium-profile"
    directory.mkdir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@needs_chromium
def test_the_page_renders_in_chromium_without_console_messages(page_text: str, tmp_path: Path, profile: Path) -> None:
    html_file, png = tmp_path / "handout.html", tmp_path / "handout.png"
    html_file.write_text(page_text, encoding="utf-8")
    result = chromium(html_file.as_uri(), png, profile)
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    assert png_size(png) == (1400, 2000) and png.stat().st_size > 50_000  # a page, not a blank screen
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(png, ARTIFACTS / "html-report.png")
    shutil.copyfile(html_file, ARTIFACTS / "html-report.html")


BROKEN_SCRIPT = "<!DOCTYPE html><title>broken</title><p>hi</p><script>undefinedFunction();</script>"


@needs_chromium
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("a script error", "Uncaught ReferenceError: undefinedFunction is not defined"),
        ("an image from the network in the handout", "violates the following Content Security Policy"),
    ],
)
def test_the_console_check_catches_errors_and_blocked_loads(
    page_text: str, tmp_path: Path, profile: Path, case: str, expected: str
) -> None:
    if case == "a script error":
        broken = BROKEN_SCRIPT
    else:
        broken = page_text.replace("</body>", '<img src="https://example.invalid/logo.png" alt=""></body>')
    html_file = tmp_path / "broken.html"
    html_file.write_text(broken, encoding="utf-8")
    result = chromium(html_file.as_uri(), tmp_path / "broken.png", profile)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = console_messages(result.stderr)
    assert messages and expected in "\n".join(messages), result.stderr[-2000:]
