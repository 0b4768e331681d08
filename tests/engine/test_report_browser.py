"""The person's report in a real browser: headless Chromium (tests/chromium.py) opens the
index.html of a package the real exporter wrote from a SQLite database and a file source,
for a person with 100,000 rows in one table and hostile text in others (names, values, a file
name). With JavaScript off the page is drawn (a screenshot that is not blank) and prints (a
PDF); with JavaScript on, nothing the data holds runs (no dialog, no console message, no error)
and the page asks for nothing but itself; its text has AA contrast, its headings do not skip a
level, every table has a caption and every header cell a scope. The page's size is bounded by
the rows it shows: the 100,000-row person's is the size of one's with only those rows. The
packages verify. The screenshot is kept as test-artifacts/report.png.
"""

from __future__ import annotations

import io
import itertools
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from chromium import ARTIFACTS, chromium
from datapolicy.config import (
    ColumnConfig,
    Config,
    DirectoryConfig,
    FileSourceConfig,
    PurposeConfig,
    ReportConfig,
    SourcesConfig,
    SqlSourceConfig,
    TableConfig,
)
from datapolicy.engine import build_context
from datapolicy.engine.exporter import Progress, export
from datapolicy.engine.report import REPORT_ROWS
from datapolicy.engine.verify import verify_package
from datapolicy.engine.worker import ExportContext
from datapolicy.model import Operation, OperationStatus

PERSON = "p-1"
EVENTS = 100_000
SMALL = "p-2"  # with only as many events as the report shows
HOSTILE = [
    "<script>alert('value')</script>",
    "\"'><img src=x onerror=\"console.log('img')\">",
    "</style><script>confirm('style')</script>",
    "</td></tr></table><svg onload=alert('svg')></svg>",
    "{{ 7*7 }} {% if true %}jinja{% endif %}",
    '<iframe src="https://example.com/"></iframe>',
    '<link rel=stylesheet href="https://example.com/x.css">',
    "\u202eevil\u202c and \x1b[31m",
]
RIGHT_TO_LEFT = "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd"  # Hebrew, no control characters
# A wide table: words no column may break inside, and one long token that must wrap
WORDS = ("Springfield", "Lovelace", "Analytical", "Difference", "Engine", "Babbage", "notice")
WIDE_COLUMNS = [f"preference_{i}" for i in range(14)]
TOKEN = "9f86d081884c7d65" * 20  # a 320-character hash: may wrap anywhere
HOSTILE_NAME = "<script>alert('name')</script>"
HOSTILE_FILE = "<img src=x onerror=alert('file')>.txt"
MAX_REPORT_BYTES = 64_000  # the page for this person (about 28 kB): REPORT_ROWS rows a table
# What the large person's page may have over the small one's: longer counts, sizes and ids
MAX_REPORT_GROWTH = 2_000
MIN_PDF_BYTES = 20_000  # a printed page of text is larger than this; an empty PDF is ~1 kB
MIN_VARIANCE = 100.0  # grey-level variance of a screenshot of text (a blank page has 0)
MIN_CONTRAST = 4.5  # WCAG 2 AA, normal text
# The lowest contrast of any text on the page: each element's colour against the first opaque
# background of it or its ancestors (WCAG 2 relative luminance).
LOWEST_CONTRAST = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const channel = (c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const colour = rgb(getComputedStyle(e).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour;
    }
    return [255, 255, 255];
  };
  let lowest = 21;
  for (const element of document.body.querySelectorAll("*")) {
    const own = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !element.getClientRects().length) continue;
    const a = luminance(rgb(getComputedStyle(element).color));
    const b = luminance(background(element));
    lowest = Math.min(lowest, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
  }
  return lowest;
}"""
# Heading levels in order; tables without a caption; header cells without a scope.
STRUCTURE = """() => ({
  headings: [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")].map((h) => +h.tagName[1]),
  uncaptioned: [...document.querySelectorAll("table")].filter((t) => !t.caption).length,
  unscoped: [...document.querySelectorAll("th")].filter((th) => !th.scope).length,
  lang: document.documentElement.lang,
})"""

# Whether the cell holding the text (the argument) draws its first letter right of its last.
RIGHT_TO_LEFT_DRAWN = """(text) => {
  const cell = [...document.querySelectorAll("td")].find((td) => td.textContent === text);
  const letter = (i) => {
    const range = document.createRange();
    range.setStart(cell.firstChild, i);
    range.setEnd(cell.firstChild, i + 1);
    return range.getBoundingClientRect().left;
  };
  return letter(0) > letter(text.length - 1);
}"""

# Words (runs of letters and digits shorter than the token) that a record cell draws on more
# than one line; each record table as [its width, its scroll box's visible width, that box's
# overflow-x]; the page's sideways overflow.
LAYOUT = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll("table.records td")) {
    const node = cell.firstChild;
    if (!node || node.nodeType !== 3) continue;
    for (const word of node.textContent.matchAll(/[\\p{L}\\p{N}]+/gu)) {
      if (word[0].length >= 100) continue;
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (lines.size > 1) broken.push(word[0]);
    }
  }
  const tables = [...document.querySelectorAll("table.records")].map((table) => {
    const box = table.parentElement;
    return [table.getBoundingClientRect().width, box.clientWidth, getComputedStyle(box).overflowX];
  });
  const overflow = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  return { broken, tables, overflow };
}"""
PHONE, A4_PRINTABLE = 390, 718  # CSS pixels: a phone's width; A4 less Chromium's print margins


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ExportContext]]:
    """The data of both people, and what exports read."""
    root = tmp_path_factory.mktemp("report")
    context = build_context(_people(root), root)
    yield root, context
    for source in context.sources:
        source.close()


@pytest.fixture(scope="module")
def unpacked(exported: tuple[Path, ExportContext]) -> Path:
    """The large person's package, exported by the real exporter, verified, and unpacked."""
    began = time.monotonic()
    unpacked, manifest = _export(*exported, PERSON)
    print(f"export of {EVENTS:,} rows with the report: {time.monotonic() - began:.2f} s")
    records = EVENTS + len(HOSTILE) + 3  # the person's row, RIGHT_TO_LEFT, preferences
    assert sum(source["records"] for source in manifest["sources"]) == records
    return unpacked


def _export(root: Path, context: ExportContext, person: str) -> tuple[Path, dict[str, Any]]:
    now = datetime.now(UTC)
    operation = Operation(f"op-{person}", person, OperationStatus.RUNNING, 0, None, now, None, 1)
    package = root / f"{person}.zip"
    with package.open("wb") as stream:
        manifest = export(
            operation,
            context.user(person),
            context.sources,
            stream,
            Progress(),
            lambda: now,
            context.labels,
        )
    assert verify_package(package) == []
    zipfile.ZipFile(package).extractall(root / person)
    return root / person, manifest


def _people(root: Path) -> Config:
    """PERSON with EVENTS events, SMALL with REPORT_ROWS: each with the same hostile notes, name
    and file."""
    database = root / "shop.sqlite3"
    with sqlite3.connect(database) as db:
        db.executescript(
            """
            CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT, email TEXT);
            CREATE TABLE events (id INTEGER PRIMARY KEY, person_id TEXT, happened_at TEXT,
                                 what TEXT);
            CREATE TABLE notes (id INTEGER PRIMARY KEY, person_id TEXT, body TEXT);
            """
        )
        wide = ", ".join(f"{column} TEXT" for column in WIDE_COLUMNS)
        db.execute(f"CREATE TABLE preferences (person_id TEXT, {wide}, token TEXT)")
        for person, events in ((SMALL, REPORT_ROWS), (PERSON, EVENTS)):
            db.execute("INSERT INTO people VALUES (?, ?, ?)", (person, HOSTILE_NAME, HOSTILE[1]))
            db.executemany(
                "INSERT INTO events (person_id, happened_at, what) VALUES (?, ?, ?)",
                ((person, f"2025-01-01T00:00:{i % 60:02d}", f"event {i}") for i in range(events)),
            )
            db.executemany(
                "INSERT INTO notes (person_id, body) VALUES (?, ?)",
                ((person, text) for text in (*HOSTILE, RIGHT_TO_LEFT)),
            )
            words = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3)) for i in range(14)]
            marks = ", ".join("?" * (len(WIDE_COLUMNS) + 2))
            db.execute(f"INSERT INTO preferences VALUES ({marks})", (person, *words, TOKEN))
            uploads = root / "uploads" / person
            uploads.mkdir(parents=True)
            (uploads / HOSTILE_FILE).write_text("a file")
    url = f"sqlite:///{database}"
    tables = (
        TableConfig(
            table="people",
            user_key="id",
            columns={"name": ColumnConfig(categories=("user.name",))},
        ),
        TableConfig(table="events", user_key="person_id", categories=("user.behavior",)),
        TableConfig(table="notes", user_key="person_id", purpose="support"),
        TableConfig(table="preferences", user_key="person_id"),
    )
    return Config(
        directory=DirectoryConfig(
            url=url, table="people", display_name_column="name", mail_column="email"
        ),
        sources=SourcesConfig(
            sql=(SqlSourceConfig(name="shop", url=url, tables=tables),),
            files=(FileSourceConfig(name="uploads", path=str(root / "uploads" / "{userId}")),),
        ),
        report=ReportConfig(
            controller="Example Shop Ltd",
            purposes=(PurposeConfig(name="support", description=HOSTILE[2]),),
            recipients=(HOSTILE[3],),
        ),
    )


def _watched(context: Any, index: Path) -> tuple[Any, list[str]]:
    """A page of `context`, with every request other than the report itself aborted, and what
    it did that a page of data must not: dialogs, console messages, errors, requests."""
    events: list[str] = []
    own = index.as_uri()

    def route(handled: Any) -> None:
        if handled.request.url == own:
            handled.continue_()
        else:
            events.append(f"request {handled.request.url}")
            handled.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("dialog", lambda dialog: (events.append(f"dialog {dialog.message}"), dialog.dismiss()))
    page.on("console", lambda message: events.append(f"console {message.text}"))
    page.on("pageerror", lambda error: events.append(f"error {error}"))
    page.goto(own)
    page.wait_for_load_state("load")
    return page, events


def test_the_report_of_a_large_person_is_as_large_as_its_first_rows(
    exported: tuple[Path, ExportContext], unpacked: Path
):
    large = (unpacked / "index.html").stat().st_size
    small_package, _ = _export(*exported, SMALL)
    small = (small_package / "index.html").stat().st_size
    assert large < MAX_REPORT_BYTES
    assert large - small < MAX_REPORT_GROWTH


def test_the_report_is_drawn_and_prints_without_javascript(unpacked: Path, tmp_path: Path):
    index = unpacked / "index.html"
    with chromium(
        tmp_path / "profile", java_script_enabled=False, viewport={"width": 1280, "height": 900}
    ) as context:
        page, events = _watched(context, index)
        shot = page.screenshot(full_page=True)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "report.png").write_bytes(shot)
        image = Image.open(io.BytesIO(shot)).convert("L")
        assert image.height > 2000  # the whole page, not a first screen
        assert ImageStat.Stat(image).var[0] > MIN_VARIANCE
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF-")
        assert len(pdf) > MIN_PDF_BYTES
    assert events == []


def test_nothing_in_the_data_runs_or_loads(unpacked: Path, tmp_path: Path):
    index = unpacked / "index.html"
    with chromium(tmp_path / "profile", viewport={"width": 1280, "height": 900}) as context:
        page, events = _watched(context, index)
        page.wait_for_timeout(500)  # a handler that would fire late (onload, onerror)
        assert page.locator("script, iframe, img, svg, link, object, embed").count() == 0
        text = page.locator("body").inner_text()
        for hostile in (HOSTILE_NAME, HOSTILE_FILE, *HOSTILE[:7]):
            assert hostile in text
        assert "[U+202E]evil[U+202C] and \u241b[31m" in text  # not reordered: as stored
        assert page.evaluate(RIGHT_TO_LEFT_DRAWN, RIGHT_TO_LEFT)
        assert f"the first {REPORT_ROWS} of {EVENTS:,} records" in text
        assert page.locator("table.records").nth(1).locator("tbody tr").count() == REPORT_ROWS
        link = page.get_by_role("link", name="records/shop/events.jsonl").first
        assert link.get_attribute("href") == "records/shop/events.jsonl"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # wide tables scroll in their own box, not the page
        assert page.evaluate(LOWEST_CONTRAST) >= MIN_CONTRAST
        structure = page.evaluate(STRUCTURE)
        assert structure["headings"].count(1) == 1
        assert structure["headings"][0] == 1
        levels = structure["headings"]
        assert all(later <= earlier + 1 for earlier, later in itertools.pairwise(levels))
        assert (structure["uncaptioned"], structure["unscoped"], structure["lang"]) == (0, 0, "en")
    assert events == []


@pytest.mark.parametrize("width", [1280, PHONE])
def test_values_wrap_between_words_and_wide_tables_scroll_in_their_box(
    unpacked: Path, tmp_path: Path, width: int
):
    """On screen no word is broken inside (only a long unbroken token wraps), and a table
    wider than the page scrolls in its own box: all of it can be seen, and the page itself
    does not scroll sideways."""
    index = unpacked / "index.html"
    with chromium(tmp_path / "profile", viewport={"width": width, "height": 900}) as context:
        page, events = _watched(context, index)
        layout = page.evaluate(LAYOUT)
    assert layout["broken"] == []
    assert layout["overflow"] <= 0
    wider = [table for table in layout["tables"] if table[0] > table[1]]
    assert wider  # the preferences table is wider than the page, even at 1280 px
    assert all(overflow == "auto" for _, _, overflow in wider)
    assert events == []


def test_wide_tables_fit_the_printed_page(unpacked: Path, tmp_path: Path):
    """Printed, a scroll box cannot scroll: every table fits the page's width (a smaller font,
    and wrapping anywhere as the last resort) and so is printed whole."""
    index = unpacked / "index.html"
    viewport = {"width": A4_PRINTABLE, "height": 1000}
    with chromium(tmp_path / "profile", viewport=viewport) as context:
        page, events = _watched(context, index)
        page.emulate_media(media="print")
        layout = page.evaluate(LAYOUT)
    assert layout["overflow"] <= 0
    assert all(table <= box for table, box, _ in layout["tables"]), layout["tables"]
    assert events == []
