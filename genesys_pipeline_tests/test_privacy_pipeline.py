"""Personal data through the real pipeline over HTTP (emulator -> raw -> flatten -> moto S3 -> fakesnow,
and the dimension tables) with every class hashed, then dropped, then kept: every working file, S3
object and Snowflake table, and the run's events, are searched for the values the emulator served
(read over HTTP first, through the Genesys client).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import pyarrow.parquet as pq
import pytest

from genesys_pipeline.contracts.paths import raw_records_path
from genesys_pipeline.contracts.personal_data import (
    CLASSES,
    CUSTOMER_NAMES,
    EMAIL_ADDRESSES,
    FREE_TEXT,
    PHONE_NUMBERS,
)
from genesys_pipeline.defs.checks import (
    api_count_close_to_extracted,
    row_counts_match_across_stages,
)
from genesys_pipeline.defs.dimensions import DIMENSION_ASSETS
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.defs.s3_conversations import s3_conversations
from genesys_pipeline.defs.snowflake_conversations import snowflake_conversations
from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline.resources.personal_data import PersonalDataProtection
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.privacy import (
    normalise_email,
    normalise_phone,
    phone_digits,
)
from genesys_pipeline_tests.conftest import PAST_DAY, genesys_for, run_query
from genesys_pipeline_tests.test_privacy import KEY, every, expected_hash

DAY = PAST_DAY.isoformat()
SCHEMA = "GENESYS"


def _strings(value: Any) -> Iterator[str]:
    """Every string in a value, JSON text included (parsed too, so an escaped value is seen as itself)."""
    if isinstance(value, str):
        yield value
        if value[:1] in ("[", "{"):
            try:
                yield from _strings(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def _decoded(name: str, data: bytes) -> Iterator[str]:
    if name.endswith(".parquet"):
        yield from _strings(pq.read_table(io.BytesIO(data)).to_pylist())
        return
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    yield text
    if name.endswith(".json"):
        yield from _strings(json.loads(text))
    elif name.endswith(".jsonl.gz"):
        for line in text.splitlines():
            yield from _strings(json.loads(line))


@pytest.fixture(scope="module")
def originals(module_emulator: EmulatorServer) -> dict[str, set[str]]:
    """The personal values of the day as the emulator serves them over HTTP (a detail job, with the
    participant attributes, and the live records), and the users' e-mail addresses, by class."""
    found: dict[str, set[str]] = {c.name: set() for c in CLASSES}
    start = datetime.combine(PAST_DAY, datetime.min.time(), tzinfo=timezone.utc)
    with genesys_for(module_emulator).get_client() as client:
        records = list(client.run_details_job(start, start + timedelta(days=1)))
        records += list(client.query_conversation_details(start, start + timedelta(days=1)))
        users = list(client.iter_users())
    for record in records:
        for participant in record["participants"]:
            customer = participant["purpose"] in ("customer", "external")
            name = participant.get("participantName")
            if customer and name:
                found[PHONE_NUMBERS.name if phone_digits(name) else CUSTOMER_NAMES.name].add(name)
            for value in (participant.get("attributes") or {}).values():
                found[FREE_TEXT.name].add(value)
            for session in participant["sessions"]:
                email = session["mediaType"] == "email"
                for key in ("ani", "dnis", "sessionDnis", "remote", "addressFrom", "addressTo"):
                    if key in session:
                        found[EMAIL_ADDRESSES.name if email and key.startswith("address") else PHONE_NUMBERS.name].add(session[key])
                found[PHONE_NUMBERS.name].update(session.get("callbackNumbers", []))
                for key in ("remoteNameDisplayable", "callbackUserName"):
                    if key in session:
                        found[CUSTOMER_NAMES.name].add(session[key])
                for segment in session.get("segments", []):
                    found[FREE_TEXT.name].update(v for k, v in segment.items() if k in ("wrapUpNote", "subject"))
    found["employee_emails"] = {u[k] for u in users for k in ("email", "username") if u.get(k)}
    # Attribute keys are kept by design (flows name them); the emulator's one over-long key is the same
    # text as its over-long payload values, so those values are searched for by their hash only.
    keys = {k for r in records for p in r["participants"] for k in (p.get("attributes") or {})}
    found[FREE_TEXT.name] = {v for v in found[FREE_TEXT.name] if len(v) >= 8 and not any(v in k for k in keys)}
    assert all(found.values()), {k: len(v) for k, v in found.items()}  # the emulator serves every class
    return found


def _leaks(text: str, originals: dict[str, set[str]]) -> set[str]:
    """Originals found anywhere in `text`. A digits-only original (a voice customer's participantName)
    must stand alone: the same digits inside a hash's hex are not it."""
    values = {v for vs in originals.values() for v in vs}
    found = {v for v in values if not v.isdigit() and v in text} | ({KEY} if KEY in text else set())
    numbers = "|".join(sorted((v for v in values if v.isdigit()), key=len, reverse=True))
    return found | set(re.findall(rf"(?<![0-9A-Za-z])(?:{numbers})(?![0-9A-Za-z])", text))


class Stack:
    """One test's bucket, database and working location over the module's moto and fakesnow."""

    def __init__(self, stack: stand_ins.LocalStack, root: Path) -> None:
        token = uuid.uuid4().hex[:8]
        self.stack, self.root, self.bucket, self.database = stack, root, f"privacy-{token}", f"PRIVACY_{token.upper()}"
        self.s3 = stand_ins.s3_resource(stack.s3_endpoint_url)
        self.s3.get_client().create_bucket(Bucket=self.bucket)
        self.snowflake = stand_ins.snowflake_resource(stack.snowflake_connection_args, self.database, SCHEMA)

    def run(self, emulator: EmulatorServer, protection: PersonalDataProtection) -> list[dg.ExecuteInProcessResult]:
        resources = {
            "genesys": genesys_for(emulator, personal_data=protection),
            "working_storage": WorkingStorage(root=str(self.root)),
            "s3": self.s3,
            "s3_publishing": S3Publishing(bucket=self.bucket, prefix="genesys/conversations"),
            "snowflake": self.snowflake,
            "snowflake_target": SnowflakeTarget(stage_aws_key_id="testing", stage_aws_secret_key="testing",
                                                staging_tables="transient"),
        }  # fmt: skip
        day = [raw_conversations, flattened_conversations, s3_conversations, snowflake_conversations,
               row_counts_match_across_stages, api_count_close_to_extracted]  # fmt: skip
        results = [dg.materialize(day, partition_key=DAY, resources=resources),
                   dg.materialize(DIMENSION_ASSETS, resources=resources)]  # fmt: skip
        assert all(result.success for result in results)
        return results

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return run_query(self.snowflake, sql, params)

    def everything(self, results: list[dg.ExecuteInProcessResult]) -> Iterator[tuple[str, Iterator[str]]]:
        """(where, its strings) for every working file, S3 object, Snowflake table and run event."""
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            yield str(path), _decoded(path.name, path.read_bytes())
        client = self.s3.get_client()
        for item in client.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            yield f"s3://{self.bucket}/{item['Key']}", _decoded(item["Key"], client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read())
        tables = self.query("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s", (SCHEMA,))
        for table in sorted(t["table_name"] for t in tables):
            yield f"Snowflake {table}", _strings(self.query(f"SELECT * FROM {table}"))
        for result in results:
            yield "the run's events", _strings([str(event) for event in result.all_events])

    def table_names(self) -> set[str]:
        return {t["table_name"] for t in self.query("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s", (SCHEMA,))}


@pytest.mark.slow
def test_with_every_class_hashed_no_original_value_is_anywhere(module_emulator, stack, tmp_path, originals) -> None:
    """A day and the dimensions with every class hashed: no value the emulator served is in any working
    file, S3 object, Snowflake table (every column, as text) or run event; neither is the key. The hashes
    are the keyed hashes of the normalised values, equal wherever the same value was."""
    lab = Stack(stack, tmp_path / "working")
    results = lab.run(module_emulator, every("hash"))
    assert {"CONVERSATIONS", "SESSIONS", "PARTICIPANTS", "SEGMENTS", "PARTICIPANT_ATTRIBUTES", "DIM_USERS"} <= lab.table_names()
    conversation_id = module_emulator.app.conversations_started(PAST_DAY)[0]
    holding_the_id = []  # the control: the search does see the values of each kind of place
    for where, strings in lab.everything(results):
        text = "\x00".join(strings)
        leaks = _leaks(text, originals)
        assert not leaks, f"{where} holds original values: {sorted(leaks)[:5]}"
        holding_the_id += [where] if conversation_id in text else []
    assert any(w.endswith(".jsonl.gz") for w in holding_the_id) and "Snowflake SESSIONS" in holding_the_id
    assert any(w.endswith("sessions.parquet") and not w.startswith("s3://") for w in holding_the_id)
    assert any(w.startswith("s3://") and "/sessions/" in w for w in holding_the_id)
    # The same customer number hashes alike: as ANI of the inbound voice session and as the customer's name.
    rows = lab.query(
        "SELECT s.ANI, s.DNIS, p.PARTICIPANT_NAME FROM SESSIONS s JOIN PARTICIPANTS p ON s.CONVERSATION_ID = p.CONVERSATION_ID "
        "AND s.PARTICIPANT_ID = p.PARTICIPANT_ID WHERE p.PURPOSE = 'customer' AND s.MEDIA_TYPE = 'voice' AND s.DIRECTION = 'inbound'"
    )
    assert rows and all(r["ani"] == r["participant_name"] and r["ani"].startswith("hmac-sha256:") for r in rows)
    served_numbers = {expected_hash(normalise_phone(v)) for v in originals[PHONE_NUMBERS.name]}
    assert {r["ani"] for r in rows} | {r["dnis"] for r in rows} <= served_numbers
    emails = lab.query("SELECT ADDRESS_FROM, ADDRESS_TO FROM SESSIONS WHERE MEDIA_TYPE = 'email' AND ADDRESS_FROM IS NOT NULL")
    served = {expected_hash(normalise_email(v)) for v in originals[EMAIL_ADDRESSES.name]}
    assert emails and {e["address_from"] for e in emails} | {e["address_to"] for e in emails} <= served
    users = lab.query("SELECT EMAIL, USERNAME, NAME FROM DIM_USERS WHERE EMAIL IS NOT NULL")
    assert users and all(u["email"] == u["username"] for u in users)  # the emulator's user name is the e-mail
    assert {u["email"] for u in users} <= {expected_hash(v.lower()) for v in originals["employee_emails"]}
    assert all(u["name"] and not u["name"].startswith("hmac") for u in users)  # employees' names are kept
    attributes = lab.query("SELECT ATTRIBUTE_VALUE FROM PARTICIPANT_ATTRIBUTES WHERE ATTRIBUTE_KEY = 'AccountNumber'")
    assert attributes and all(a["attribute_value"].startswith("hmac-sha256:") for a in attributes)
    manifest = json.loads((lab.root / "raw/conversations" / DAY / "manifest.json").read_text())
    assert manifest["extraction"]["personal_data"] == {c.name: "hash" for c in CLASSES}
    raw_meta = results[0].asset_materializations_for_node("raw_conversations")[0].metadata
    assert raw_meta["personal_data"].value == {c.name: "hash" for c in CLASSES}


@pytest.mark.slow
def test_with_every_class_dropped_the_fields_are_absent_and_the_columns_null(module_emulator, stack, tmp_path, originals) -> None:
    lab = Stack(stack, tmp_path / "working")
    results = lab.run(module_emulator, every("drop", None))
    for where, strings in lab.everything(results):
        assert not _leaks("\x00".join(strings), originals), where
    (sessions,) = lab.query("SELECT COUNT(*) AS n, COUNT(ANI) AS ani, COUNT(DNIS) AS dnis, COUNT(ADDRESS_FROM) AS a_from, "
                            "COUNT(ADDRESS_TO) AS a_to, COUNT(MEDIA_TYPE) AS media FROM SESSIONS")  # fmt: skip
    assert sessions["n"] == sessions["media"] > 0 and sessions["ani"] == sessions["dnis"] == sessions["a_from"] == sessions["a_to"] == 0
    names = {r["purpose"]: r["named"] for r in lab.query(
        "SELECT PURPOSE AS purpose, COUNT(PARTICIPANT_NAME) AS named FROM PARTICIPANTS GROUP BY PURPOSE")}  # fmt: skip
    assert names["customer"] == 0 and names["acd"] > 0  # the queue's name is not personal data
    (segments,) = lab.query("SELECT COUNT(WRAPUP_NOTE) AS notes, COUNT(SUBJECT) AS subjects, COUNT(*) AS n FROM SEGMENTS")
    assert segments["n"] > 0 and segments["notes"] == segments["subjects"] == 0
    assert lab.query("SELECT COUNT(*) AS n FROM PARTICIPANT_ATTRIBUTES")[0]["n"] == 0
    (users,) = lab.query("SELECT COUNT(*) AS n, COUNT(EMAIL) AS email, COUNT(USERNAME) AS username, COUNT(NAME) AS name FROM DIM_USERS")
    assert users["n"] == users["name"] > 0 and users["email"] == users["username"] == 0
    with gzip.open(lab.root / raw_records_path(DAY)) as raw:
        records = [json.loads(line) for line in raw]
    sessions_in_raw = [s for r in records for p in r["participants"] for s in p["sessions"]]
    assert not any({"ani", "dnis", "addressFrom", "callbackNumbers", "remote"} & s.keys() for s in sessions_in_raw)
    assert not any("attributes" in p for r in records for p in r["participants"])


def test_keep_writes_what_the_api_sent(module_emulator, tmp_path, originals) -> None:
    """Today's behaviour: with every class kept (the default), the raw file holds the served values."""
    result = dg.materialize([raw_conversations], partition_key=DAY, resources={
        "genesys": genesys_for(module_emulator, personal_data=every("keep", None)),
        "working_storage": WorkingStorage(root=str(tmp_path))})  # fmt: skip
    with gzip.open(tmp_path / raw_records_path(DAY)) as raw:
        text = raw.read().decode()
    sessions = [s for line in text.splitlines() for p in json.loads(line)["participants"] for s in p["sessions"]]
    assert any(s.get("ani", "").startswith("tel:+") for s in sessions) and "hmac-sha256:" not in text
    assert len(_leaks(text, originals)) > 100
    assert result.asset_materializations_for_node("raw_conversations")[0].metadata["personal_data"].value == {
        c.name: "keep" for c in CLASSES}  # fmt: skip
