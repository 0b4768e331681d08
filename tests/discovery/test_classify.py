"""The column classifier (src/datapolicy/discovery/classify.py): the categories it proposes from
names, SQL types and sample values, and that samples never surface.

Value detectors are proved against the libraries they wrap: on generated e-mail addresses, IBANs
(made valid and invalid with python-stdnum), card numbers (Luhn-valid and not), phonenumbers'
own example numbers, IP addresses and random text, a detector's verdict is the library's. Every
category a rule can propose exists in the Fides taxonomy as fideslang ships it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import secrets
import string
from collections.abc import Callable
from datetime import date, datetime

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import OctKey
from stdnum import iban, luhn

from datapolicy.discovery import names, values
from datapolicy.discovery.classify import (
    SECRET_CATEGORIES,
    VALUES_ALONE,
    ColumnClass,
    classify_column,
    sql_family,
)

TODAY = date(2026, 12, 6)

text_values = st.text(max_size=40)


def _proposes(result: ColumnClass, category: str) -> bool:
    return category in result.categories


# the taxonomy --------------------------------------------------------------------------------


def test_every_proposed_category_is_in_fideslangs_default_taxonomy() -> None:
    """Every category a name rule or a value detector can propose is a data category key of
    the Fides taxonomy fideslang ships (a typo or a retired key fails here)."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    known = {category.fides_key for category in DEFAULT_TAXONOMY.data_category}
    proposed = (
        {rule.category for rule in names.RULES}
        | {detector.category for detector in values.DETECTORS}
        | {values.birth_date(TODAY).category}
        | SECRET_CATEGORIES
    )
    assert proposed - known == set()


# value detectors against their libraries -----------------------------------------------------


def _reference_email(text: str) -> bool:
    try:
        validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@given(
    st.one_of(st.emails(), text_values, st.from_regex(r"[a-z.+]{1,10}@[a-z\-]{1,8}\.[a-z]{2,4}"))
)
def test_email_detector_is_email_validators_verdict(value: str) -> None:
    """On generated addresses, near-addresses and random text, the e-mail detector accepts
    exactly what email-validator (no DNS) accepts."""
    assert values.EMAIL.matches(value) == _reference_email(value)


@given(st.lists(st.one_of(st.emails(), text_values), min_size=3, max_size=values.PREFIX))
def test_emails_alone_propose_the_category_at_the_threshold(samples: list[str]) -> None:
    """A nameless text column is an e-mail column exactly when email-validator accepts at least
    80% of its non-null samples (every one is checked below the validation budget)."""
    non_null = [value for value in samples if value != ""]
    valid = sum(_reference_email(value) for value in non_null)
    result = classify_column("things", "col", "text", samples)
    expected = len(non_null) >= 3 and valid / len(non_null) >= VALUES_ALONE
    assert _proposes(result, "user.contact.email") == expected


def test_the_threshold_for_values_alone_is_80_percent() -> None:
    """Four e-mail addresses in five non-null samples propose the category; three do not."""
    addresses = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    four = classify_column("things", "col", "text", [*addresses, "words", None])
    assert four.categories == ("user.contact.email",)
    three = classify_column("things", "col", "text", [*addresses[:3], "words", "more words"])
    assert three.categories == ()


def _valid_iban(country: str, bban: str) -> str:
    return f"{country}{iban.calc_check_digits(country + '00' + bban)}{bban}"


ibans = st.one_of(
    st.from_regex(r"[0-9]{18}", fullmatch=True).map(lambda bban: _valid_iban("DE", bban)),
    st.from_regex(r"[0-9]{16}", fullmatch=True).map(lambda bban: _valid_iban("AT", bban)),
    st.from_regex(r"[A-Z]{4}[0-9]{14}", fullmatch=True).map(lambda bban: _valid_iban("GB", bban)),
)


def _mutated(text: str, data: st.DataObject) -> str:
    index = data.draw(st.integers(2, len(text) - 1))
    digit = data.draw(st.sampled_from([d for d in string.digits if d != text[index]]))
    return text[:index] + digit + text[index + 1 :]


def _grouped(text: str) -> str:
    return " ".join(text[index : index + 4] for index in range(0, len(text), 4))


@given(ibans, st.data())
def test_iban_detector_is_stdnums_verdict(valid: str, data: st.DataObject) -> None:
    """IBANs made valid with stdnum's check digits are detected, printed or compact; one digit
    changed, the detector still agrees with stdnum (mod 97 catches every single change)."""
    for form in (valid, _grouped(valid)):
        assert values.IBAN.matches(form)
        assert iban.is_valid(form)
    changed = _mutated(valid, data)
    assert values.IBAN.matches(changed) == iban.is_valid(changed)


@given(text_values)
def test_iban_detector_agrees_with_stdnum_on_text(value: str) -> None:
    """On random text the IBAN detector is python-stdnum's verdict."""
    assert values.IBAN.matches(value) == iban.is_valid(value.strip())


cards = st.tuples(st.sampled_from("23456"), st.integers(12, 18)).flatmap(
    lambda start: st.from_regex(rf"[0-9]{{{start[1] - 1}}}", fullmatch=True).map(
        lambda body: start[0] + body + luhn.calc_check_digit(start[0] + body)
    )
)


def _reference_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits)


@given(cards, st.data())
def test_card_detector_is_the_luhn_check(valid: str, data: st.DataObject) -> None:
    """Luhn-valid numbers of 13-19 digits are card numbers however grouped; with the check digit
    changed they are not (stdnum's Luhn check is the reference)."""
    assert values.CARD.matches(valid)
    assert values.CARD.matches(_grouped(valid))
    assert values.CARD.matches(int(valid))
    wrong = valid[:-1] + data.draw(st.sampled_from([d for d in string.digits if d != valid[-1]]))
    assert not values.CARD.matches(wrong)
    assert not luhn.is_valid(wrong)


@given(st.one_of(text_values, st.from_regex(r"[0-9 \-]{10,24}", fullmatch=True)))
def test_card_detector_agrees_with_luhn_on_text(value: str) -> None:
    """On random text and digit runs the card detector is the reference: 13-19 digits (spaces
    and dashes ignored) starting with 2-6 that pass stdnum's Luhn check."""
    digits = value.strip().replace(" ", "").replace("-", "")
    expected = digits.isascii() and digits.isdigit() and _reference_card(digits)
    assert values.CARD.matches(value) == expected


_NUMBER_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
)
_NUMBER_TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)


def _reference_phone(text: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(text.strip(), None)))
    except phonenumbers.NumberParseException:
        return False


@given(
    st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
    st.sampled_from(_NUMBER_TYPES),
    st.sampled_from(_NUMBER_FORMATS),
)
def test_phone_detector_accepts_phonenumbers_examples(region: str, kind: int, form: int) -> None:
    """phonenumbers' own example number for a region and type, written internationally, is a
    valid phone number to the detector exactly when phonenumbers says it is valid."""
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return
    text = phonenumbers.format_number(example, form)
    assert values.INTERNATIONAL_PHONE.matches(text) == _reference_phone(text)
    assert values.INTERNATIONAL_PHONE.matches(text) == phonenumbers.is_valid_number(example)


@given(st.one_of(text_values, st.from_regex(r"\+[1-9][0-9 \-]{6,16}", fullmatch=True)))
def test_phone_detector_agrees_with_phonenumbers_on_text(value: str) -> None:
    """On random text and plus-prefixed digit runs the detector is phonenumbers' verdict."""
    assert values.INTERNATIONAL_PHONE.matches(value) == (
        value.strip().startswith("+") and _reference_phone(value)
    )


def _reference_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


@given(st.ip_addresses())
def test_ip_detector_accepts_every_address(address: ipaddress.IPv4Address) -> None:
    """Every IPv4 and IPv6 address is an IP address, as text or as the driver's object (psycopg
    returns `inet` values as ipaddress objects)."""
    assert values.IP_ADDRESS.matches(str(address))
    assert values.IP_ADDRESS.matches(address)


@given(st.one_of(text_values, st.from_regex(r"[0-9a-f:.]{2,20}", fullmatch=True)))
def test_ip_detector_agrees_with_ipaddress_on_text(value: str) -> None:
    """On random text the IP detector is the standard library's verdict."""
    assert values.IP_ADDRESS.matches(value) == _reference_ip(value)


def _national_id_valid(text: str) -> bool:
    return any(module.is_valid(text) for module in values.NATIONAL_IDS)


ids = st.one_of(
    st.from_regex(r"[0-9]{9}", fullmatch=True),
    st.from_regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
    text_values,
)


@given(ids)
def test_national_id_detector_agrees_with_stdnum(value: str) -> None:
    """On digit runs shaped like BSNs and SSNs and on random text, the national-id detector is
    the verdict of python-stdnum's national-id modules."""
    assert values.NATIONAL_ID.matches(value) == _national_id_valid(value.strip())


# secrets ---------------------------------------------------------------------------------------


def _django_pbkdf2(password: str, salt: str) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"pbkdf2_sha256$1000${salt}${base64.b64encode(digest).decode()}"


PASSWORD_HASHES = (
    "$2b$12$KIXQJQ0q0G6uJ9vY3aD9WeE7yq5lYQnVqR7h3oQGmRjUo5a1b2c3d",
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    "$6$rounds=5000$saltsalt$" + "a" * 86,
    "$pbkdf2-sha256$29000$N2bMWYvx3vs$QL2fZ0cY8f2yYw1pVjG3l1q5uYqHlXj1dY3h1K1e2Xc",
    _django_pbkdf2("hunter2", "abcdefgh"),
)


@pytest.mark.parametrize("value", PASSWORD_HASHES)
def test_password_hashes_alone_make_a_secret(value: str) -> None:
    """bcrypt, argon2, sha-crypt and PBKDF2 hashes are excluded secrets whatever the column is
    called, and a secret alone is not personal data to export."""
    result = classify_column("things", "col", "varchar(255)", [value] * 5)
    assert result.categories == ("user.authorization.password",)
    assert result.exclude
    assert not result.personal


def test_jwts_alone_make_a_secret() -> None:
    """Signed JWTs (made with joserfc) are excluded credentials whatever the column is called."""
    key = OctKey.generate_key(256)
    tokens = [jwt.encode({"alg": "HS256"}, {"sub": str(n)}, key) for n in range(5)]
    result = classify_column("things", "col", "text", tokens)
    assert result.categories == ("user.authorization.credentials",)
    assert result.exclude


@pytest.mark.parametrize("make", [secrets.token_urlsafe, secrets.token_hex])
def test_random_tokens_confirm_a_token_name_only(make: Callable[[int], str]) -> None:
    """Random tokens confirm a column named as a token; a nameless column of them proposes
    nothing (hex digests and ids look the same)."""
    tokens = [make(32) for _ in range(20)]
    named = classify_column("sessions", "refresh_token", "text", tokens)
    assert named.exclude
    assert "random-looking tokens" in named.reasons[0]
    assert classify_column("files", "col", "text", tokens).categories == ()


# names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "sql_type", "category"),
    [
        ("users", "email", "varchar(255)", "user.contact.email"),
        ("users", "email_address", "text", "user.contact.email"),
        ("users", "EmailAddr", "nvarchar(100)", "user.contact.email"),
        ("users", "e_mail", "text", "user.contact.email"),
        ("users", "emailaddress", "text", "user.contact.email"),
        ("users", "phoneNumber", "text", "user.contact.phone_number"),
        ("users", "mobile", "character varying", "user.contact.phone_number"),
        ("users", "tel", "text", "user.contact.phone_number"),
        ("users", "fax", "text", "user.contact.fax_number"),
        ("users", "dob", "date", "user.demographic.date_of_birth"),
        ("users", "DateOfBirth", "datetime", "user.demographic.date_of_birth"),
        ("users", "birth_date", "date", "user.demographic.date_of_birth"),
        ("accounts", "iban", "varchar(34)", "user.financial.bank_account"),
        ("payments", "card_number", "text", "user.financial.credit_card"),
        ("users", "ssn", "char(11)", "user.government_id.national_identification_number"),
        ("users", "national_id", "text", "user.government_id.national_identification_number"),
        ("users", "passport_no", "text", "user.government_id.passport_number"),
        ("logins", "ip", "inet", "user.device.ip_address"),
        ("events", "client_ip_address", "varchar(45)", "user.device.ip_address"),
        ("events", "remoteAddr", "text", "user.device.ip_address"),
        ("users", "first_name", "text", "user.name.first"),
        ("users", "FirstName", "text", "user.name.first"),
        ("users", "surname", "text", "user.name.last"),
        ("customers", "name", "text", "user.name"),
        ("orders", "recipient_name", "text", "user.name"),
        ("users", "username", "text", "user.account.username"),
        ("addresses", "street", "text", "user.contact.address.street"),
        ("users", "address_line1", "text", "user.contact.address.street"),
        ("users", "zip", "varchar(10)", "user.contact.address.postal_code"),
        ("customers", "city", "text", "user.contact.address.city"),
        ("orders", "shipping_city", "text", "user.contact.address.city"),
        ("users", "gender", "text", "user.demographic.gender"),
        ("users", "password_hash", "varchar(60)", "user.authorization.password"),
        ("users", "passwd", "text", "user.authorization.password"),
        ("api_keys", "api_key", "text", "user.authorization.credentials"),
        ("users", "apiKey", "text", "user.authorization.credentials"),
        ("sessions", "session_token", "uuid", "user.authorization.credentials"),
        ("users", "totp_secret", "bytea", "user.authorization.credentials"),
    ],
)
def test_names_propose_categories(table: str, column: str, sql_type: str, category: str) -> None:
    """Names written every way propose their category without any sample, with the name as the
    only reason."""
    result = classify_column(table, column, sql_type, [])
    assert result.categories == (category,)
    assert result.reasons[0].startswith("the name reads as")
    assert result.exclude == (category in SECRET_CATEGORIES)
    assert result.personal == (category not in SECRET_CATEGORIES)


@pytest.mark.parametrize(
    ("table", "column", "sql_type"),
    [
        ("users", "email_verified", "boolean"),
        ("users", "email", "tinyint(1)"),  # MySQL's boolean
        ("users", "email_count", "integer"),
        ("users", "password_changed_at", "timestamp with time zone"),
        ("users", "password_reset_required", "bool"),
        ("oauth_tokens", "token_type", "text"),
        ("users", "first_seen", "timestamp"),
        ("users", "last_login", "timestamp"),
        ("products", "name", "text"),
        ("companies", "company_name", "text"),
        ("stores", "city", "text"),
        ("stores", "latitude", "double precision"),
        ("users", "secretary_notes", "text"),
        ("users", "mobile_app_version", "text"),
        ("users", "api_key_id", "integer"),
        ("users", "birth_place", "text"),
        ("users", "class_name", "text"),  # `ssn` inside a word is not a social security number
        ("users", "business_name", "text"),
        ("users", "tokens_used", "integer"),
        ("users", "mail_server", "text"),
        ("ssh_keys", "key_fingerprint", "text"),
        ("files", "content_hash", "text"),
        ("networks", "ip_range", "cidr"),
        ("orders", "id", "integer"),
        ("orders", "created_at", "timestamp"),
        ("orders", "total", "numeric(10,2)"),
    ],
)
def test_names_that_are_not_personal(table: str, column: str, sql_type: str) -> None:
    """Flags, counts and timestamps about a value, things that are not people's, and names that
    merely contain a keyword propose nothing."""
    result = classify_column(table, column, sql_type, [])
    assert result == ColumnClass((), False, (), False)


@pytest.mark.parametrize(
    ("sql_type", "family"),
    [
        ("VARCHAR(255)", "text"),
        ("character varying", "text"),
        ("TINYINT(1)", "bool"),
        ("tinyint(4)", "number"),
        ("timestamp with time zone", "date"),
        ("DATETIME", "date"),
        ("inet", "inet"),
        ("uuid", "uuid"),
        ("jsonb", "json"),
        ("bytea", "binary"),
        ("VARBINARY(16)", "binary"),
        ("NUMERIC(10, 2)", "number"),
        ("interval", "other"),
        ("point", "other"),
        ("text[]", "other"),
        ("ENUM('a','b')", "text"),
        ("year", "number"),
    ],
)
def test_sql_family(sql_type: str, family: str) -> None:
    """Type names as SQLite, PostgreSQL and MariaDB spell them fall in the right family."""
    assert sql_family(sql_type) == family


# names and values together -------------------------------------------------------------------


def test_values_confirm_a_name_and_quote_counts() -> None:
    """Values that match strengthen the name's reason with counts."""
    samples = ["ann@example.com", "bob@example.org", None, "", "not an address"] * 2
    result = classify_column("users", "email", "text", samples)
    assert result.categories == ("user.contact.email",)
    assert result.reasons == (
        "the name reads as an e-mail address, and 4 of 6 non-null samples are valid e-mail"
        " addresses (email-validator, no DNS)",
    )


def test_values_that_do_not_match_leave_the_name_weak() -> None:
    """A named column whose values do not match keeps the name's category, saying so."""
    result = classify_column("users", "iban", "text", ["n/a", "unknown", "none"])
    assert result.categories == ("user.financial.bank_account",)
    assert "only 0 of 3" in result.reasons[0]
    assert "the name alone proposes it" in result.reasons[0]


def test_values_overrule_a_secret_name() -> None:
    """`password_reset_email` holding addresses is an e-mail column, not a secret."""
    result = classify_column("users", "password_reset_email", "text", ["a@example.com"] * 5)
    assert result.categories == ("user.contact.email",)
    assert not result.exclude
    assert result.personal


def test_dates_of_birth_need_plausible_years() -> None:
    """Birth dates within 120 years before `today` confirm a birth-date name; future dates and
    implausibly old ones do not, and no date column is a birth date by its values alone."""
    plausible = [date(1950, 1, 2), datetime(1990, 5, 6, 0, 0), "1985-07-08"]
    confirmed = classify_column("users", "dob", "date", plausible, today=TODAY)
    assert "3 of 3 non-null samples are dates" in confirmed.reasons[0]
    unlikely = [date(2027, 1, 1), date(1890, 1, 1), "soon"]
    weak = classify_column("users", "dob", "date", unlikely, today=TODAY)
    assert "only 0 of 3" in weak.reasons[0]
    assert classify_column("users", "created", "date", plausible, today=TODAY).categories == ()


def test_values_alone_propose_categories() -> None:
    """A column named for nothing is classified by values matching in at least 80% of samples:
    IBANs, card numbers, international phone numbers and IP addresses."""
    cases = {
        "user.financial.bank_account": ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32"],
        "user.financial.credit_card": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
        "user.contact.phone_number": ["+44 20 7946 0958", "+1 650-253-0000"],
        "user.device.ip_address": ["192.0.2.1", "2001:db8::1"],
    }
    for category, samples in cases.items():
        result = classify_column("things", "col", "text", samples * 3)
        assert result.categories == (category,), category
        assert result.personal
        assert not result.exclude
        assert "6 of 6 non-null samples" in result.reasons[0]


def test_few_samples_alone_are_no_evidence() -> None:
    """Two addresses in a nameless column are too few to propose anything."""
    assert classify_column("things", "col", "text", ["a@example.com"] * 2).categories == ()


def test_a_large_sample_is_read_and_validated_within_the_budgets() -> None:
    """A thousand addresses: the classifier reads an even spread of 250, all have their shape
    tested, the validator checks an even spread of 32 of those, and the reason says so."""
    samples = [f"user{n}@example.com" for n in range(1000)]
    measured = values.measure(values.EMAIL, samples)
    assert (measured.total, measured.shaped, measured.checked) == (1000, 1000, 32)
    result = classify_column("things", "col", "text", [None, *samples])
    assert result.reasons == (
        "250 of 250 non-null samples look like valid e-mail addresses and 32 of 32 of those"
        " checked are (email-validator, no DNS)",
    )


def test_a_column_without_the_shape_stops_after_the_prefix() -> None:
    """When most of the first 50 values lack a detector's shape the rest are not read, so a
    text column that matches nothing costs 50 shape tests a detector."""
    samples = ["plain words"] * 60 + ["a@example.com"] * 940
    assert values.measure(values.EMAIL, samples).total == values.PREFIX


# samples never surface -----------------------------------------------------------------------

distinctive = st.text(alphabet=string.ascii_letters + string.digits + "@.+-", min_size=8)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(
    samples=st.lists(st.one_of(st.emails(), distinctive, cards, ibans), min_size=1, max_size=30),
    column=st.sampled_from(["email", "iban", "card_number", "phone", "notes", "token", "ssn"]),
)
def test_no_sample_appears_in_reasons_or_logs(
    samples: list[str], column: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the samples and the column, no sample value appears in a reason or in any log
    record at any level."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = classify_column("users", column, "text", samples)
    written = " ".join(result.reasons) + caplog.text
    for sample in samples:
        assert sample not in written


any_value = st.one_of(
    st.none(), st.text(), st.integers(), st.floats(), st.binary(), st.booleans(), st.dates(),
    st.datetimes(), st.decimals(), st.uuids(), st.ip_addresses(), st.emails(), cards, ibans,
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()),
)  # fmt: skip
sql_types = st.one_of(
    st.sampled_from(["text", "varchar(255)", "integer", "boolean", "date", "timestamp", "bytea",
                     "inet", "uuid", "jsonb", "numeric(10,2)", "TINYINT(1)"]),
    st.text(max_size=20),
)  # fmt: skip


@given(st.text(max_size=30), st.text(max_size=30), sql_types, st.lists(any_value, max_size=80))
def test_any_column_is_classified_consistently(
    table: str, column: str, sql_type: str, samples: list[object]
) -> None:
    """Whatever the names, type and values (huge integers, bytes, JSON, floats...), the
    classifier answers without raising, with known categories, one reason at least for each
    proposal, `exclude` exactly for secrets and `personal` exactly for the rest."""
    result = classify_column(table, column, sql_type, samples, today=TODAY)
    known = {rule.category for rule in names.RULES} | {d.category for d in values.DETECTORS}
    assert set(result.categories) <= known | {values.birth_date(TODAY).category}
    assert len(result.reasons) >= len(result.categories)
    assert result.exclude == bool(set(result.categories) & SECRET_CATEGORIES)
    assert result.personal == bool(set(result.categories) - SECRET_CATEGORIES)


def test_a_measure_that_gave_up_says_how_many_it_read() -> None:
    """A named column whose first 50 values lack the shape says it read only those."""
    samples = ["n/a"] * 200
    result = classify_column("accounts", "iban", "text", samples)
    assert "only 0 of the first 50 non-null samples" in result.reasons[0]


def test_integers_too_long_to_print_are_no_card_numbers() -> None:
    """A numeric column of integers longer than Python prints by default is read, not raised on."""
    result = classify_column("payments", "card_number", "numeric", [10**5000] * 5)
    assert "only 0 of 5" in result.reasons[0]
