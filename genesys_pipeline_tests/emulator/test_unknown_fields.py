"""`--unknown-fields`: a made-up field at record, participant, session and segment level and a made-up
metric on every conversation, over HTTP (query, single get, job results), placed as the API places a
new field; off by default, and with it off the records are exactly as before."""

from __future__ import annotations

from typing import Any

from genesys_pipeline.local.emulator import EmulatorConfig
from genesys_pipeline.local.emulator.__main__ import build_parser
from genesys_pipeline.local.emulator.probes import (
    METRIC_NAME,
    PARTICIPANT_FIELD,
    RECORD_FIELD,
    SEGMENT_FIELD,
    SESSION_FIELD,
    UNKNOWN_FIELDS,
)
from genesys_pipeline_tests.conftest import PAST_DAY
from genesys_pipeline_tests.emulator.conftest import ApiSession, day_interval
from genesys_pipeline_tests.sdk_fidelity import sdk_lost_fields

FIELDS = (RECORD_FIELD, PARTICIPANT_FIELD, SESSION_FIELD, SEGMENT_FIELD)


def _without_probes(value: Any) -> Any:
    if isinstance(value, dict):  # a session whose only metric was the probe had no metrics before
        kept = {k: _without_probes(v) for k, v in value.items() if k not in FIELDS}
        return {k: v for k, v in kept.items() if not (k == "metrics" and v == [])}
    if isinstance(value, list):
        return [_without_probes(v) for v in value if not (isinstance(v, dict) and v.get("name") == METRIC_NAME)]
    return value


def _assert_probed(record: dict[str, Any]) -> None:
    assert record[RECORD_FIELD] == "probe"
    keys = list(record)  # a new scalar sits among the scalars, before the nested arrays
    assert keys.index(RECORD_FIELD) < keys.index("participants")
    assert keys[keys.index(RECORD_FIELD) - 1] == "divisionIds"
    for participant in record["participants"]:
        assert participant[PARTICIPANT_FIELD] is True
        assert list(participant).index(PARTICIPANT_FIELD) < list(participant).index("sessions")
        for session in participant["sessions"]:
            assert session[SESSION_FIELD] == 1
            assert list(session)[-2:] == ["metrics", "segments"]
            probes = [m for m in session["metrics"] if m["name"] == METRIC_NAME]
            assert probes == [{"emitDate": session["segments"][0]["segmentStart"], "name": METRIC_NAME, "value": 1000}]
            emitted = [(m["emitDate"], m["name"]) for m in session["metrics"]]
            assert emitted == sorted(emitted)
            for segment in session["segments"]:
                assert segment[SEGMENT_FIELD] == "probe"
                scalars = [k for k in segment if k not in ("scoredAgents", "properties")]
                assert scalars == sorted(scalars)


def test_unknown_fields_at_every_level_over_http(start_emulator):
    plain = ApiSession(start_emulator())
    probed = ApiSession(start_emulator(unknown_fields=True))
    interval = day_interval(PAST_DAY)
    before, after = plain.query_all(interval), probed.query_all(interval)
    assert before and len(after) == len(before)
    assert not any(field in str(before) for field in (*FIELDS, METRIC_NAME))
    for record in after:
        _assert_probed(record)
    assert [_without_probes(r) for r in after] == before  # nothing else changes

    single = probed.get(f"/api/v2/analytics/conversations/{after[0]['conversationId']}/details").json()
    _assert_probed(single)
    served, _ = probed.run_job({"interval": interval}, page_size=1000)
    assert len(served) >= len(after)
    for record in served:
        _assert_probed(record)

    # The official SDK drops each field; a metric's name is free text to it, so only a reader that knows
    # the metric names can tell the new one.
    lost = sdk_lost_fields(after[0], "AnalyticsConversationWithoutAttributes")
    assert f"$.{RECORD_FIELD}: dropped: the SDK model has no such field" in lost
    for field in FIELDS[1:]:
        assert any(line.endswith(f".{field}: dropped: the SDK model has no such field") for line in lost), field
    assert not any(".metrics" in line for line in lost)
    assert sdk_lost_fields(before[0], "AnalyticsConversationWithoutAttributes") == []
    plain.http.close()
    probed.http.close()


def test_the_command_line_turns_unknown_fields_on():
    assert EmulatorConfig(**vars(build_parser().parse_args([]))).unknown_fields is False
    assert EmulatorConfig(**vars(build_parser().parse_args(["--unknown-fields"]))).unknown_fields is True
    assert set(UNKNOWN_FIELDS) == {"record", "participant", "session", "segment", "metric"}
