"""What a column's name says it holds: the name split into words, matched against rules that
each propose one Fides data category.

Names are written every way (`email_address`, `EmailAddr`, `e_mail`, `emailaddress`), so a rule
has two kinds of keyword: `contains` keywords, distinctive enough to be found anywhere in the
name with its separators removed (`email`, `firstname`, `password`), and `words` keywords,
short or ambiguous, that must be whole words of the name, adjacent words joined (`ip`, `dob`,
`ssn`, `e mail`). A rule with `person_only` applies only in a table that is about people (its
name says user, customer, member...) or to a column qualified as a person's (`home_city`,
`billing_country`): a product's `name` or a store's `city` is not personal data. `unless`
words veto the rule (`email_verified`, `token_type`). The first matching rule wins, so the
order below settles overlaps (`email_address` is an e-mail, not a street address).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

PERSON_TABLE_WORDS = frozenset({
    "user", "person", "people", "customer", "member", "employee", "staff", "contact",
    "client", "patient", "profile", "subscriber", "student", "account", "author", "applicant",
    "guest", "visitor", "address", "recipient", "owner", "buyer", "seller", "driver",
    "passenger",
})  # fmt: skip
"""Words in a table's name (singular or plural) that say its rows are people or their
addresses."""

PERSON_QUALIFIERS = frozenset({
    "home", "shipping", "billing", "delivery", "mailing", "residence", "residential", "private",
    "personal", "birth",
})  # fmt: skip
"""Words in a column's name that say the value is a person's (`home_city`)."""

FLAG_WORDS = frozenset({
    "verified", "confirmed", "validated", "count", "status", "type", "kind", "template",
    "subject", "body", "enabled", "opt", "optin", "optout", "consent", "sent", "bounced", "at",
    "flag", "is", "has", "format", "provider", "changed", "updated", "expires", "expiry",
    "expired", "required", "reset", "length", "policy", "hint", "strength",
})  # fmt: skip
"""Words that make a column about a value rather than the value (`email_verified`,
`password_changed_at`, `token_type`)."""


TEXT = frozenset({"text", "json", "other"})
"""The SQL type families (`classify.sql_family`) a name rule applies to unless it says more: a
boolean `email` or a timestamp `password_changed` is not the value its name suggests."""


@dataclass(frozen=True)
class NameRule:
    """Names that propose `category` for columns of the SQL type families `types`; `noun`
    words the reason ("the name reads as an e-mail address")."""

    category: str
    noun: str
    contains: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    person_only: bool = False
    unless: frozenset[str] = FLAG_WORDS
    secret: bool = False
    whole: bool = False  # `words` must be the whole name (a bare `name`)
    types: frozenset[str] = TEXT


@dataclass(frozen=True)
class NameHint:
    """The rule a column's name matched, and the reason in words."""

    rule: NameRule
    reason: str


def words(name: str) -> tuple[str, ...]:
    """A name's words, lower case: `EmailAddr` -> (email, addr), `ip_address2` -> (ip,
    address, 2), `DOB` -> (dob,)."""
    return tuple(word.lower() for word in _WORD.findall(name))


def _phrases(parts: tuple[str, ...]) -> set[str]:
    """Every run of up to three adjacent words, as written with spaces and joined."""
    found: set[str] = set()
    for start in range(len(parts)):
        for length in (1, 2, 3):
            run = parts[start : start + length]
            if len(run) == length:
                found.add(" ".join(run))
                found.add("".join(run))
    return found


_SECRET_UNLESS = (FLAG_WORDS - {"reset"}) | {"id"}

RULES: tuple[NameRule, ...] = (
    # secrets first: a password_reset_token is a token, whatever else its name says
    NameRule(
        "user.authorization.password", "a password",
        contains=("password", "passwd", "passphrase", "passwort", "motdepasse"),
        words=("pwd", "pass", "pw", "pass hash", "pw hash"), secret=True, unless=_SECRET_UNLESS,
        types=TEXT | {"binary"},
    ),
    NameRule(
        "user.authorization.credentials", "a secret or token",
        contains=("token", "clientsecret", "secretkey", "sharedsecret", "apikey", "privatekey",
                  "accesskey", "sessionkey", "signingkey", "credential", "totp", "recoverycode",
                  "backupcode"),
        words=("secret", "otp", "salt", "pin", "api key"), secret=True,
        unless=_SECRET_UNLESS, types=TEXT | {"binary", "uuid"},
    ),
    NameRule(
        "user.contact.email", "an e-mail address",
        contains=("email",), words=("e mail", "mail", "mail address"),
        unless=FLAG_WORDS | {"server", "host", "port", "queue", "domain"},
    ),
    NameRule(
        "user.contact.fax_number", "a fax number", contains=("fax",), types=TEXT | {"number"}
    ),
    NameRule(
        "user.contact.phone_number", "a phone number",
        contains=("phone", "msisdn", "handynummer", "cellular"),
        words=("tel", "cell", "mobile", "telefon", "telefono", "gsm"),
        unless=FLAG_WORDS | {"app", "version", "os", "platform", "device", "model"},
        types=TEXT | {"number"},
    ),
    NameRule(
        "user.device.ip_address", "an IP address",
        contains=("ipaddress", "ipaddr", "remoteaddr", "clientaddr"),
        words=("ip", "ipv4", "ipv6", "inet", "remote addr"), types=TEXT | {"inet", "number"},
        unless=FLAG_WORDS | {"range", "allowlist", "whitelist", "blocklist", "version"},
    ),
    NameRule(
        "user.device.device_id", "a device identifier",
        contains=("macaddress", "deviceid", "imei", "advertisingid", "idfa", "pushtoken"),
        words=("mac", "udid"), types=TEXT | {"inet", "uuid"},
    ),
    NameRule(
        "user.financial.bank_account", "a bank account",
        contains=("iban", "bankaccount", "accountnumber", "sortcode", "routingnumber"),
        words=("acct no", "account no", "bban"), types=TEXT | {"number"},
    ),
    NameRule(
        "user.financial.credit_card", "a card number",
        contains=("creditcard", "cardnumber", "cardno", "ccnumber", "debitcard"),
        words=("pan", "card", "cc num"),
        unless=FLAG_WORDS
        | {"brand", "network", "id", "design", "game", "holder", "name", "expiry", "exp"},
        types=TEXT | {"number"},
    ),
    NameRule(
        "user.government_id.passport_number", "a passport number", contains=("passport",)
    ),
    NameRule(
        "user.government_id.drivers_license_number", "a driver's licence number",
        contains=("driverslicen", "driverlicen", "drivinglicen", "licencenumber",
                  "licensenumber"),
    ),
    NameRule(
        "user.government_id.national_identification_number", "a national identity number",
        contains=("socialsecurity", "nationalid", "nationalidentification",
                  "personnummer", "taxid", "taxnumber", "steuerid", "fodselsnummer",
                  "codicefiscale", "pesel", "insurancenumber", "personalnumber",
                  "personalidentitynumber", "citizenid", "identitynumber"),
        words=("ssn", "nin", "nino", "bsn", "sin", "tin", "cpr", "hetu", "nir", "dni", "nif", "nie",
               "cpf", "aadhaar", "curp", "rrn", "niss", "pps", "idnr"),
        types=TEXT | {"number"},
    ),
    NameRule(
        "user.government_id", "a government identifier",
        contains=("governmentid", "idcard", "idnumber", "identitycard", "identitydocument"),
        types=TEXT | {"number"},
    ),
    NameRule(
        "user.demographic.date_of_birth", "a date of birth",
        contains=("birthdate", "dateofbirth", "birthday", "birthdt", "geburtsdatum"),
        words=("dob", "born", "born on", "birth"),
        unless=FLAG_WORDS | {"place", "country", "city", "name", "town"},
        types=TEXT | {"date", "number"},
    ),
    NameRule("user.account.username", "a user name",
             contains=("username", "loginname", "screenname", "nickname"),
             words=("login", "handle")),
    NameRule("user.name.first", "a first name",
             contains=("firstname", "givenname", "forename", "vorname", "prenom"),
             words=("fname",)),
    NameRule("user.name.last", "a last name",
             contains=("lastname", "surname", "familyname", "nachname", "maidenname"),
             words=("lname",)),
    NameRule("user.name", "a person's name", words=("name",), whole=True, person_only=True),
    NameRule("user.name", "a person's name",
             contains=("fullname", "displayname", "middlename", "personname",
                       "contactname", "customername", "holdername", "recipientname")),
    NameRule("user.contact.address.postal_code", "a postal code",
             contains=("postcode", "postalcode", "zipcode", "postleitzahl"),
             words=("zip", "plz", "postal", "zip4"), types=TEXT | {"number"}),
    NameRule("user.contact.address.street", "a street address",
             contains=("street", "addressline", "streetaddress", "housenumber", "strasse"),
             words=("address", "addr", "address 1", "address 2", "line 1", "line 2"),
             unless=FLAG_WORDS | {"web", "url", "wallet", "contract", "mac", "ip", "email"}),
    NameRule("user.contact.address.city", "a city", words=("city", "town"),
             person_only=True),
    NameRule("user.contact.address.state", "a state or province",
             words=("province", "county"), person_only=True),
    NameRule("user.contact.address.country", "a country", words=("country",),
             person_only=True),
    NameRule("user.location.precise", "a precise location",
             words=("latitude", "longitude", "lat", "lng", "lon", "geo", "geolocation",
                    "coordinates", "geopoint"), person_only=True, types=TEXT | {"number"}),
    NameRule("user.demographic.gender", "a gender", words=("gender", "sex"),
             types=TEXT | {"number"}),
    NameRule("user.demographic.race_ethnicity", "race or ethnicity",
             words=("race", "ethnicity", "ethnic origin")),
    NameRule("user.demographic.religious_belief", "a religion",
             words=("religion", "religious", "faith")),
    NameRule("user.demographic.marital_status", "a marital status",
             contains=("maritalstatus", "familienstand"), words=("marital",),
             unless=FLAG_WORDS - {"status"}),
    NameRule("user.demographic.sexual_orientation", "a sexual orientation",
             contains=("sexualorientation",)),
    NameRule("user.demographic.political_opinion", "a political opinion",
             contains=("political", "partyaffiliation")),
    NameRule("user.health_and_medical", "health data",
             contains=("diagnos", "medical", "allerg", "medication", "disability"),
             words=("health", "condition"), person_only=True, types=TEXT | {"binary"}),
    NameRule("user.biometric", "biometric data",
             contains=("fingerprint", "faceprint", "biometric", "retina", "voiceprint"),
             unless=FLAG_WORDS | {"key", "ssh", "gpg", "pgp", "cert", "certificate", "device",
                                  "browser", "file", "tls"},
             types=TEXT | {"binary"}),
    NameRule("user.job_title", "a job title", contains=("jobtitle",), words=("occupation",)),
    NameRule("user.demographic.language", "a language", words=("language", "locale"),
             person_only=True),
)  # fmt: skip
"""Every name rule, in the order they are tried."""


def match_name(table: str, column: str) -> NameHint | None:
    """The first rule `column`'s name matches in `table`, or None."""
    parts = words(column)
    if not parts:
        return None
    compact = "".join(parts)
    phrases = _phrases(parts)
    person_table = any(
        {word, word.removesuffix("s"), word.removesuffix("es")} & PERSON_TABLE_WORDS
        for word in words(table)
    )
    qualified = bool(set(parts) & PERSON_QUALIFIERS)
    for rule in RULES:
        if set(parts) & rule.unless:
            continue
        if rule.person_only and not (person_table or qualified):
            continue
        if rule.whole:
            hit = " ".join(parts) in rule.words or compact in rule.contains
        else:
            hit = any(keyword in compact for keyword in rule.contains) or bool(
                phrases & set(rule.words)
            )
        if hit:
            return NameHint(rule, f"the name reads as {rule.noun}")
    return None
