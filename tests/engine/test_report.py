"""The person's report (engine/report.py, the package's index.html) is escaped against anything
the data holds: Hypothesis writes hostile values, column, table, source and file names and user
fields through the real package writer, and a reference parser (the standard library's
html.parser) finds only the elements and attributes the template writes, links only to the
package's own entries, and every value shown as the text a reference formatting written here
(apart from engine/readable.py) expects. Plus: the rows kept are capped while the records are
streamed, the [report] section and categories are carried in, and values read as words."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datapolicy.config import ColumnConfig, PurposeConfig, ReportConfig, TableConfig
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.readable import MAX_VALUE_CHARS, human_size, readable
from datapolicy.engine.report import REPORT_ROWS, ReportLabels, TableSample
from datapolicy.engine.sources.jsonlines import JsonLines, encode_rows

ELEMENTS = {
    *("html", "head", "meta", "title", "style", "body", "header", "nav", "main", "section"),
    *("h1", "h2", "h3", "h4", "p", "dl", "dt", "dd", "strong", "code", "bdi", "ol", "ul"),
    *("li", "a", "div", "table", "caption", "thead", "tbody", "tr", "th", "td", "span", "time"),
    "br",
}
ATTRIBUTES = {
    "meta": {"charset", "http-equiv", "content", "name"},
    "html": {"lang"},
    "a": {"href"},
    "time": {"datetime"},
    "th": {"scope"},
    "section": {"aria-labelledby"},
    "nav": {"aria-label"},
}
ANYWHERE = {"class", "id"}
SECTIONS = {"#summary", "#processing", "#rights", "#categories", "#data", "#files"}
HOSTILE = [
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "</style><script>alert(2)</script>",
    "</td></tr></table><a href='https://evil.example/'>x</a>",
    "{{ 7*7 }} {% raw %} {# #}",
    "\u202egnp.exe",
    "Evil\u202etown \u2067\u05d0\u2069 \u200f\u061c\u200e \u202a\u202b\u202c\u202d \u2066\u2068",
    "a\r\nb\x0bc\x1b[31m\x7f\x85",
    "&lt;not a tag&gt; &amp;",
    "javascript:alert(1)",
]


class Page(HTMLParser):
    """What the report is made of: its elements with their attributes, the text of each cell of
    the record tables (class "records"), of each dd, td, li and p, and of each link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[dict[str, list[Any]]] = []  # {"columns": [...], "rows": [[...]]}
        self.facts: list[str] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.style = ""
        self.cells: list[str] = []  # every td's text, in order
        self.texts: list[str] = []  # every li's and p's
        self._open: list[tuple[str, list[str]]] = []  # (tag, text) of td/th/dd/a/style/caption

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "table":
            self.tables.append({"records": attributes.get("class") == "records"})
            self.tables[-1].update(columns=[], rows=[])
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag in ("td", "th", "dd", "a", "style", "caption", "li", "p"):
            self._open.append((tag, []))
            if tag == "a":
                self.links.append((attributes.get("href") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return
        _, parts = self._open.pop()
        text = "".join(parts)
        for _, outer in self._open:
            outer.append(text)
        if tag == "td":
            self.tables[-1]["rows"][-1].append(text)
            self.cells.append(text)
        elif tag == "th" and self.tables:
            self.tables[-1]["columns"].append(text)
        elif tag == "dd":
            self.facts.append(text)
        elif tag == "a":
            self.links[-1] = (self.links[-1][0], text)
        elif tag == "style":
            self.style = text
        elif tag in ("li", "p"):
            self.texts.append(text)

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)

    def record_tables(self) -> list[dict[str, list[Any]]]:
        found = [table for table in self.tables if table["records"]]
        for table in found:
            table["rows"] = [row for row in table["rows"] if row]  # the header's row
        return found


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


# --- a reference formatting, written apart from engine/readable.py -------------------------


# The bidirectional controls: embeddings, overrides and their end, isolates and their end, the
# left-to-right, right-to-left and Arabic letter marks. Each would reorder what is shown.
BIDI_CONTROLS = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}


def shown(text: str) -> str:
    """A name as the page must show it: unseen characters as symbols, bidirectional controls
    as their code."""
    out = []
    for c in text:
        code = ord(c)
        if c in "\t\n":
            out.append(c)
        elif code < 0x20:
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        elif 0x80 <= code <= 0x9F or code in BIDI_CONTROLS:
            out.append(f"[U+{code:04X}]")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    return "".join(out)


def expected(value: Any) -> str:
    """A record value as the page must show it."""
    if value is None:
        return "no value"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"{value.day} {value:%B} {value.year}"
    if isinstance(value, bytes):
        return f"binary data, {_reference_size(len(value))}"
    text = shown(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]} … and {len(text) - MAX_VALUE_CHARS:,} more characters"


def _reference_size(size: int) -> str:
    if size == 1:
        return "1 byte"
    return f"{size} bytes" if size < 1000 else f"{size / 1000:.1f} kB"


# --- writing packages ------------------------------------------------------------------------


def package(
    tables: dict[tuple[str, str], list[dict[str, Any]]],
    files: tuple[str, ...] | list[str] = (),
    user: dict[str, str] | None = None,
    labels: ReportLabels | None = None,
    batch: int = 7,
) -> tuple[str, dict[str, Any]]:
    """A package written by the real writer; its index.html and manifest."""
    stream = io.BytesIO()
    writer = PackageWriter(
        stream,
        {
            "operationId": "op",
            "user": user or {"id": "u"},
            "createdDateTime": "2026-12-06T10:00:00Z",
        },
        labels=labels or ReportLabels(),
    )
    for (source_name, table), rows in tables.items():
        source = writer.source(source_name, "sql")
        batches = (encode_rows(rows[i : i + batch]) for i in range(0, len(rows), batch))
        for _ in writer.add_records(source, table, batches):
            pass
    for path in files:
        source = writer.source("uploads", "files")
        for _ in writer.add_file(source, path, io.BytesIO(b"content")):
            pass
    writer.close()
    archive = zipfile.ZipFile(stream)
    return archive.read("index.html").decode(), orjson.loads(archive.read("manifest.json"))


def empty_style() -> str:
    return parse(package({})[0]).style


def assert_only_the_template(page: Page, manifest: dict[str, Any], style: str) -> None:
    entries = {quote(entry["path"], safe="/") for entry in manifest["files"]}
    for tag, attributes in page.elements:
        assert tag in ELEMENTS, tag
        for name, value in attributes.items():
            assert name in ATTRIBUTES.get(tag, set()) | ANYWHERE, (tag, name)
            assert not name.startswith("on")
            if name == "href":
                assert value in entries | SECTIONS, value
            if name == "content" and attributes.get("http-equiv"):
                assert "default-src 'none'" in (value or "")
                assert "script-src" not in (value or "")
    assert [tag for tag, _ in page.elements].count("style") == 1
    assert page.style == style  # no data reaches the style sheet


STYLE = empty_style()
# What a database's text can hold (no NUL on PostgreSQL; JSON Lines hold no lone surrogate)
CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00") | st.sampled_from(
    [chr(code) for code in sorted(BIDI_CONTROLS)]
)
texts = st.text(CHARACTERS, max_size=40) | st.sampled_from(HOSTILE)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.dates(),
    st.binary(max_size=2000),
    texts,
    st.text(CHARACTERS, min_size=MAX_VALUE_CHARS - 2, max_size=600),
)
names = st.text(CHARACTERS, min_size=1, max_size=20) | st.sampled_from(HOSTILE)
segments = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00/"), min_size=1, max_size=12
)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


@settings(max_examples=150, deadline=None)
@given(
    tables=st.dictionaries(
        st.tuples(names, names),
        st.tuples(
            st.lists(names, min_size=1, max_size=4, unique=True),
            st.lists(st.lists(values, min_size=4, max_size=4), max_size=4),
        ),
        max_size=3,
    ),
    files=st.lists(st.lists(segments, min_size=1, max_size=3).map("/".join), max_size=3),
    user=st.fixed_dictionaries({"id": names, "displayName": names, "mail": names}),
    statement=st.none()
    | st.builds(
        ReportConfig,
        controller=names,
        purposes=st.lists(
            st.builds(PurposeConfig, name=st.just("p"), description=names, legal_basis=names),
            max_size=1,
        ).map(tuple),
        recipients=st.lists(names, max_size=2).map(tuple),
        retention=names,
        source=names,
    ),
)
@example(
    tables={("<script>", "</style>"): (["<b onclick=x>", "{{ x }}"], [["\r\n\x85", None, 1, 2]])},
    files=["<img src=x onerror=alert(1)>.png", "a\u202e/b\x1b", "caf\udce9.txt"],
    user={"id": HOSTILE[0], "displayName": HOSTILE[1], "mail": HOSTILE[3]},
    statement=ReportConfig(controller=HOSTILE[2], recipients=(HOSTILE[4],), source=HOSTILE[5]),
)
@example(  # a source's tables are shown together, in the order they were written
    tables={
        ("a", "x"): (["0"], [[None]]),
        ("b", "y"): (["1"], [[None]]),
        ("a", "z"): (["00"], [[None]]),
    },
    files=[],
    user={"id": "u", "displayName": "d", "mail": "m"},
    statement=None,
)
def test_any_data_is_shown_as_text_and_only_as_text(
    tables: dict[tuple[str, str], tuple[list[str], list[list[Any]]]],
    files: list[str],
    user: dict[str, str],
    statement: ReportConfig | None,
):
    records = {
        key: [{column: _json_value(row[i]) for i, column in enumerate(columns)} for row in rows]
        for key, (columns, rows) in tables.items()
    }
    html, manifest = package(records, files, user, ReportLabels(statement))
    page = parse(html)

    assert_only_the_template(page, manifest, STYLE)
    shown_tables = page.record_tables()
    sources = list(dict.fromkeys(source for source, _ in tables))  # the report's order
    nonempty = sorted(
        ((key, table) for key, table in tables.items() if table[1]),
        key=lambda item: sources.index(item[0][0]),
    )
    assert len(shown_tables) == len(nonempty)
    for (_, (columns, rows)), shown_table in zip(nonempty, shown_tables, strict=True):
        assert shown_table["columns"] == [shown(column) for column in columns]
        assert shown_table["rows"] == [
            [expected(value) for value in row[: len(columns)]] for row in rows
        ]
    assert shown(user["displayName"]) in page.facts
    assert shown(user["id"]) in page.facts
    assert shown(user["mail"]) in page.facts
    if statement is not None:
        assert shown(statement.controller) in page.facts
        for purpose in statement.purposes:
            assert shown(purpose.description) in page.cells
            assert shown(purpose.legal_basis or "") in page.cells
        for text in (*statement.recipients, statement.retention, statement.source):
            if text is not None:
                assert shown(text) in page.texts
    links = dict(page.links)
    for entry in manifest["files"][:-1]:  # the last is index.html: this page
        assert links[quote(entry["path"], safe="/")] == shown(entry["path"])
        if "sourcePath" in entry:
            assert f"a copy of {shown(entry['sourcePath'])}" in page.cells


def test_a_large_table_shows_its_first_rows_and_links_to_all_of_them():
    rows = [{"id": i, "note": f"row {i}"} for i in range(REPORT_ROWS * 3 + 5)]
    html, manifest = package({("shop", "orders"): rows}, batch=37)
    page = parse(html)
    (table,) = page.record_tables()
    assert table["rows"] == [[str(i), f"row {i}"] for i in range(REPORT_ROWS)]
    assert f"the first {REPORT_ROWS} of {len(rows):,} records" in html
    assert ("records/shop/orders.jsonl", "records/shop/orders.jsonl") in page.links
    (entry,) = [e for e in manifest["files"] if e["path"].endswith(".jsonl")]
    assert entry["records"] == len(rows)


def test_only_the_rows_kept_are_parsed():
    """A batch past the cap is not parsed at all, nor the lines of a batch past it: the sample
    costs REPORT_ROWS rows whatever the table's size."""
    sample = TableSample("shop", "orders")
    head = encode_rows([{"id": i} for i in range(REPORT_ROWS - 1)]).data
    sample.take(head + b'{"id": "last"}\nnot JSON\n')
    sample.take(b"not JSON either\n")
    assert len(sample.rows) == REPORT_ROWS
    assert sample.rows[-1]["id"].text == "last"


def test_a_record_nested_too_deep_to_parse_is_shown_as_its_text():
    """A JSON document deeper than Python's recursion limit (PostgreSQL's jsonb nests deeper)
    does not fail the export: its record is shown as its JSON text, cut."""
    deep = b'{"doc":' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    for _ in writer.add_records(writer.source("shop", "sql"), "docs", [JsonLines(deep, 1)]):
        pass
    writer.close()
    (table,) = parse(zipfile.ZipFile(stream).read("index.html").decode()).record_tables()
    assert table["columns"] == ["(record)"]
    assert table["rows"] == [[expected(deep.decode().rstrip())]]


def test_the_statement_and_categories_are_carried_in():
    statement = ReportConfig(
        controller="Example Shop Ltd, 1 Main Street",
        purposes=(
            PurposeConfig(
                name="orders", description="To deliver what you buy", legal_basis="Art. 6(1)(b)"
            ),
            PurposeConfig(name="marketing", description="Newsletters"),
        ),
        recipients=("Parcel carriers",),
        retention="Ten years after the last order",
        source="You, when you ordered",
    )
    orders = TableConfig(
        table="orders",
        user_key="customer_id",
        categories=("user.financial",),
        purpose="orders",
        columns={
            "email": ColumnConfig(categories=("user.contact.email",), purpose="marketing"),
            "id": ColumnConfig(purpose="orders"),
        },
    )
    labels = ReportLabels(statement, {("shop", "orders"): orders})
    rows = [{"id": 1, "email": "ada@example.com"}, {"id": 2, "email": "ada@example.org"}]
    html, _ = package({("shop", "orders"): rows, ("shop", "logins"): [{"id": 3}]}, labels=labels)
    page = parse(html)
    for text in (statement.controller, "Parcel carriers", "Ten years after the last order"):
        assert text in html
    assert "To deliver what you buy" in page.cells
    assert "Art. 6(1)(b)" in page.cells
    assert "not stated" in page.cells  # marketing's legal basis
    assert "does not say who controls your data" not in html
    assert "kept about\n<strong><bdi>u</bdi></strong>,\nas it was" in html  # not the controller
    assert '<h2 id="rights">Your rights</h2>' in html
    rights = " ".join(" ".join(page.texts).split())
    for asked in ("to correct your data", "Article 15(1)(h)", "Article 15(2)", "supervisory"):
        assert asked in rights
    assert "contact: email" in html
    assert "<code>user.contact.email</code>" in html
    assert "shop \u203a orders: email" in html
    assert "shop \u203a orders: every column" in html  # user.financial, for the whole table
    assert "shop \u203a logins: every column" in html  # without a category
    assert "Purpose: orders. email: purpose marketing; id: purpose orders." in html


def test_a_table_category_its_columns_carry_is_shown_where_the_columns_are():
    """discover gives a table every category of its columns: the category table then says
    "addresses: city" only, not "every column" beside it; a category of the table alone is
    still the whole table's."""
    addresses = TableConfig(
        table="addresses",
        user_key="customer_id",
        categories=("user.contact.address", "user.contact.address.city", "user.unique_id"),
        columns={
            "city": ColumnConfig(categories=("user.contact.address.city",)),
            "street": ColumnConfig(categories=("user.contact.address",)),
            "postcode": ColumnConfig(categories=("user.contact.address",)),
        },
    )
    labels = ReportLabels(None, {("shop", "addresses"): addresses})
    row = {"city": "London", "street": "1 Analytical Way", "postcode": "N1 1AA"}
    html, _ = package({("shop", "addresses"): [row]}, labels=labels)
    places = [text for text in parse(html).texts if text.startswith("shop \u203a addresses")]
    assert sorted(places) == [
        "shop \u203a addresses: city",
        "shop \u203a addresses: every column",  # user.unique_id: the table's alone
        "shop \u203a addresses: street, postcode",
    ]


def test_a_report_without_a_statement_says_so_to_the_person():
    """Without [report] the page tells the person what is missing and whom to ask; how the
    operator fills it in is for `config check` and the docs, not the person's page."""
    html, _ = package({("shop", "orders"): [{"id": 1}]})
    said = " ".join(" ".join(parse(html).texts).split())
    assert "This package does not say who controls your data" in said
    assert "(GDPR Article 15(1)): ask them for it." in said
    assert "[report]" not in html
    assert "configuration" not in said
    assert "<dt>Operation id</dt>" in html  # what it is: not an HTTP request's id
    assert "You may ask the controller (the organisation that gave you this package):" in said
    assert "No categories are given for this data." in said


def test_the_documented_security_headers_are_the_pages():
    """docs/package-format.md states the page's policies word for word (whitespace aside)."""
    html, _ = package({})
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert found is not None
    docs = Path(__file__).resolve().parents[2] / "docs" / "package-format.md"
    said = " ".join(docs.read_text().split())
    assert f"a `Content-Security-Policy` of `{found.group(1)}`" in said
    referrer = '<meta name="referrer" content="no-referrer">'
    assert referrer in html
    assert f"`{referrer}`" in said


def test_values_read_as_words():
    assert readable(None).text == "no value"
    assert readable("2024-02-29").text == "29 February 2024"
    assert readable("2024-02-30").text == "2024-02-30"  # not a date: as it is
    assert readable("2025-03-14T15:09:26.5+00:00").text == "14 March 2025, 15:09:26.5 UTC"
    assert readable("2025-03-14 15:09:26").text == "14 March 2025, 15:09:26"
    assert readable("2025-03-14T15:09:26+05:30").text == "14 March 2025, 15:09:26 (UTC+05:30)"
    assert readable(Decimal("12.50")).text == "12.50"
    assert readable(True).text == "yes"
    assert readable({"base64": "AAEC"}).text == "binary data, 3 bytes"
    assert readable({"a": [1, Decimal("1.50"), "x\u0001"]}).text == '{"a":[1,1.50,"x\u2401"]}'
    assert readable("\udcff").text == "\ufffd"
    long = readable("x" * (MAX_VALUE_CHARS + 10))
    assert (len(long.text), long.cut) == (MAX_VALUE_CHARS, 10)


def test_bidirectional_controls_are_shown_and_right_to_left_text_as_it_is():
    """A right-to-left override would show `Evil\u202etown` as "Evilnwot": a value the reader
    takes for the stored one. Arabic and Hebrew need no control characters to read right."""
    assert readable("Evil\u202etown").text == "Evil[U+202E]town"
    assert readable("a\u2067b\u2069\u200f\u061c").text == "a[U+2067]b[U+2069][U+200F][U+061C]"
    for text in (
        "\u0645\u0631\u062d\u0628\u0627 123",
        "\u05e9\u05dc\u05d5\u05dd, \u05e2\u05d5\u05dc\u05dd",
    ):
        assert readable(text).text == text
    html, _ = package({("shop", "orders"): [{"city\u202e": "Evil\u202etown"}]})
    (table,) = parse(html).record_tables()
    assert (table["columns"], table["rows"]) == (["city[U+202E]"], [["Evil[U+202E]town"]])
    assert "\u202e" not in html


def test_sizes_read_as_a_person_reads_them():
    assert [human_size(n) for n in (0, 1, 999, 1000, 1_500_000, 999_960, 3 * 10**12)] == [
        "0 bytes",
        "1 byte",
        "999 bytes",
        "1.0 kB",
        "1.5 MB",
        "1.0 MB",
        "3.0 TB",
    ]
