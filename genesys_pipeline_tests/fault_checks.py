"""What the fault matrix judges a day by: what the emulator served (`truth_keys`, the key of every row of
every table) and what a reader sees while a run goes on (`Reader`)."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any, Optional

from genesys_pipeline.contracts.tables import TABLES
from genesys_pipeline.local.emulator import EmulatorServer
from genesys_pipeline_tests.fault_rig import Rig

# ##### WHAT THE EMULATOR SERVED


def truth_keys(emulator: EmulatorServer, day: date) -> dict[str, set[tuple[Any, ...]]]:
    """The key of every row each table must hold for a past day: detail-job records as of the watermark
    (with attributes); one still open then as it is now, with the job's attributes (as extract.py does)."""
    app = emulator.app
    now_ms, watermark_ms = app.clock.now_ms(), app.jobs.watermark_ms()
    keys: dict[str, set[tuple[Any, ...]]] = {table.name: set() for table in TABLES}
    for plan in app.centre.day_plans(day):
        assert plan.start_ms <= watermark_ms, f"{day} is not wholly before the watermark"
        record = app.centre.render(plan, watermark_ms, with_attributes=True)
        if "conversationEnd" not in record:
            attributes = {p["participantId"]: p["attributes"] for p in record["participants"] if "attributes" in p}
            record = app.centre.render(plan, now_ms, with_attributes=False)
            for participant in record["participants"]:
                if participant["participantId"] in attributes:
                    participant.setdefault("attributes", attributes[participant["participantId"]])
        cid = record["conversationId"]
        keys["conversations"].add((cid,))
        keys["conversations_raw"].add((cid,))
        keys["evaluations"].update((cid, e["evaluationId"]) for e in record.get("evaluations") or ())
        keys["surveys"].update((cid, s["surveyId"]) for s in record.get("surveys") or ())
        keys["resolutions"].update((cid, i) for i in range(len(record.get("resolutions") or ())))
        for participant in record.get("participants") or ():
            pid = participant["participantId"]
            keys["participants"].add((cid, pid))
            keys["participant_attributes"].update((cid, pid, k) for k in participant.get("attributes") or {})
            for session in participant.get("sessions") or ():
                sid = session["sessionId"]
                keys["sessions"].add((cid, pid, sid))
                keys["segments"].update((cid, pid, sid, i) for i in range(len(session.get("segments") or ())))
                keys["session_metrics"].update((cid, pid, sid, i) for i in range(len(session.get("metrics") or ())))
                stats = session.get("mediaEndpointStats") or ()
                keys["media_endpoint_stats"].update((cid, pid, sid, i) for i in range(len(stats)))
                if session.get("flow") is not None:
                    keys["flows"].add((cid, pid, sid))
                    outcomes = session["flow"].get("outcomes") or ()
                    keys["flow_outcomes"].update((cid, pid, sid, i) for i in range(len(outcomes)))
    return keys


# ##### A READER DURING A RUN


class Reader:
    """Polls one day of every table on its own connection (one statement: one consistent snapshot);
    a snapshot passes if the day is one run's complete day: a single extraction_run_id and, per table,
    exactly the truth's row count."""

    def __init__(self, rig: Rig, day: date, expected: dict[str, int], interval: float = 0.2) -> None:
        self.rig, self.day, self.expected, self.interval = rig, day, expected, interval
        self.snapshots = 0
        self.partial: list[dict[str, Any]] = []
        self.run_ids_seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._error: Optional[BaseException] = None

    def _poll(self) -> None:
        sql = " UNION ALL ".join(
            f"SELECT '{t.name}' AS T, EXTRACTION_RUN_ID AS R, COUNT(*) AS N FROM {t.name.upper()} "
            "WHERE PARTITION_DATE = %s GROUP BY EXTRACTION_RUN_ID" for t in TABLES
        )  # fmt: skip
        try:
            with self.rig.snowflake.get_connection() as connection:
                cursor = connection.cursor()
                while not self._stop.is_set():
                    cursor.execute(sql, (self.day,) * len(TABLES))
                    snapshot = {(t, r): n for t, r, n in cursor.fetchall()}
                    self.snapshots += 1
                    run_ids = {r for _, r in snapshot}
                    counts = {t: n for (t, _), n in snapshot.items()}
                    if len(run_ids) != 1 or counts != {t: n for t, n in self.expected.items() if n}:
                        self.partial.append({"run_ids": sorted(run_ids), "counts": counts})
                    self.run_ids_seen |= run_ids
                    self._stop.wait(self.interval)
        except BaseException as error:  # reported by stop(): a reader that cannot read proves nothing
            self._error = error

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise AssertionError(f"the reader failed: {self._error!r}") from self._error
