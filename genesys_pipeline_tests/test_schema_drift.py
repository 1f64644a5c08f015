"""The schema-drift check: the record paths contract covers every column; a normal emulator day has no
drift; a day of the emulator's `--unknown-fields` (over HTTP, through the pipeline) reports the made-up
field at record, participant, session, segment and metric level; mapped fields that stop appearing are
reported; the check warns when the list changes and passes while it stays the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genesys_pipeline.contracts.record_paths import (
    IGNORED_BY_PATH,
    MAPPED_BY_PATH,
    MAPPED_PATHS,
    NOT_FROM_A_FIELD,
    SEGMENT,
    metric_path,
    record_paths_path,
)
from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.defs.checks import DRIFT_CHECK, record_fields_match_the_contract
from genesys_pipeline.defs.flattened_conversations import flattened_conversations
from genesys_pipeline.defs.raw_conversations import raw_conversations
from genesys_pipeline.local.emulator import probes
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.schema_drift import (
    NO_LONGER_SENT,
    PathGatherer,
    evaluate_drift,
)
from genesys_pipeline_tests.conftest import PAST_DAY, genesys_for

DAY = PAST_DAY.isoformat()
NEXT_DAY = "2024-05-09"
ASSETS = [raw_conversations, flattened_conversations, record_fields_match_the_contract]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Where the emulator's --unknown-fields puts its made-up fields, as the check names them.
PROBE_PATHS = {
    "record": probes.RECORD_FIELD,
    "participant": "participants[]." + probes.PARTICIPANT_FIELD,
    "session": "participants[].sessions[]." + probes.SESSION_FIELD,
    "segment": SEGMENT + probes.SEGMENT_FIELD,
    "metric": metric_path(probes.METRIC_NAME),
}


def drift_runs(emulator: Any, root: Path, **selection: Any) -> dg.ExecuteInProcessResult:
    resources = {"genesys": genesys_for(emulator), "working_storage": WorkingStorage(root=str(root))}
    return dg.materialize(ASSETS, resources=resources, run_config=QUIET, **selection)


def evaluation_of(result: dg.ExecuteInProcessResult, partition: str | None = DAY) -> Any:
    (evaluation,) = [e for e in result.get_asset_check_evaluations()
                     if e.check_name == DRIFT_CHECK and e.partition == partition]  # fmt: skip
    return evaluation


# ##### THE CONTRACT


def test_every_column_of_every_table_is_made_from_mapped_paths_or_from_no_field() -> None:
    claimed = {column for mapped in MAPPED_PATHS for column in mapped.columns}
    columns = {f"{table.name}.{column.name}" for table in TABLES for column in table.columns}
    assert sorted(claimed - columns) == []  # every column a path names exists
    unclaimed = {c for c in columns - claimed if c not in NOT_FROM_A_FIELD and c.split(".")[1] not in NOT_FROM_A_FIELD}
    assert sorted(unclaimed) == []
    assert set(MAPPED_BY_PATH).isdisjoint(IGNORED_BY_PATH)


# ##### GATHERING AND COMPARING


def _record(conversation_id: str, **segment: Any) -> dict[str, Any]:
    return {"conversationId": conversation_id, "conversationStart": "2024-05-08T10:00:00.000Z", "participants": [
        {"participantId": "p", "purpose": "agent", "sessions": [{"sessionId": "s", "mediaType": "voice", "segments": [
            {"segmentType": "interact", "segmentStart": "2024-05-08T10:00:00.000Z", **segment}],
            "metrics": [{"name": "tTalk", "value": 5, "emitDate": "2024-05-08T10:01:00.000Z"}]}]}]}  # fmt: skip


def _flattened(storage: WorkingStorage, day: str, records: list[dict[str, Any]]) -> None:
    gatherer = PathGatherer()
    for record in records:
        gatherer.add(record)
    storage.write_json(record_paths_path(day), gatherer.to_json())


def test_a_mapped_field_that_stops_appearing_is_reported_with_its_last_sighting(tmp_path: Path) -> None:
    storage = WorkingStorage(root=str(tmp_path))
    _flattened(storage, "2024-05-01", [_record(f"c{i}", wrapUpNote="note") for i in range(20)])
    first = evaluate_drift(storage, "2024-05-01")
    assert first.entries == () and not first.changed and first.previous_day is None

    # The next day no segment has a wrapUpNote: 20 of 20 before makes its absence from 20 records drift.
    _flattened(storage, "2024-05-02", [_record(f"d{i}") for i in range(20)])
    second = evaluate_drift(storage, "2024-05-02")
    (entry,) = second.entries
    assert (entry.kind, entry.path, entry.count, entry.sample, entry.seen_on) == (
        NO_LONGER_SENT, SEGMENT + "wrapUpNote", 20, "c0", "2024-05-01")
    assert second.changed and second.added == [f"{NO_LONGER_SENT}: {SEGMENT}wrapUpNote"]

    # A day of 5 records, where 20-in-20 predicts 5 occurrences (fewer than MIN_EXPECTED, 20), is not drift;
    # the list went back to empty, a change.
    _flattened(storage, "2024-05-03", [_record(f"e{i}") for i in range(5)])
    third = evaluate_drift(storage, "2024-05-03")
    assert third.entries == () and third.gone == [f"{NO_LONGER_SENT}: {SEGMENT}wrapUpNote"] and third.changed


def test_a_rare_field_missing_from_a_day_is_no_evidence(tmp_path: Path) -> None:
    """Seen 5 times in 20 segments, then absent from 100: a rate from 5 sightings is noise, not drift."""
    storage = WorkingStorage(root=str(tmp_path))
    _flattened(storage, "2024-05-01", [_record(f"c{i}", **({"errorCode": "e"} if i < 5 else {})) for i in range(20)])
    evaluate_drift(storage, "2024-05-01")
    _flattened(storage, "2024-05-02", [_record(f"d{i}") for i in range(100)])
    assert evaluate_drift(storage, "2024-05-02").entries == ()


def test_a_day_without_evaluations_yet_is_no_drift_of_the_evaluation_fields(tmp_path: Path) -> None:
    """Evaluations come days after the conversation: their fields are expected per evaluation, not per record."""
    storage = WorkingStorage(root=str(tmp_path))
    evaluated = [{**_record(f"c{i}"), "evaluations": [{"evaluationId": f"e{i}", "oTotalScore": 80}]} for i in range(20)]
    _flattened(storage, "2024-05-01", evaluated)
    assert evaluate_drift(storage, "2024-05-01").entries == ()
    _flattened(storage, "2024-05-02", [_record(f"d{i}") for i in range(20)])
    assert evaluate_drift(storage, "2024-05-02").entries == ()
    # Evaluations again, without their score: that is drift.
    _flattened(storage, "2024-05-03", [{**r, "evaluations": [{"evaluationId": "x"}]} for r in evaluated])
    (entry,) = evaluate_drift(storage, "2024-05-03").entries
    assert (entry.kind, entry.path, entry.seen_on) == (NO_LONGER_SENT, "evaluations[].oTotalScore", "2024-05-01")


def test_gathering_skips_what_is_not_an_object_and_names_unknown_metric_keys() -> None:
    """The flatten reports a malformed record with its place: gathering must not raise first."""
    gatherer = PathGatherer()
    record = _record("c1")
    session = record["participants"][0]["sessions"][0]
    session["segments"].append("not an object")
    session["metrics"] += [7, {"name": "tTalk", "value": 1, "unit": "ms"}, {"name": ["not", "a", "name"]}]
    gatherer.add(record)
    gatherer.add({"conversationId": "c2", "participants": "not a list"})
    paths = gatherer.paths()
    assert paths["participants[].sessions[].metrics[].unit"].count == 1
    assert paths[metric_path("tTalk")].count == 2 and paths["conversationId"].count == 2
    assert "participants" not in paths  # a level, never a field (the flatten rejects the string)


# ##### THE PIPELINE, OVER HTTP


def test_a_normal_emulator_day_has_no_drift(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator()
    result = drift_runs(emulator, tmp_path, partition_key=DAY)
    assert result.success
    evaluation = evaluation_of(result)
    assert evaluation.passed, evaluation.description
    assert evaluation.description.startswith(f"No drift in {DAY}: every field of its ")
    paths = WorkingStorage(root=str(tmp_path)).read_json(record_paths_path(DAY))
    assert paths["records"] == len(emulator.app.conversations_started(PAST_DAY))
    # The day exercised the contract: the quality, survey, endpoint and flow fields, and metrics by name.
    for path in ("evaluations[].oTotalScore", "surveys[].surveyPromoterScore", "participants[].attributes",
                 "participants[].sessions[].mediaEndpointStats[].minMos", "participants[].sessions[].flow.flowName",
                 metric_path("tTalk"), SEGMENT + "wrapUpCode"):  # fmt: skip
        assert paths["paths"][path]["count"] > 0, path


@pytest.mark.slow
def test_unknown_fields_are_reported_at_every_level_and_warn_only_when_the_list_changes(
    start_emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = start_emulator(unknown_fields=True)
    # Two days in one ranged run: the first changes the list (WARN), the second keeps it (passes).
    ranged = drift_runs(emulator, tmp_path, tags={"dagster/asset_partition_range_start": DAY,
                                                  "dagster/asset_partition_range_end": NEXT_DAY})  # fmt: skip
    assert ranged.success  # not blocking
    first, second, whole = evaluation_of(ranged, DAY), evaluation_of(ranged, NEXT_DAY), evaluation_of(ranged, None)
    assert not first.passed and first.severity == dg.AssetCheckSeverity.WARN
    assert second.passed and not whole.passed, second.description
    with capsys.disabled():
        print(f"\n{DRIFT_CHECK} on {DAY} (--unknown-fields):\n{first.description}\n"
              f"{first.metadata['drift'].value}")  # fmt: skip

    served = set(emulator.app.conversations_started(PAST_DAY))
    assert first.metadata["new_fields"].value == sorted(PROBE_PATHS.values())
    assert first.metadata["no_longer_sent"].value == []
    for level, path in PROBE_PATHS.items():
        assert f"{path} (" in first.description, level
    paths = WorkingStorage(root=str(tmp_path)).read_json(record_paths_path(DAY))["paths"]
    assert paths[probes.RECORD_FIELD]["count"] == len(served)
    assert {paths[path]["sample"] for path in PROBE_PATHS.values()} <= served
    assert first.description.startswith(f"The drift list of {DAY} changed since the first evaluation: 5 added. 5 ")
    assert second.description.startswith(f"The drift list of {NEXT_DAY} is as at the previous evaluation ({DAY})")

    # A rerun of the first day: the same list as the previous evaluation (the second day's): passes.
    rerun = drift_runs(emulator, tmp_path, partition_key=DAY)
    again = evaluation_of(rerun)
    assert again.passed and again.metadata["new_fields"].value == sorted(PROBE_PATHS.values())
    assert {e.check_name for e in rerun.get_asset_check_evaluations()} == {DRIFT_CHECK}
    assert f"new field: {probes.RECORD_FIELD}" not in str(evaluation_of(rerun).metadata["changed_days"].value)
