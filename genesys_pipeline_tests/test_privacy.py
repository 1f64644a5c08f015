"""Personal data kept, hashed or dropped (GENESYS_PII_*, steps/privacy.py): the normalisers, the keyed
hash and which field goes to which class; the settings, the resource and the key, down to a run that
fails before its first request. The whole pipeline with hashing and dropping: test_privacy_pipeline.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genesys_pipeline.contracts.personal_data import (
    CLASSES,
    EMAIL_ADDRESSES,
    PHONE_NUMBERS,
    PersonalDataPolicy,
    where_each_class_is,
)
from genesys_pipeline.defs.partitions import is_permanent
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.resources import (
    personal_data_protection,
    production_resources,
)
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.resources.personal_data import PersonalDataProtection
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SettingsError, load_settings
from genesys_pipeline.steps.privacy import (
    PrivacyError,
    Protector,
    normalise_email,
    normalise_name,
    normalise_phone,
    phone_digits,
)
from genesys_pipeline_tests.conftest import (
    PAST_DAY,
    PRODUCTION_PLACEHOLDERS,
    genesys_for,
)

KEY = "h5-test-key-" + uuid.uuid4().hex  # 44 characters, distinctive: searched for too
DAY = PAST_DAY.isoformat()
SCHEMA = "GENESYS"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "privacy.md"


def expected_hash(normalised: str, key: str = KEY) -> str:
    """Computed here with hmac itself, not with the module under test."""
    return "hmac-sha256:" + hmac.new(key.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def every(mode: str, key: str | None = KEY) -> PersonalDataProtection:
    return PersonalDataProtection(**{c.name: mode for c in CLASSES}, hash_key=key)


# ##### NORMALISATION AND THE HASH


@pytest.mark.parametrize("written", ["tel:+13125550100", "+1 (312) 555-0100", "13125550100", "TEL:+1-312-555-0100",
                                     "sip:+13125550100@10.0.0.7;user=phone", "tel:+13125550100;ext=12"])  # fmt: skip
def test_a_phone_number_is_its_digits_however_written(written: str) -> None:
    assert normalise_phone(written) == "13125550100"
    assert phone_digits(written) == "13125550100"


def test_what_is_not_a_phone_number_is_hashed_as_written() -> None:
    assert phone_digits("Alex Morgan") is None and phone_digits("12") is None
    assert phone_digits("6f2b0f1e-9d1c-4c5e-a1f0-3b8a3f1c2d4e") is None  # a queue id in transferTargetAddress
    assert normalise_phone("  facebook-psid-abc ") == "facebook-psid-abc"


def test_emails_and_names_are_normalised() -> None:
    assert normalise_email(" Mailto:Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email('"Doe, Jane" <Jane.Doe@Example.com>') == "jane.doe@example.com"
    assert normalise_name("  Anne-Marie\n  O'NEIL ") == "anne-marie o'neil"
    assert normalise_name("Łukasz Żółć") == normalise_name("L\u0301ukasz Żółć".replace("L\u0301", "Ł"))


def test_the_hash_is_hmac_sha256_of_the_normalised_value_under_the_key() -> None:
    protector = Protector(PersonalDataPolicy(phone_numbers="hash", email_addresses="hash"), KEY)
    assert protector.value(PHONE_NUMBERS, "tel:+13125550100") == expected_hash("13125550100")
    assert protector.value(EMAIL_ADDRESSES, "Jane@Example.com") == expected_hash("jane@example.com")
    assert protector.value(PHONE_NUMBERS, ["tel:+13125550100"]) == [expected_hash("13125550100")]
    other = Protector(PersonalDataPolicy(phone_numbers="hash"), KEY + "x")
    assert other.value(PHONE_NUMBERS, "13125550100") != protector.value(PHONE_NUMBERS, "13125550100")


def _record() -> dict[str, Any]:
    return {
        "conversationId": "c-1",
        "participants": [
            {"participantName": "13125550100", "purpose": "customer", "attributes": {"AccountNumber": "ACC-1", "Intent": "billing"},
             "sessions": [{"mediaType": "voice", "ani": "tel:+13125550100", "dnis": "tel:+18005550199",
                           "remoteNameDisplayable": "Jane Doe", "segments": [{"segmentType": "interact"}]}]},
            {"participantName": "Jane Doe", "purpose": "external",
             "sessions": [{"mediaType": "email", "addressFrom": "Jane@Example.com", "addressTo": "support@example.com",
                           "segments": [{"subject": "Order 55821", "wrapUpNote": "called back"}]}]},
            {"participantName": "Support", "purpose": "acd",
             "sessions": [{"mediaType": "voice", "remote": "13125550100",
                           "flow": {"entryReason": "tel:+18005550199", "transferTargetAddress": "q-1"}}]},
            {"participantName": "Agent Smith", "purpose": "agent", "userId": "u-1",
             "sessions": [{"mediaType": "callback", "callbackNumbers": ["tel:+13125550100"], "callbackUserName": "jane doe"}]},
        ],
    }  # fmt: skip


def test_each_field_goes_to_its_class() -> None:
    record = Protector(every("hash").policy(), KEY).protect_record(_record())
    customer, external, acd, agent = record["participants"]
    phone, name = expected_hash("13125550100"), expected_hash("jane doe")
    # The caller's number in a voice customer's participantName hashes like the ANI, the remote and the callback number.
    assert customer["participantName"] == customer["sessions"][0]["ani"] == acd["sessions"][0]["remote"] == phone
    assert agent["sessions"][0]["callbackNumbers"] == [phone]
    assert customer["sessions"][0]["dnis"] == acd["sessions"][0]["flow"]["entryReason"] == expected_hash("18005550199")
    # A name, however cased, hashes alike wherever it is.
    assert external["participantName"] == customer["sessions"][0]["remoteNameDisplayable"] == name
    assert agent["sessions"][0]["callbackUserName"] == name
    assert external["sessions"][0]["addressFrom"] == expected_hash("jane@example.com")  # an e-mail session
    assert customer["attributes"] == {"AccountNumber": expected_hash("ACC-1"), "Intent": expected_hash("billing")}
    assert external["sessions"][0]["segments"][0] == {"subject": expected_hash("Order 55821"), "wrapUpNote": expected_hash("called back")}
    # Not personal data: the queue's name, a queue id as transfer target, the agent's name.
    assert acd["participantName"] == "Support" and acd["sessions"][0]["flow"]["transferTargetAddress"] == "q-1"
    assert agent["participantName"] == "Agent Smith"


def test_drop_removes_the_fields_and_one_class_leaves_the_others() -> None:
    record = Protector(every("drop", None).policy(), None).protect_record(_record())
    customer, external, acd, agent = record["participants"]
    assert "participantName" not in customer and "attributes" not in customer and "participantName" not in external
    assert customer["sessions"][0] == {"mediaType": "voice", "segments": [{"segmentType": "interact"}]}
    assert agent["sessions"][0] == {"mediaType": "callback"} and acd["participantName"] == "Support"
    only_phones = Protector(PersonalDataPolicy(phone_numbers="drop"), None).protect_record(_record())
    assert "ani" not in only_phones["participants"][0]["sessions"][0]
    assert only_phones["participants"][1]["sessions"][0]["addressFrom"] == "Jane@Example.com"
    assert only_phones["participants"][1]["participantName"] == "Jane Doe"


def test_keep_changes_nothing_and_is_not_even_called() -> None:
    protector = Protector(PersonalDataPolicy(), None)
    assert not protector.active and protector.protect_record(_record()) == _record()


def test_users_email_and_username_are_employee_emails_and_the_entity_is_copied() -> None:
    user = {"id": "u-1", "name": "Agent Smith", "email": "Agent.Smith@Example.com", "username": "agent.smith@example.com"}
    protected = Protector(PersonalDataPolicy(employee_emails="hash"), KEY).protect_entity("dim_users", user)
    assert protected["email"] == protected["username"] == expected_hash("agent.smith@example.com")
    assert protected["name"] == "Agent Smith" and user["email"] == "Agent.Smith@Example.com"
    dropped = Protector(PersonalDataPolicy(employee_emails="drop"), None).protect_entity("dim_users", user)
    assert "email" not in dropped and "username" not in dropped
    assert Protector(PersonalDataPolicy(employee_emails="hash"), KEY).protect_entity("dim_queues", {"id": "q"}) == {"id": "q"}


def test_the_docs_list_every_field_of_every_class() -> None:
    """docs/privacy.md has a section per class listing exactly the places contracts/personal_data.py has."""
    sections = re.split(r"^### ", DOCS.read_text(), flags=re.MULTILINE)
    for personal_class in CLASSES:
        (section,) = [s for s in sections if s.startswith(f"`{personal_class.variable}`")]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        places = where_each_class_is()[personal_class.name]
        assert len(rows) == len(places), personal_class.variable
        for row, (place, which) in zip(rows, places):
            assert row.startswith(f"| `{place}` | {which} |"), row


# ##### SETTINGS, THE RESOURCE AND THE KEY


def test_bad_setting_values_and_a_missing_key_fail_with_the_variable_named() -> None:
    with pytest.raises(SettingsError, match=r"GENESYS_PII_PHONE_NUMBERS must be one of keep, hash, drop, got 'hashed'"):
        load_settings({"GENESYS_PII_PHONE_NUMBERS": "hashed"})
    with pytest.raises(SettingsError, match=r"GENESYS_PII_HASH_KEY must be set .*GENESYS_PII_CUSTOMER_NAMES=hash"):
        load_settings({"GENESYS_PII_CUSTOMER_NAMES": "hash", "GENESYS_PII_HASH_KEY": " "})
    settings = load_settings({"GENESYS_PII_FREE_TEXT": "drop"})  # dropping needs no key
    assert settings.personal_data == PersonalDataPolicy(free_text="drop")
    with pytest.raises(Exception, match=r"personal_data.email_addresses \(GENESYS_PII_EMAIL_ADDRESSES\) must be one of keep, hash, drop, got 'sha'"):
        PersonalDataProtection(email_addresses="sha")


def test_the_key_is_an_env_var_of_the_resource_and_only_when_something_is_hashed(monkeypatch) -> None:
    assert personal_data_protection(load_settings({})) is None  # the default: everything kept, as before
    settings = load_settings({"GENESYS_PII_PHONE_NUMBERS": "hash", "GENESYS_PII_HASH_KEY": KEY})
    for name, value in PRODUCTION_PLACEHOLDERS.items():  # production checks its variables when it loads
        monkeypatch.setenv(name, value)
    genesys = production_resources(settings)["genesys"]
    assert genesys.personal_data.phone_numbers == "hash" and genesys.personal_data.customer_names == "keep"
    assert isinstance(genesys.personal_data.hash_key, dg.EnvVar) and genesys.personal_data.hash_key == "GENESYS_PII_HASH_KEY"
    assert KEY not in repr(genesys) and KEY not in repr(genesys.personal_data)
    dropped = personal_data_protection(load_settings({"GENESYS_PII_FREE_TEXT": "drop"}))
    assert dropped is not None and dropped.hash_key is None


@pytest.mark.slow  # a fresh interpreter loading Dagster and the definitions
def test_the_code_location_does_not_load_with_a_bad_value() -> None:
    env = dict(os.environ, GENESYS_PII_EMAIL_ADDRESSES="maybe")
    done = subprocess.run([sys.executable, "-c", "import genesys_pipeline.definitions"], env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode != 0
    assert "GENESYS_PII_EMAIL_ADDRESSES must be one of keep, hash, drop, got 'maybe'" in done.stderr


def test_a_hash_without_a_usable_key_is_a_configuration_error_that_is_not_retried() -> None:
    with pytest.raises(PrivacyError, match="GENESYS_PII_HASH_KEY is not set, but GENESYS_PII_FREE_TEXT asks for hashing") as error:
        Protector(PersonalDataPolicy(free_text="hash"), None)
    assert is_permanent(error.value)


@pytest.mark.parametrize("key", [None, "too-short-" + "k" * 12])
def test_hashing_without_a_usable_key_fails_the_run_before_any_request(emulator: EmulatorServer, tmp_path: Path, key) -> None:
    genesys = genesys_for(emulator, personal_data=PersonalDataProtection(phone_numbers="hash", hash_key=key))
    result = dg.materialize([raw_conversations], partition_key=DAY, raise_on_error=False,
                            resources={"genesys": genesys, "working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.to_string()
    problem = "is not set" if key is None else "is shorter than 32 characters"
    assert f"GENESYS_PII_HASH_KEY {problem}, but GENESYS_PII_PHONE_NUMBERS asks for hashing" in message
    assert (key or "no key") not in message
    assert not [name for name in emulator.app.stats.snapshot() if name.startswith("requests")]  # no call to Genesys
    assert not any(tmp_path.rglob("*.gz"))


def test_a_missing_key_variable_is_named_when_the_run_starts(emulator: EmulatorServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GENESYS_PII_HASH_KEY", raising=False)
    genesys = genesys_for(emulator, personal_data=PersonalDataProtection(free_text="hash", hash_key=dg.EnvVar("GENESYS_PII_HASH_KEY")))
    with pytest.raises(Exception, match="GENESYS_PII_HASH_KEY"):
        dg.materialize([raw_conversations], partition_key=DAY,
                       resources={"genesys": genesys, "working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
