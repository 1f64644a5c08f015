"""Where personal data sits in what the pipeline reads from Genesys Cloud, by class, in one place.

Each class has one setting, `GENESYS_PII_<CLASS>` (genesys_pipeline/settings.py): `keep` the values,
`hash` them with a keyed hash (HMAC-SHA256; the key is the secret `GENESYS_PII_HASH_KEY`), or `drop`
them. steps/privacy.py applies the setting to every conversation record before the raw file is
written, and to the dimension entities before their rows are built, so no later stage, file, object or
table ever holds an original value. docs/privacy.md is the user's view of this module.

A hashed value is `hmac-sha256:` and 64 hex digits. The hash is computed on the normalised value (see
each class), with no per-class salt, so one customer's number hashes the same in `ani`, `addressFrom`,
`callbackNumbers` and a `participantName` that holds it: joins and distinct counts still work.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping, Optional

KEEP, HASH, DROP = "keep", "hash", "drop"
MODES = (KEEP, HASH, DROP)
HASH_PREFIX = "hmac-sha256:"
HASH_KEY_VARIABLE = "GENESYS_PII_HASH_KEY"
HASH_KEY_MIN_LENGTH = 32


@dataclasses.dataclass(frozen=True)
class PersonalDataClass:
    name: str  # the field of PersonalDataPolicy
    variable: str  # its setting
    what: str  # for the docs and the error messages
    normalisation: str  # what is hashed: the same person gives the same hash however the value was written


PHONE_NUMBERS = PersonalDataClass(
    "phone_numbers", "GENESYS_PII_PHONE_NUMBERS",
    "customers' phone numbers and the other contact addresses of sessions that are not e-mail (SMS and "
    "messaging handles), and the contact centre's own numbers in the same fields",
    "a `tel:`, `sip:` or `sips:` scheme, a `;parameter` tail and a SIP `@host` are removed; a value that is "
    "then a phone number (digits with `+ - . ( ) /` and spaces, at least 3 digits) is reduced to its digits "
    "(`tel:+1 (312) 555-0100` and `13125550100` hash alike); any other address is hashed as written, "
    "trimmed",
)  # fmt: skip
EMAIL_ADDRESSES = PersonalDataClass(
    "email_addresses", "GENESYS_PII_EMAIL_ADDRESSES",
    "the addresses of e-mail sessions (the customer's and the contact centre's)",
    "trimmed, a `mailto:` removed, `Name <address>` reduced to the address, lower-cased",
)
CUSTOMER_NAMES = PersonalDataClass(
    "customer_names", "GENESYS_PII_CUSTOMER_NAMES",
    "the names customers and external parties give or are shown under",
    "Unicode NFC, runs of white space made one space, trimmed, case-folded",
)
EMPLOYEE_EMAILS = PersonalDataClass(
    "employee_emails", "GENESYS_PII_EMPLOYEE_EMAILS",
    "users' e-mail addresses and user names (in Genesys Cloud the user name is the login e-mail)",
    "as for e-mail addresses",
)
FREE_TEXT = PersonalDataClass(
    "free_text", "GENESYS_PII_FREE_TEXT",
    "text that people typed and that can hold anything: participant attribute values (set by flows, "
    "scripts and integrations: account numbers, CRM data), agents' wrap-up notes, e-mail subjects",
    "none: hashed exactly as written",
)
CLASSES: tuple[PersonalDataClass, ...] = (PHONE_NUMBERS, EMAIL_ADDRESSES, CUSTOMER_NAMES, EMPLOYEE_EMAILS, FREE_TEXT)


@dataclasses.dataclass(frozen=True)
class PersonalDataPolicy:
    """What to do with each class: keep, hash or drop. The key is not here: it is a secret, held by the
    resource and handed to the step only."""

    phone_numbers: str = KEEP
    email_addresses: str = KEEP
    customer_names: str = KEEP
    employee_emails: str = KEEP
    free_text: str = KEEP

    def mode(self, personal_class: PersonalDataClass) -> str:
        return getattr(self, personal_class.name)

    @property
    def hashes(self) -> bool:
        return any(self.mode(c) == HASH for c in CLASSES)

    @property
    def keeps_everything(self) -> bool:
        return all(self.mode(c) == KEEP for c in CLASSES)

    def as_dict(self) -> dict[str, str]:
        """For manifests and metadata: what was done to each class (never the key)."""
        return {c.name: self.mode(c) for c in CLASSES}


# ##### CONVERSATION RECORDS

Level = Literal["participant", "session", "flow", "segment", "attributes"]
# How a field's value is classified:
#   fixed            always `personal_class`
#   address          an e-mail address on e-mail sessions, a phone number (or other address) on the others
#   number_or_name   a phone number when the value is one, a customer name otherwise (Genesys puts the
#                    caller's number in a voice customer's participantName)
#   number           a phone number when the value is one; anything else is not personal data (a queue id)
Rule = Literal["fixed", "address", "number_or_name", "number"]
CUSTOMER_PURPOSES = ("customer", "external")
_PATH_PREFIX: Mapping[str, str] = {
    "participant": "participants[].",
    "session": "participants[].sessions[].",
    "flow": "participants[].sessions[].flow.",
    "segment": "participants[].sessions[].segments[].",
    "attributes": "participants[].",
}


@dataclasses.dataclass(frozen=True)
class RecordField:
    level: Level
    key: str
    rule: Rule
    personal_class: Optional[PersonalDataClass] = None  # for `fixed`
    purposes: Optional[tuple[str, ...]] = None  # only on participants with these purposes (None: all)

    @property
    def path(self) -> str:
        """The field's place in a conversation record, as docs/privacy.md writes it."""
        return _PATH_PREFIX[self.level] + self.key

    @property
    def scope(self) -> str:
        """Which values of the field the rule covers ("" for all), for the docs."""
        if self.level == "attributes":
            return "the values (the keys are kept)"
        return "of customers and external parties" if self.purposes else ""


def _fixed(level: Level, key: str, personal_class: PersonalDataClass, purposes: Optional[tuple[str, ...]] = None) -> RecordField:
    return RecordField(level, key, "fixed", personal_class, purposes)


RECORD_FIELDS: tuple[RecordField, ...] = (
    RecordField("participant", "participantName", "number_or_name", purposes=CUSTOMER_PURPOSES),
    _fixed("attributes", "attributes", FREE_TEXT),
    _fixed("session", "ani", PHONE_NUMBERS),
    _fixed("session", "dnis", PHONE_NUMBERS),
    _fixed("session", "sessionDnis", PHONE_NUMBERS),
    _fixed("session", "callbackNumbers", PHONE_NUMBERS),
    RecordField("session", "remote", "number_or_name"),
    RecordField("session", "addressFrom", "address"),
    RecordField("session", "addressTo", "address"),
    RecordField("session", "addressSelf", "address"),
    RecordField("session", "addressOther", "address"),
    RecordField("session", "destinationAddresses", "address"),
    _fixed("session", "cc", EMAIL_ADDRESSES),
    _fixed("session", "bcc", EMAIL_ADDRESSES),
    _fixed("session", "remoteNameDisplayable", CUSTOMER_NAMES),
    _fixed("session", "callbackUserName", CUSTOMER_NAMES),
    RecordField("flow", "entryReason", "number"),
    RecordField("flow", "transferTargetAddress", "number"),
    _fixed("segment", "wrapUpNote", FREE_TEXT),
    _fixed("segment", "subject", FREE_TEXT),
)


def fields_at(level: Level) -> tuple[RecordField, ...]:
    return tuple(f for f in RECORD_FIELDS if f.level == level)


# ##### DIMENSION ENTITIES: per dimension table, the entity fields (as the API names them) and their class

ENTITY_FIELDS: Mapping[str, tuple[tuple[str, PersonalDataClass], ...]] = {
    "dim_users": (("email", EMPLOYEE_EMAILS), ("username", EMPLOYEE_EMAILS)),
}


def where_each_class_is() -> dict[str, list[tuple[str, str]]]:
    """Class name -> (place, which values) for every place the class is found. docs/privacy.md lists
    the same places under each class's setting; a test compares them."""
    places: dict[str, list[tuple[str, str]]] = {c.name: [] for c in CLASSES}

    def add(personal_class: PersonalDataClass, field: RecordField, condition: str = "") -> None:
        places[personal_class.name].append((field.path, "; ".join(n for n in (field.scope, condition) if n)))

    for field in RECORD_FIELDS:
        if field.rule == "fixed":
            assert field.personal_class is not None
            add(field.personal_class, field)
        elif field.rule == "address":
            add(EMAIL_ADDRESSES, field, "on e-mail sessions")
            add(PHONE_NUMBERS, field, "on other sessions")
        else:
            add(PHONE_NUMBERS, field, "when it is a phone number")
            if field.rule == "number_or_name":
                add(CUSTOMER_NAMES, field, "when it is not a phone number")
    for table, fields in ENTITY_FIELDS.items():
        for key, personal_class in fields:
            places[personal_class.name].append((f"{table.upper()}.{key}", ""))
    return places
