"""Personal data kept, hashed or dropped, class by class (contracts/personal_data.py), before it is written.

`Protector(policy, key)` is built once per step. `protect_record(record)` changes a conversation record
in place (the extraction calls it on each record just before the raw file gets it: the record is not
used afterwards) and `protect_entity(table, entity)` returns a protected copy of a dimension entity.
With every class kept, the extraction skips the call altogether (`Protector.active`).

Hashing: HMAC-SHA256 of the normalised value's UTF-8 bytes under the key, written `hmac-sha256:<hex>`.
Deterministic, so equal values stay equal (joins, distinct counts); keyed, so nobody without the key can
hash the few billion possible phone numbers and look one up. Dropping removes the field from the record
(the column is NULL downstream); for participant attributes it removes the participant's attributes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Any, Callable, Mapping, Optional, Protocol

from genesys_pipeline.contracts.personal_data import (
    CLASSES,
    CUSTOMER_NAMES,
    DROP,
    EMAIL_ADDRESSES,
    EMPLOYEE_EMAILS,
    ENTITY_FIELDS,
    FREE_TEXT,
    HASH,
    HASH_KEY_MIN_LENGTH,
    HASH_KEY_VARIABLE,
    HASH_PREFIX,
    KEEP,
    PHONE_NUMBERS,
    PersonalDataClass,
    PersonalDataPolicy,
    RecordField,
    fields_at,
)
from genesys_pipeline.settings import SettingsError


class PrivacyError(SettingsError):
    """The personal-data settings cannot be applied (a hash asked for without a usable key): a
    configuration error, so the step fails at once instead of being retried."""


# ##### NORMALISATION: the same person gives the same hash however the value was written

_SCHEME = re.compile(r"^(?:tel|sips?):", re.IGNORECASE)
_PHONE_CHARACTERS = re.compile(r"^\+?[0-9+\-.()/ ]+$")
_SPACES = re.compile(r"\s+")
_ANGLE_ADDRESS = re.compile(r"<([^<>]+@[^<>]+)>\s*$")


def _without_scheme(value: str) -> tuple[str, bool]:
    value = value.strip()
    stripped = _SCHEME.sub("", value)
    if stripped == value:
        return value, False
    return stripped.split(";", 1)[0].split("@", 1)[0].strip(), True


def phone_digits(value: str) -> Optional[str]:
    """The digits of `value` if it is a phone number (a tel:/sip: URI or digits with the usual
    separators, at least 3 digits), else None."""
    bare, _ = _without_scheme(value)
    if not _PHONE_CHARACTERS.match(bare):
        return None
    digits = re.sub(r"[^0-9]", "", bare)
    return digits if len(digits) >= 3 else None


def normalise_phone(value: str) -> str:
    digits = phone_digits(value)
    if digits is not None:
        return digits
    bare, had_scheme = _without_scheme(value)
    return bare if had_scheme else value.strip()


def normalise_email(value: str) -> str:
    value = value.strip()
    if value[:7].lower() == "mailto:":
        value = value[7:]
    named = _ANGLE_ADDRESS.search(value)
    return (named.group(1) if named else value).strip().lower()


def normalise_name(value: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip().casefold()


NORMALISERS: Mapping[str, Callable[[str], str]] = {
    PHONE_NUMBERS.name: normalise_phone,
    EMAIL_ADDRESSES.name: normalise_email,
    CUSTOMER_NAMES.name: normalise_name,
    EMPLOYEE_EMAILS.name: normalise_email,
    FREE_TEXT.name: lambda value: value,
}


def keyed_hash(key: bytes, normalised: str) -> str:
    return HASH_PREFIX + hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


# ##### APPLYING THE POLICY


class Protector:
    def __init__(self, policy: PersonalDataPolicy, key: Optional[str]) -> None:
        if policy.hashes and (key is None or len(key) < HASH_KEY_MIN_LENGTH):
            hashed = ", ".join(c.variable for c in _classes_hashed(policy))
            problem = "is not set" if not key else f"is shorter than {HASH_KEY_MIN_LENGTH} characters"
            raise PrivacyError(
                f"{HASH_KEY_VARIABLE} {problem}, but {hashed} asks for hashing. Set it to a random secret of "
                f"at least {HASH_KEY_MIN_LENGTH} characters (for example the output of `openssl rand -hex 32`), "
                "kept in your secret store: it is what stops anyone from hashing every possible phone number."
            )
        self.policy = policy
        self._key = (key or "").encode("utf-8")
        self.active = not policy.keeps_everything

    def value(self, personal_class: PersonalDataClass, value: Any) -> Any:
        """The protected value (a hash, or the value itself when kept); lists element by element."""
        if isinstance(value, list):
            return [self.value(personal_class, item) for item in value]
        if value is None or value == "" or self.policy.mode(personal_class) != HASH:
            return value
        text = value if isinstance(value, str) else str(value)
        return keyed_hash(self._key, NORMALISERS[personal_class.name](text))

    def _apply(self, holder: dict[str, Any], key: str, personal_class: Optional[PersonalDataClass]) -> None:
        if personal_class is None or key not in holder:
            return
        mode = self.policy.mode(personal_class)
        if mode == DROP:
            del holder[key]
        elif mode == HASH:
            holder[key] = self.value(personal_class, holder[key])

    def _fields(self, holder: Any, fields: tuple[RecordField, ...], media_type: Any = None, purpose: Any = None) -> None:
        if not isinstance(holder, dict):
            return
        for field in fields:
            if field.key in holder and (field.purposes is None or purpose in field.purposes):
                self._apply(holder, field.key, _class_of(field, holder[field.key], media_type))

    def protect_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Apply the policy to a conversation record, in place; returns it."""
        if not self.active:
            return record
        for participant in _dicts(record.get("participants")):
            purpose = participant.get("purpose")
            self._fields(participant, _PARTICIPANT_FIELDS, purpose=purpose)
            if "attributes" in participant:
                self._attributes(participant)
            for session in _dicts(participant.get("sessions")):
                media_type = session.get("mediaType")
                self._fields(session, _SESSION_FIELDS, media_type)
                self._fields(session.get("flow"), _FLOW_FIELDS, media_type)
                for segment in _dicts(session.get("segments")):
                    self._fields(segment, _SEGMENT_FIELDS, media_type)
        return record

    def _attributes(self, participant: dict[str, Any]) -> None:
        mode = self.policy.mode(FREE_TEXT)
        if mode == DROP:
            del participant["attributes"]
        elif mode == HASH and isinstance(participant["attributes"], dict):
            participant["attributes"] = {k: self.value(FREE_TEXT, v) for k, v in participant["attributes"].items()}

    def protect_entity(self, table: str, entity: Mapping[str, Any]) -> Mapping[str, Any]:
        """A copy of a dimension entity with the policy applied (the entity itself if nothing applies)."""
        fields = ENTITY_FIELDS.get(table, ())
        if not any(self.policy.mode(c) != KEEP for _, c in fields):
            return entity
        protected = dict(entity)
        for key, personal_class in fields:
            self._apply(protected, key, personal_class)
        return protected


_PARTICIPANT_FIELDS = fields_at("participant")
_SESSION_FIELDS = fields_at("session")
_FLOW_FIELDS = fields_at("flow")
_SEGMENT_FIELDS = fields_at("segment")


def _class_of(field: RecordField, value: Any, media_type: Any) -> Optional[PersonalDataClass]:
    """The class of this value of `field` (None: not personal data), by the field's rule."""
    if field.rule == "fixed":
        return field.personal_class
    if field.rule == "address":
        return EMAIL_ADDRESSES if media_type == "email" else PHONE_NUMBERS
    is_number = isinstance(value, str) and phone_digits(value) is not None
    if field.rule == "number_or_name":
        return PHONE_NUMBERS if is_number else CUSTOMER_NAMES
    return PHONE_NUMBERS if is_number else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _classes_hashed(policy: PersonalDataPolicy) -> list[PersonalDataClass]:
    return [c for c in CLASSES if policy.mode(c) == HASH]


class ConfiguredProtection(Protocol):
    """What a step needs of the PersonalDataProtection resource."""

    hash_key: Optional[str]

    def policy(self) -> PersonalDataPolicy: ...


def protector_for(protection: Optional[ConfiguredProtection]) -> Protector:
    """The step's Protector; with no protection configured, one that keeps everything. Raises a
    PrivacyError naming GENESYS_PII_HASH_KEY when hashing has no usable key."""
    if protection is None:
        return Protector(PersonalDataPolicy(), None)
    return Protector(protection.policy(), protection.hash_key)
