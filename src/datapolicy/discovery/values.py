"""What a column's sample values look like: e-mail addresses, phone numbers, IBANs, card numbers,
national ids, IP addresses, dates of birth and secrets, each checked by a maintained library.

Every detector has two steps: a cheap shape test (a regular expression or a length check) that
the samples go through, and the library's validator (email-validator, phonenumbers,
python-stdnum, ipaddress), which is slow (up to 0.2 ms a value), so it checks at most
`VALIDATION_BUDGET` of the values that have the shape, spread evenly over them. On the ways
databases hold these values the shape test never rejects a value the validator accepts
(tests/discovery/test_classify.py proves it on generated values), so a detector's answer on one
value is the validator's.

`measure` returns counts only: the values stay here, unlogged, and a reason built from a
`Measure` quotes numbers, never a sample.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import ModuleType

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import iban, luhn
from stdnum.be import nn as be_nn
from stdnum.br import cpf as br_cpf
from stdnum.ca import sin as ca_sin
from stdnum.ch import ssn as ch_ssn
from stdnum.cz import rc as cz_rc
from stdnum.de import idnr as de_idnr
from stdnum.dk import cpr as dk_cpr
from stdnum.ee import ik as ee_ik
from stdnum.es import dni as es_dni
from stdnum.fi import hetu as fi_hetu
from stdnum.fr import nir as fr_nir
from stdnum.ie import pps as ie_pps
from stdnum.it import codicefiscale as it_codicefiscale
from stdnum.nl import bsn as nl_bsn
from stdnum.no import fodselsnummer as no_fodselsnummer
from stdnum.pl import pesel as pl_pesel
from stdnum.se import personnummer as se_personnummer
from stdnum.us import ssn as us_ssn

VALIDATION_BUDGET = 32
"""At most this many values with the shape go through a detector's validator per column."""

PREFIX = 50
"""A detector first tests this many values' shape and goes on to the rest only if at least half
of them have it: a sample in no particular order whose first 50 values mostly lack the shape is
most unlikely to reach the thresholds (one half and more), and the gate keeps the columns that
match nothing, most of a schema, cheap."""

NATIONAL_IDS: tuple[ModuleType, ...] = (
    us_ssn,
    nl_bsn,
    se_personnummer,
    dk_cpr,
    fi_hetu,
    no_fodselsnummer,
    fr_nir,
    it_codicefiscale,
    es_dni,
    de_idnr,
    be_nn,
    pl_pesel,
    ch_ssn,
    ca_sin,
    ie_pps,
    ee_ik,
    cz_rc,
    br_cpf,
)
"""python-stdnum's national identity numbers that carry a checksum or a strict format: a value
valid for any of them counts. Only a column whose name says it holds a national id is checked
(9 to 11 digits pass some checksum by chance too often to be evidence alone)."""


@dataclass(frozen=True)
class Detector:
    """One kind of value: `shape` is cheap and necessary, `validate` the library's verdict.

    `alone`: whether values matching it are evidence without the column's name saying so (an
    IBAN or an e-mail address is; a nine-digit number that passes a national-id checksum is not).
    """

    category: str
    noun: str
    validator: str
    shape: Callable[[object], str | None]
    validate: Callable[[str], bool]
    alone: bool

    def matches(self, value: object) -> bool:
        """The detector's verdict on one value: the shape, then the validator."""
        text = self.shape(value)
        return text is not None and self.validate(text)


@dataclass(frozen=True)
class Measure:
    """How many of a column's non-null samples a detector found: counts only, never values."""

    detector: Detector
    total: int
    shaped: int
    checked: int
    valid: int
    gave_up: bool = False  # only the first `PREFIX` values were read

    @property
    def fraction(self) -> float:
        """The estimated fraction of non-null samples the validator would accept."""
        if not self.total or not self.checked:
            return 0.0
        return self.shaped / self.total * self.valid / self.checked

    def reason(self) -> str:
        """The evidence in words, quoting counts."""
        noun = self.detector.noun
        samples = f"the first {self.total}" if self.gave_up else f"{self.total}"
        if self.checked == self.shaped:
            return (
                f"{self.valid} of {samples} non-null samples are {noun} ({self.detector.validator})"
            )
        return (
            f"{self.shaped} of {samples} non-null samples look like {noun} and"
            f" {self.valid} of {self.checked} of those checked are ({self.detector.validator})"
        )


def measure(detector: Detector, values: Sequence[object]) -> Measure:
    """Count the non-null `values` with the detector's shape and the validator's verdict on an
    even spread of at most `VALIDATION_BUDGET` of them; stop early when the first `PREFIX`
    values mostly lack the shape (the measure then covers only those)."""
    shaped: list[str] = []
    for index, value in enumerate(values):
        if index == PREFIX and len(shaped) * 2 < PREFIX:
            return _measured(detector, PREFIX, shaped, gave_up=True)
        text = detector.shape(value)
        if text is not None:
            shaped.append(text)
    return _measured(detector, len(values), shaped, gave_up=False)


def _measured(detector: Detector, total: int, shaped: list[str], *, gave_up: bool) -> Measure:
    count = min(len(shaped), VALIDATION_BUDGET)
    picked = [shaped[index * len(shaped) // count] for index in range(count)]
    valid = sum(1 for text in picked if detector.validate(text))
    return Measure(detector, total, len(shaped), len(picked), valid, gave_up)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip()
    return None


def _digits_text(value: object) -> str | None:
    """Text, or an integer's digits (card and id numbers are sometimes stored as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if -(10**20) < value < 10**20 else None
    return _text(value)


# e-mail ------------------------------------------------------------------------------------

_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\Z")


def _email_shape(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and _EMAIL_SHAPE.match(text) else None


def is_email(text: str) -> bool:
    """email-validator's syntax check, without DNS (no network, ever)."""
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


# phone numbers -----------------------------------------------------------------------------

_PHONE_SHAPE = re.compile(r"\+?[\d\s().\-/]{6,24}\Z")
_NOT_DIGIT = re.compile(r"[^\d]")


def _phone_shape(value: object) -> str | None:
    text = _digits_text(value)
    if text is None or not _PHONE_SHAPE.match(text):
        return None
    digits = len(_NOT_DIGIT.sub("", text))
    return text if 7 <= digits <= 15 else None


def _international_phone_shape(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and text.startswith("+") and _phone_shape(text) else None


def is_international_phone(text: str) -> bool:
    """phonenumbers: a number valid for its country, written with its country code."""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _always(text: str) -> bool:
    return True


# bank accounts and cards -------------------------------------------------------------------

_IBAN_SHAPE = re.compile(r"[A-Za-z]{2}\d{2}[A-Za-z0-9 .\-]{11,40}\Z")


def _iban_shape(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and _IBAN_SHAPE.match(text) else None


def is_iban(text: str) -> bool:
    """python-stdnum: the country's length and format, and the mod-97 check digits."""
    return bool(iban.is_valid(text))


_CARD_SHAPE = re.compile(r"[\d \-]{13,40}\Z")


def _card_shape(value: object) -> str | None:
    text = _digits_text(value)
    if text is None or not _CARD_SHAPE.match(text):
        return None
    digits = text.replace(" ", "").replace("-", "")
    return digits if 13 <= len(digits) <= 19 and digits[0] in "23456" else None


def is_card_number(text: str) -> bool:
    """python-stdnum's Luhn check on 13 to 19 digits starting with a card network's 2-6."""
    return bool(luhn.is_valid(text))


# national ids ------------------------------------------------------------------------------

_NATIONAL_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .\-/+]{5,22}\Z")


def _national_id_shape(value: object) -> str | None:
    text = _digits_text(value)
    return text if text is not None and _NATIONAL_ID_SHAPE.match(text) else None


def is_national_id(text: str) -> bool:
    """Valid for one of python-stdnum's national identity numbers in `NATIONAL_IDS`."""
    return any(module.is_valid(text) for module in NATIONAL_IDS)


# IP addresses ------------------------------------------------------------------------------

_IP_SHAPE = re.compile(r"[0-9A-Fa-f:.%\w]{2,64}\Z")


def _ip_shape(value: object) -> str | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value.ip)
    text = _text(value)
    if text is None or not _IP_SHAPE.match(text) or ("." not in text and ":" not in text):
        return None
    return text


def is_ip_address(text: str) -> bool:
    """The standard library's `ipaddress`: an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# dates of birth ----------------------------------------------------------------------------


def birth_date_shape(today: date) -> Callable[[object], str | None]:
    """A date (or ISO date text) between 120 years before `today` and `today`."""

    def shape(value: object) -> str | None:
        if isinstance(value, datetime):
            day = value.date()
        elif isinstance(value, date):
            day = value
        elif isinstance(value, str) and len(value) >= 10:
            try:
                day = date.fromisoformat(value[:10])
            except ValueError:
                return None
        else:
            return None
        return day.isoformat() if today.year - 120 <= day.year and day <= today else None

    return shape


# secrets -----------------------------------------------------------------------------------

_PASSWORD_HASH = re.compile(
    r"""(
        \$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}                      # bcrypt
      | \$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$\S+          # argon2 (PHC)
      | \$scrypt\$\S+ | \$7\$\S{10,}                              # scrypt
      | \$[156]\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{22,86}  # md5/sha crypt
      | \$pbkdf2(?:-sha\d+)?\$\d+\$\S+                            # passlib pbkdf2
      | (?:pbkdf2_sha\d+|argon2|bcrypt_sha256|bcrypt|scrypt)\$\S+   # Django
      | (?:sha1|md5)\$[^$]*\$[0-9a-f]{32,40}                      # old Django salted digests
    )\Z""",
    re.VERBOSE,
)


def _password_hash_shape(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and _PASSWORD_HASH.match(text) else None


_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*\Z")


def _jwt_shape(value: object) -> str | None:
    text = _text(value)
    return text if text is not None and _JWT_SHAPE.match(text) else None


def is_jwt(text: str) -> bool:
    """A JWT/JWS in compact form: a base64url JSON header that names an algorithm."""
    header = text.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        return False
    return b'"alg"' in decoded


_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9+/=_\-.~]{20,}\Z")


def _token_shape(value: object) -> str | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.hexlify(bytes(value)).decode() if len(value) >= 16 else None
    text = _text(value)
    return text if text is not None and _TOKEN_SHAPE.match(text) else None


def is_random_token(text: str) -> bool:
    """High-entropy text with no spaces: at least 3.5 bits a character (English words and
    repeated patterns stay below it; hex digests and base64 keys are above)."""
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return entropy >= 3.5


# the detectors -----------------------------------------------------------------------------

EMAIL = Detector(
    "user.contact.email", "valid e-mail addresses", "email-validator, no DNS",
    _email_shape, is_email, alone=True,
)  # fmt: skip
INTERNATIONAL_PHONE = Detector(
    "user.contact.phone_number", "valid international phone numbers", "phonenumbers",
    _international_phone_shape, is_international_phone, alone=True,
)  # fmt: skip
PHONE_SHAPED = Detector(
    "user.contact.phone_number", "phone-number-shaped (7 to 15 digits)",
    "digit count", _phone_shape, _always, alone=False,
)  # fmt: skip
IBAN = Detector(
    "user.financial.bank_account", "valid IBANs", "python-stdnum",
    _iban_shape, is_iban, alone=True,
)  # fmt: skip
CARD = Detector(
    "user.financial.credit_card", "Luhn-valid card numbers", "python-stdnum Luhn",
    _card_shape, is_card_number, alone=True,
)  # fmt: skip
NATIONAL_ID = Detector(
    "user.government_id.national_identification_number",
    "valid national identity numbers", "python-stdnum", _national_id_shape, is_national_id,
    alone=False,
)  # fmt: skip
IP_ADDRESS = Detector(
    "user.device.ip_address", "IP addresses", "ipaddress",
    _ip_shape, is_ip_address, alone=True,
)  # fmt: skip
PASSWORD_HASH = Detector(
    "user.authorization.password",
    "password hashes", "bcrypt, argon2, scrypt, crypt or PBKDF2 format",
    _password_hash_shape, _always, alone=True,
)  # fmt: skip
JWT = Detector(
    "user.authorization.credentials", "JSON Web Tokens", "header decoded",
    _jwt_shape, is_jwt, alone=True,
)  # fmt: skip
RANDOM_TOKEN = Detector(
    "user.authorization.credentials", "random-looking tokens", "character entropy",
    _token_shape, is_random_token, alone=False,
)  # fmt: skip

DETECTORS: tuple[Detector, ...] = (
    EMAIL,
    INTERNATIONAL_PHONE,
    PHONE_SHAPED,
    IBAN,
    CARD,
    NATIONAL_ID,
    IP_ADDRESS,
    PASSWORD_HASH,
    JWT,
    RANDOM_TOKEN,
)
"""Every detector but the date of birth's, which depends on the day (`birth_date`)."""


def birth_date(today: date) -> Detector:
    """The date-of-birth detector as of `today` (a plausible birth date, not in the future)."""
    return Detector(
        "user.demographic.date_of_birth",
        "dates within the last 120 years", "calendar", birth_date_shape(today), _always,
        alone=False,
    )  # fmt: skip
