"""The configuration file: valid files load, mistakes are named by file, line and key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from datapolicy import config as config_module
from datapolicy.config import Config, ConfigError, parse_config

GOOD = """
[server]
port = 9000
data_dir = "data"

[directory]
url = "sqlite:///people.db"
table = "users"

[[sources.sql]]
name = "shop"
url = "sqlite:///shop.db"

  [[sources.sql.tables]]
  table = "orders"
  user_key = "customer_id"

  [[sources.sql.tables]]
  table = "order_items"
  parent = "orders"

  [[sources.sql.queries]]
  name = "messages"
  sql = "SELECT * FROM messages WHERE sender_id = :user_id"

[[sources.files]]
name = "uploads"
path = "uploads/{userId}"

[storage.local]
roots = ["exports", "/srv/exports"]
"""


def test_a_good_file_loads_with_paths_relative_to_it(tmp_path: Path):
    config = parse_config(GOOD, tmp_path / "datapolicy.toml")
    assert config.server.port == 9000
    assert config.server.data_dir == tmp_path / "data"
    assert config.directory.url == f"sqlite:///{tmp_path}/people.db"
    assert config.sources.sql[0].tables[1].parent == "orders"
    assert config.sources.files[0].path == f"{tmp_path}/uploads/{{userId}}"
    assert config.storage.local.roots == (tmp_path / "exports", Path("/srv/exports"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('  user_key = "customer_id"', '  user_key = "customer_id"\n  colour = 1'),
            "line 17: unknown key `sources.sql.tables.colour`",
        ),
        (
            ('  parent = "orders"', '  parent = "nowhere"'),
            "parent 'nowhere' must be declared before it",
        ),
        (
            (
                '  sql = "SELECT * FROM messages WHERE sender_id = :user_id"',
                '  sql = "SELECT * FROM messages"',
            ),
            "must use the parameter :user_id",
        ),
        (('path = "uploads/{userId}"', 'path = "uploads"'), "must contain {userId}"),
        (("port = 9000", "port = 99999"), "line 3: server.port:"),
        (('table = "users"', 'table = "users; drop table x"'), "directory.table"),
        (("[server]", "[sever]"), "unknown key `sever` (did you mean `server`?)"),
        (("port = 9000", "port = 9000\nport = 1"), "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_line_and_key(tmp_path: Path, change, expected):
    path = tmp_path / "datapolicy.toml"
    with pytest.raises(ConfigError) as raised:
        parse_config(GOOD.replace(*change), path)
    assert str(raised.value).startswith(str(path))
    assert expected in str(raised.value)


def test_a_table_needs_exactly_one_way_in(tmp_path: Path):
    text = GOOD.replace('  parent = "orders"', '  parent = "orders"\n  user_key = "x"')
    with pytest.raises(ConfigError, match="exactly one of 'user_key' or 'parent'"):
        parse_config(text, tmp_path / "c.toml")


def test_auth_defaults_and_a_jwks_file_relative_to_the_file(tmp_path: Path):
    defaults = parse_config("", tmp_path / "c.toml").auth
    assert (defaults.issuer, defaults.audience, defaults.clock_skew) == (
        "datapolicy",
        "api://datapolicy",
        60,
    )
    assert not defaults.uses_jwks
    text = '[auth]\njwks_file = "keys/jwks.json"\nissuer = "https://idp"\naudience = "api://x"\n'
    auth = parse_config(text, tmp_path / "c.toml").auth
    assert auth.jwks_file == tmp_path / "keys/jwks.json"
    assert auth.uses_jwks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[auth]\njwks_url = "https://idp/keys"\nissuer = "https://idp"\n',
            "line 1: auth: 'issuer' and 'audience' are required with a JWKS",
        ),
        (
            '[auth]\njwks_url = "https://a/k"\njwks_file = "k.json"\nissuer = "i"\naudience = "a"',
            "give at most one of 'jwks_url' or 'jwks_file'",
        ),
        (
            '[auth]\njwks_url = "http://idp.example/keys"\nissuer = "i"\naudience = "a"\n',
            "'jwks_url' must use https (plain http only on a loopback address)",
        ),
        ('[auth]\njwks_url = "ftp://idp/keys"\n', "line 2: auth.jwks_url:"),
        ("[auth]\nclock_skew = 3600\n", "line 2: auth.clock_skew:"),
        ('[auth]\nissuer = ""\n', "line 2: auth.issuer:"),
        ("[auth]\nenabled = false\n", "line 2: unknown key `auth.enabled`"),
    ],
)
def test_auth_mistakes_are_named(tmp_path: Path, text: str, expected: str):
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path / "c.toml")
    assert expected in str(raised.value)


S3_ENTRY = """
[[storage.s3]]
name = "archive"
endpoint_url = "https://s3.eu-west-1.amazonaws.com"
access_key_id = "AKIA"
secret_access_key = "secret"
buckets = ["exports"]
"""


def test_an_s3_entry_s_request_tries_and_timeouts_default_and_may_be_set(tmp_path: Path):
    (default,) = parse_config(S3_ENTRY, tmp_path / "c.toml").storage.s3
    assert (default.max_attempts, default.connect_timeout, default.read_timeout) == (12, 10, 120)
    text = S3_ENTRY + "max_attempts = 3\nconnect_timeout = 1.5\nread_timeout = 30\n"
    (configured,) = parse_config(text, tmp_path / "c.toml").storage.s3
    assert (configured.max_attempts, configured.connect_timeout, configured.read_timeout) == (
        3,
        1.5,
        30,
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_attempts = 0", "line 8: storage.s3.max_attempts:"),
        ("max_attempts = 1000", "line 8: storage.s3.max_attempts:"),
        ("connect_timeout = 0", "line 8: storage.s3.connect_timeout:"),
        ("read_timeout = -1", "line 8: storage.s3.read_timeout:"),
        ("retries = 3", "line 8: unknown key `storage.s3.retries`"),
    ],
)
def test_s3_request_setting_mistakes_are_named(tmp_path: Path, line: str, expected: str):
    with pytest.raises(ConfigError) as raised:
        parse_config(f"{S3_ENTRY}{line}\n", tmp_path / "c.toml")
    assert expected in str(raised.value)


def test_a_composite_link_is_given_as_lists(tmp_path: Path):
    """foreign_key and parent_key take a list for a composite key (kept as tuples, in order); a
    single name is a one-column key."""
    text = GOOD.replace(
        '  parent = "orders"',
        '  parent = "orders"\n  foreign_key = ["tenant_id", "order_no"]\n'
        '  parent_key = ["tenant_id", "number"]',
    )
    table = parse_config(text, tmp_path / "c.toml").sources.sql[0].tables[1]
    assert (table.foreign_key, table.parent_key) == (
        ("tenant_id", "order_no"),
        ("tenant_id", "number"),
    )
    single = parse_config(
        GOOD.replace('  parent = "orders"', '  parent = "orders"\n  foreign_key = "order_id"'),
        tmp_path / "c.toml",
    )
    assert single.sources.sql[0].tables[1].foreign_key == ("order_id",)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'foreign_key = ["tenant_id", "order_no"]\n  parent_key = ["id"]',
            "line 22: sources.sql.tables.parent_key: names 1 column(s) but foreign_key names 2",
        ),
        ('foreign_key = ["tenant_id", "no; drop"]', "line 21: sources.sql.tables.foreign_key:"),
        ("foreign_key = []", "line 21: sources.sql.tables.foreign_key: "),
        ('foreign_key = ["a", "a"]', "sources.sql.tables.foreign_key: a column is named twice"),
        ('parent_key = ["id"]', "parent_key: 'parent_key' needs 'foreign_key'"),
        ("foreign_key = 3", "foreign_key: give a column name or a list of column names"),
    ],
)
def test_composite_link_mistakes_name_the_line_and_key(tmp_path: Path, keys: str, expected: str):
    """Lists of different lengths, a name that is not an identifier, an empty list, a column
    twice, a parent_key with no foreign_key: each a ConfigError naming file, line and key."""
    path = tmp_path / "datapolicy.toml"
    text = GOOD.replace('  parent = "orders"', f'  parent = "orders"\n  {keys}')
    with pytest.raises(ConfigError) as raised:
        parse_config(text, path)
    assert str(raised.value).startswith(str(path))
    assert expected in str(raised.value)


def test_the_audit_idle_timeout_is_below_the_lock_timeout(tmp_path: Path):
    """A change waiting for the audit trail's head must outlast a frozen holder of it: an
    explicit `audit_idle_timeout` at or above `lock_timeout` is refused; unset, it is derived
    (half the lock timeout, at most 2 s)."""
    with pytest.raises(ConfigError, match="'audit_idle_timeout' must be below 'lock_timeout'"):
        parse_config("[store]\nlock_timeout = 2\naudit_idle_timeout = 2\n", tmp_path / "c.toml")
    assert parse_config("", tmp_path / "c.toml").store.timeouts().audit_idle_seconds == 2
    short = parse_config("[store]\nlock_timeout = 1\n", tmp_path / "c.toml").store.timeouts()
    assert short.audit_idle_seconds == 0.5
    explicit = "[store]\naudit_idle_timeout = 0.25\n"
    assert parse_config(explicit, tmp_path / "c.toml").store.timeouts().audit_idle_seconds == 0.25


REPORT = """
[report]
controller = "Example Ltd, 1 Main Street; privacy@example.com"
recipients = ["Our parcel carrier"]
retention = "Ten years (tax law)"
source = "You, when you ordered"

  [[report.purposes]]
  name = "orders"
  description = "Delivering your orders"
  legal_basis = "Art. 6(1)(b) GDPR"
"""
LABELLED = """
  categories = ["user.financial"]
  purpose = "orders"
    [sources.sql.tables.columns]
    customer_id = { categories = ["user.unique_id"], purpose = "orders" }
"""


def test_tables_and_columns_carry_categories_and_purposes_of_the_report(tmp_path: Path):
    """A table and its columns may name data categories and a purpose declared in [report],
    which holds the free text of a person's report; ignore_tables lists tables that are not
    gaps."""
    text = GOOD.replace('  user_key = "customer_id"', '  user_key = "customer_id"' + LABELLED)
    text = text.replace(
        'url = "sqlite:///shop.db"', 'url = "sqlite:///shop.db"\nignore_tables = ["staff"]'
    )
    config = parse_config(text + REPORT, tmp_path / "c.toml")
    source = config.sources.sql[0]
    orders = source.tables[0]
    assert (orders.categories, orders.purpose) == (("user.financial",), "orders")
    assert orders.columns["customer_id"].categories == ("user.unique_id",)
    assert orders.purposes == {"orders"}
    assert source.ignore_tables == ("staff",)
    assert config.report is not None
    assert config.report.purposes[0].legal_basis == "Art. 6(1)(b) GDPR"
    assert config.report.recipients == ("Our parcel carrier",)
    assert parse_config(GOOD, tmp_path / "c.toml").report is None


@pytest.mark.parametrize(
    ("labels", "report", "expected"),
    [
        (LABELLED, "", "purpose 'orders' is not one of the [[report.purposes]] names"),
        (LABELLED.replace("user.financial", "User Financial"), REPORT, "categories"),
        (LABELLED.replace('purpose = "orders" }', "colour = 1 }"), REPORT, "unknown key"),
        (
            "",
            REPORT.replace('controller = "Example', 'controler = "Example'),
            "unknown key `report.controler` (did you mean `controller`?)",
        ),
        (
            "",
            REPORT + '\n  [[report.purposes]]\n  name = "orders"\n  description = "again"\n',
            "two purposes",
        ),
    ],
)
def test_report_and_label_mistakes_are_named(
    tmp_path: Path, labels: str, report: str, expected: str
):
    """A purpose no [[report.purposes]] declares, a category not shaped like a taxonomy key, an
    unknown key, a report without its controller, a purpose declared twice: each refused."""
    text = GOOD.replace('  user_key = "customer_id"', '  user_key = "customer_id"' + labels)
    with pytest.raises(ConfigError) as raised:
        parse_config(text + report, tmp_path / "c.toml")
    assert expected in str(raised.value)


ERASURE_TABLES = """
[[sources.sql]]
name = "shop"
url = "sqlite:///shop.db"

  [[sources.sql.tables]]
  table = "customers"
  user_key = "id"
  erase = "mask"
  mask = { email = "hash", born = "year", city = "null", note = { value = "(erased)" } }

  [[sources.sql.tables]]
  table = "orders"
  parent = "customers"
  erase = "delete"

  [[sources.sql.tables]]
  table = "invoices"
  user_key = "customer_id"
  erase = "retain"
  reason = "GDPR Art. 17(3)(b): kept 10 years for tax law"

[[sources.files]]
name = "uploads"
path = "uploads/{userId}"
erase = "delete"

[erasure]
approval = "required"
hash_secret_file = "secrets/erasure.key"
"""


def test_erasure_rules_load_with_the_secret_file_relative_to_the_file(tmp_path: Path):
    config = parse_config(ERASURE_TABLES, tmp_path / "datapolicy.toml")
    assert config.erasure is not None
    assert config.erasure.approval == "required"
    assert config.erasure.hash_secret_file == tmp_path / "secrets" / "erasure.key"
    customers, orders, invoices = config.sources.sql[0].tables
    assert customers.mask["note"].value == "(erased)"
    assert (orders.erase, invoices.reason[:13]) == ("delete", "GDPR Art. 17(")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('  erase = "delete"\n', "", "table 'orders' has no erase rule"),
        ('  reason = "GDPR Art. 17(3)(b): kept 10 years for tax law"\n', "", "needs 'reason'"),
        ('  erase = "mask"\n', "", "'mask' is only read with erase = \"mask\""),
        ('erase = "delete"\n\n[erasure]', "\n[erasure]", "file source 'uploads' has no erase"),
        ('born = "year"', 'born = "month"', "line 10: sources.sql.tables.mask.born"),
    ],
)
def test_erasure_rule_mistakes_are_named(tmp_path: Path, old: str, new: str, expected: str):
    text = ERASURE_TABLES.replace(old, new, 1)
    assert text != ERASURE_TABLES
    with pytest.raises(ConfigError) as error:
        parse_config(text, tmp_path / "datapolicy.toml")
    assert expected in str(error.value)


def test_a_table_on_two_paths_has_one_erase_rule(tmp_path: Path):
    text = ERASURE_TABLES.replace(
        "[[sources.files]]",
        '  [[sources.sql.tables]]\n  table = "orders"\n  name = "orders_again"\n'
        '  user_key = "customer_id"\n  erase = "retain"\n  reason = "x"\n\n[[sources.files]]',
    )
    with pytest.raises(ConfigError, match=r"configured twice .* with different erase rules"):
        parse_config(text, tmp_path / "datapolicy.toml")


# --- misspelt keys ---------------------------------------------------------------------------

_BARE_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz_"
_VALID_FILES = {
    "good": GOOD,
    "labelled": GOOD.replace('  user_key = "customer_id"', '  user_key = "customer_id"' + LABELLED)
    + REPORT,
    "deployment": (Path(__file__).parents[1] / "deploy" / "datapolicy.toml").read_text(),
}
_EVERY_KEY = {
    name
    for model in (Config, *(m for m in vars(config_module).values() if isinstance(m, type)))
    if isinstance(model, type) and issubclass(model, BaseModel)
    for name in model.model_fields
}


@st.composite
def _misspelt(draw: st.DrawFn) -> tuple[str, str, str]:
    """A valid file with one key (or table name) misspelt by one edit: the text, the key as
    written, and the misspelling."""
    text = _VALID_FILES[draw(st.sampled_from(sorted(_VALID_FILES)))]
    lines = text.splitlines()
    keyed = [
        (number, match)
        for number, line in enumerate(lines)
        for match in [re.match(r"^(\s*\[{0,2}\s*(?:[a-z_]+\.)*)([a-z_]+)(\s*(=|\]))", line)]
        if match
    ]
    number, match = draw(st.sampled_from(keyed))
    key = match.group(2)
    assume(key in _EVERY_KEY)  # not a column's name, a key of `columns` the operator chooses
    at = draw(st.integers(0, len(key) - 1))
    letter = draw(st.sampled_from(_BARE_KEY_CHARS))
    edit = draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
    if edit == "insert":
        wrong = key[:at] + letter + key[at:]
    elif edit == "delete":
        wrong = key[:at] + key[at + 1 :]
    elif edit == "replace":
        wrong = key[:at] + letter + key[at + 1 :]
    else:
        wrong = key[:at] + key[at + 1 : at + 2] + key[at : at + 1] + key[at + 2 :]
    assume(wrong and wrong not in _EVERY_KEY)
    lines[number] = match.group(1) + wrong + lines[number][match.end(2) :]
    misspelt = "\n".join(lines)
    # A misspelt table a later header extends ([a.tabels], then [a.tables.columns]) is no
    # longer TOML: that error is tomllib's.
    assume(_is_toml(misspelt))
    return misspelt, key, wrong


def _is_toml(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


@given(_misspelt())
@settings(max_examples=300, deadline=None)
@example((GOOD.replace('name = "shop"', 'nmae = "shop"'), "name", "nmae"))
def test_a_misspelt_key_is_named_and_the_right_one_suggested(case: tuple[str, str, str]):
    """Whichever key or table name of a valid file is misspelt by one edit (a letter added,
    dropped, changed, two swapped), the error names the unknown key (not the "Field required"
    of the key it was meant to be) and suggests the key as it was."""
    text, key, wrong = case
    with pytest.raises(ConfigError) as raised:
        parse_config(text, Path("/etc/datapolicy.toml"))
    message = str(raised.value)
    assert re.search(rf"unknown key `([a-z_.]+\.)?{wrong}`", message), message
    suggestion = re.search(r"\(did you mean (.+)\?\)", message)
    assert suggestion is not None, message
    assert f"`{key}`" in suggestion.group(1).split(" or "), message
