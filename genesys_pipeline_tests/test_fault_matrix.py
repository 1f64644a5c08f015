"""The fault matrix (issue 10): every fault the pipeline meets, on a day that holds a good load, followed
by a plain rerun; the pipeline runs for real against the emulator and the S3/Snowflake stand-ins, each
behind a FaultProxy (genesys_pipeline/local/s3_fault_proxy.py), in one Dagster instance (DAGSTER_HOME
with the repository's dagster.yaml) shared with the runs in child processes.

All faults hit one day, loaded once before the first; each rerun's load is the next fault's old day
(a day a fault left broken fails that fault's test, so the chain cannot hide it). While the faulty run
goes on, a reader polls the day in Snowflake and must only ever see one run's complete day. After the faulty run
the day is whole (the old day if the run failed or was killed: "a failed run leaves the warehouse as it
was"); after the rerun it has converged: Snowflake holds exactly the emulator's rows (every table's
keys), no key twice, the S3 folders hold exactly the manifest's objects, the load history names the
manifest's files and counts, the row-count check passed, and nothing is left behind (no `.partial-*`
working files, no staging tables, no run of the day still "in progress").

Kills are `kill -9` of a child process running the job, when the proxy holds the request that marks the
stage (held, then never forwarded): extraction at the second page of detail-job results, publish at the
upload of the third table, the load at its first COPY (inside the transaction, after a DELETE) and at its
COMMIT; flatten, which makes no request, while it has its tables' files open. `pytest -s` prints the matrix as a table.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import threading
import time
import uuid
from datetime import date
from typing import Any, Callable, Iterator
from urllib.parse import unquote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from genesys_pipeline.local import stand_ins
from genesys_pipeline.local.s3_fault_proxy import FaultProxy
from genesys_pipeline_tests.conftest import PAST_DAY, new_emulator
from genesys_pipeline_tests.fault_checks import Reader, truth_keys
from genesys_pipeline_tests.fault_rig import (
    Rig,
    check_passed,
    failure_message,
    kill,
    on_request,
    statement_starts,
    wait_for,
)

DAILY_VOLUME = 150
DAY = PAST_DAY  # wholly before the watermark at the suite's CLOCK


@dataclasses.dataclass
class Outcome:
    """What the faulty run did; `loaded`: the runs one of which may hold the day now (none: the old day
    must still be there, as a failed or killed run leaves it)."""

    message: str
    loaded: set[str] = dataclasses.field(default_factory=set)
    problem: str = ""  # what the faulty run did that it must not (asserted once the state is recorded)


@dataclasses.dataclass
class Case:
    name: str
    inject: Callable[[Rig, str], Outcome]


# ##### THE FAULTS


def _in_process(rig: Rig, day: str, note: str = "") -> Outcome:
    result = rig.run(day)
    message = "succeeded" if result.success else failure_message(result)
    return Outcome(f"{message} {note}".strip(), {result.run_id} if result.success else set())


def api_faults(rig: Rig, day: str) -> Outcome:
    """30% of API requests answered 429/503/504 or reset (the emulator's fault_rate)."""
    before = rig.emulator.app.stats.snapshot()
    rig.emulator.app.config.fault_rate = 0.3
    try:
        outcome = _in_process(rig, day)
    finally:
        rig.emulator.app.config.fault_rate = 0.0
    after = rig.emulator.app.stats.snapshot()
    faults = sum(n - before.get(k, 0) for k, n in after.items() if k.startswith("faults."))
    assert faults > 0, "the emulator injected no fault"
    outcome.message += f" ({faults} API faults)"
    return outcome


def token_revocation(rig: Rig, day: str) -> Outcome:
    """Every token revoked when extraction reads its first job results and its first listing (the names)."""
    revoke = rig.emulator.app.tokens.revoke_all
    before = rig.emulator.app.stats.snapshot().get("status.401", 0)
    on_request(rig.genesys_proxy.hold(lambda r: "/results" in r.path), revoke)
    on_request(rig.genesys_proxy.hold(lambda r: r.path.startswith(LISTINGS)), revoke)
    outcome = _in_process(rig, day)
    rejected = rig.emulator.app.stats.snapshot().get("status.401", 0) - before
    assert rejected >= 2, f"only {rejected} requests were rejected with 401"
    outcome.message += f" ({rejected} requests answered 401)"
    return outcome


LISTINGS = ("/api/v2/routing/queues", "/api/v2/routing/wrapupcodes", "/api/v2/users", "/api/v2/authorization/divisions")


def job_failures(rig: Rig, day: str) -> Outcome:
    """Every detail job ends FAILED (the emulator's job_failure_rate)."""
    rig.emulator.app.config.job_failure_rate = 1.0
    try:
        return _in_process(rig, day)
    finally:
        rig.emulator.app.config.job_failure_rate = 0.0


def s3_faults(rig: Rig, day: str) -> Outcome:
    """30% of S3 requests: HTTP 500, 503, a reset before the request, or the response lost after it."""
    before = rig.s3_proxy.stats.snapshot()
    rig.s3_proxy.set_faults(0.3)
    try:
        outcome = _in_process(rig, day)
    finally:
        rig.s3_proxy.set_faults(0.0)
    after = rig.s3_proxy.stats.snapshot()
    faults = {k: n - before.get(k, 0) for k, n in after.items() if k.startswith("faults.")}
    assert sum(faults.values()) > 0, "the proxy injected no fault"
    outcome.message += f" (S3 faults {faults})"
    return outcome


def corrupt_object(rig: Rig, day: str) -> Outcome:
    """The segments object replaced by garbage in S3 when the load sends its first COPY."""
    key = rig.publishing.table_key("segments", day)

    def corrupt() -> None:
        rig.s3_client().put_object(Bucket=rig.bucket, Key=key, Body=b"PAR1 not a parquet file PAR1")

    on_request(rig.snowflake_proxy.hold(statement_starts("COPY INTO")), corrupt)
    return _in_process(rig, day, f"(s3://{rig.bucket}/{key} corrupted before its COPY)")


def kill_at(stage: str, matches: Callable[[Rig, str], Any], proxy: str, **genesys: Any) -> Callable[[Rig, str], Outcome]:
    """kill -9 of a child process running the day, when `proxy` gets the request that marks `stage`."""

    def inject(rig: Rig, day: str) -> Outcome:
        hold = getattr(rig, proxy).hold(matches(rig, day))
        process = rig.start_run_process(day, f"kill-{stage.replace(' ', '-')}", **genesys)
        try:
            reached = wait_for(hold, process)
            if not reached:
                outcome, stderr = rig.process_outcome(f"kill-{stage.replace(' ', '-')}")
                raise AssertionError(f"the run never reached {stage}: {outcome} {stderr}")
        finally:
            kill(process)
            hold.drop()  # after the kill: the held request is never forwarded
        return Outcome(f"killed (SIGKILL) at {stage}: held {hold.request.method} {hold.request.path[:60]}")

    return inject


def kill_while_writing(stage: str, folder: Callable[[Rig, str], str]) -> Callable[[Rig, str], Outcome]:
    """kill -9 of a child process running the day while it has a file open in `folder`: for a stage that
    makes no request (flatten reads the raw files and the names saved with them, and keeps its tables'
    temporary files open while it writes them)."""

    def inject(rig: Rig, day: str) -> Outcome:
        name = f"kill-{stage.replace(' ', '-')}"
        process = rig.start_run_process(day, name)
        try:
            writing = _file_open_in(process, folder(rig, day))
            if writing is None:
                outcome, stderr = rig.process_outcome(name)
                raise AssertionError(f"the run never reached {stage}: {outcome} {stderr}")
        finally:
            kill(process)
        return Outcome(f"killed (SIGKILL) at {stage}: writing {writing.rsplit('/', 2)[-2:]}")

    return inject


def _file_open_in(process: Any, folder: str, timeout: float = 180) -> str | None:
    """The first file under `folder` that the process has open (its /proc fds, polled), or None if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for fd in _listdir(f"/proc/{process.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith(folder):
                return target
        time.sleep(0.002)
    return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _results_page_2(rig: Rig, day: str) -> Callable[[Any], bool]:
    return lambda r: "/results" in r.path and "cursor=" in r.path


def _third_upload(rig: Rig, day: str) -> Callable[[Any], bool]:
    folder = rig.publishing.day_prefix("sessions", day)
    return lambda r: r.method == "PUT" and folder in unquote(r.path)  # boto3 sends '=' as %3D


def overlapping_runs(rig: Rig, day: str) -> Outcome:
    """Two runs of the day started at once (a manual rerun during the schedule's reload): the first to
    reach COPY is held there until the other sends a DELETE or 8 s have passed. Both must succeed."""
    first_copy = rig.snowflake_proxy.hold(statement_starts("COPY INTO"))
    processes = {name: rig.start_run_process(day, name) for name in ("overlap-1", "overlap-2")}
    try:
        deadline = time.monotonic() + 180
        while not first_copy.wait(0.1) and time.monotonic() < deadline:
            if all(p.poll() is not None for p in processes.values()):
                break
        if first_copy.reached.is_set():
            rig.snowflake_proxy.hold(statement_starts("DELETE FROM"), pause=False).wait(8)
        first_copy.release()
        for process in processes.values():
            process.wait(max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes.values():
            if process.poll() is None:
                kill(process)
    outcomes = {name: rig.process_outcome(name) for name in processes}
    said = "; ".join(f"{name}: {'succeeded' if o.get('success') else (o.get('failure') or err[-300:] or 'no outcome')}"
                     for name, (o, err) in outcomes.items())  # fmt: skip
    loaded = {o["run_id"] for o, _ in outcomes.values() if o.get("success")}
    return Outcome(said, loaded, "" if len(loaded) == 2 else f"both runs must succeed: {said}")


CASES = [
    Case("API faults (30%)", api_faults),
    Case("token revocation", token_revocation),
    Case("detail jobs FAILED", job_failures),
    Case("S3 faults (30%)", s3_faults),
    Case("corrupt object in S3", corrupt_object),
    Case("kill -9 in extraction", kill_at("extraction", _results_page_2, "genesys_proxy", job_page_size=50)),
    Case("kill -9 in flatten", kill_while_writing("flatten", lambda rig, day: f"{rig.root}/flat/{day}/")),
    Case("kill -9 in publish", kill_at("publish", _third_upload, "s3_proxy")),
    Case("kill -9 in load before COPY", kill_at("load before COPY", lambda *_: statement_starts("COPY INTO"), "snowflake_proxy")),
    Case("kill -9 in load before COMMIT", kill_at("load before COMMIT", lambda *_: statement_starts("COMMIT"), "snowflake_proxy")),
    Case("two runs of the day at once", overlapping_runs),
]  # fmt: skip
MATRIX: list[dict[str, Any]] = []  # the report, printed when the module ends


# ##### THE MODULE'S RIG


@pytest.fixture(scope="module")
def rig(stack: stand_ins.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The emulator, proxies, bucket, database and instance; the day loaded once."""
    emulator = new_emulator(daily_volume=DAILY_VOLUME)
    rig = Rig.start(stack, emulator, tmp_path_factory.mktemp("faults"))
    try:
        started = time.monotonic()
        baseline = rig.run(DAY.isoformat())
        assert baseline.success, failure_message(baseline)
        MATRIX.append({"baseline": f"{DAY} loaded in {time.monotonic() - started:.1f} s"})
        yield rig
    finally:
        rig.stop()
        emulator.stop()
        print_matrix()


def print_matrix() -> None:
    print("\n| fault | faulty run's message | state after the fault | state after the rerun |\n|---|---|---|---|")
    for row in MATRIX:
        if "fault" in row:
            print(f"| {row['fault']} | {row['message']} | {row['after_fault']} | {row['after_rerun']} |")
        else:
            print(f"baseline: {row['baseline']}")


# ##### STATE


def expected_counts(keys: dict[str, set[Any]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in keys.items()}


def describe(rig: Rig, day: date, truth: dict[str, set[Any]]) -> str:
    """The day's state in a line: the Snowflake run ids and counts, S3, leftovers."""
    keys = rig.snowflake_keys(day)
    run_ids = set().union(*rig.run_ids(day).values())
    manifest, objects = rig.s3_day(day.isoformat())
    short = ", ".join(sorted(r[:8] for r in run_ids))
    counts = "/".join(str(len(keys[t])) for t in truth)
    truth_counts = "/".join(str(len(truth[t])) for t in truth)
    return (
        f"Snowflake run {short}: {counts} rows (truth {truth_counts}); S3 manifest "
        f"{'present' if manifest else 'MISSING'}, {sum(len(o) for o in objects.values())} objects; "
        f"{len(rig.partial_files())} .partial files; {len(rig.staging_tables())} staging tables; "
        f"{len(rig.runs_in_progress(day.isoformat()))} runs in progress"
    )


def assert_whole(rig: Rig, day: date, truth: dict[str, set[Any]], allowed: set[str]) -> None:
    """The day is one run's complete day: exactly the truth's keys, once each, all from one of `allowed`."""
    keys = rig.snowflake_keys(day)
    for table, expected in truth.items():
        assert len(keys[table]) == len(set(keys[table])), f"{table}: duplicate keys on {day}"
        assert set(keys[table]) == expected, (
            f"{table} {day}: {len(set(keys[table]) - expected)} rows not served by the emulator, "
            f"{len(expected - set(keys[table]))} served rows missing")  # fmt: skip
    run_ids = set().union(*rig.run_ids(day).values())
    assert len(run_ids) == 1 and run_ids <= allowed, f"{day} holds rows of runs {run_ids}, expected one of {allowed}"


def assert_converged(rig: Rig, day: date, truth: dict[str, set[Any]], rerun: Any) -> None:
    assert_whole(rig, day, truth, {rerun.run_id})
    assert rig.duplicate_keys() == {}
    assert check_passed(rerun), "the row-count check did not pass"
    manifest, objects = rig.s3_day(day.isoformat())
    assert manifest is not None and manifest.run_id == rerun.run_id
    for table, published in manifest.tables.items():
        assert objects[table] == {published.key: published.etag}, f"{table}: S3 holds {objects[table]}"
    history = rig.load_history(day)
    for table, published in manifest.tables.items():
        latest = history[rig_table(table)]
        assert latest["run_id"] == rerun.run_id and latest["rows_in_files"] == published.rows
        assert latest["rows_loaded"] == published.rows
        assert published.uri in str(latest["files"])
    assert rig.partial_files() == []
    assert rig.staging_tables() == []
    assert rig.runs_in_progress(day.isoformat()) == []


def rig_table(table: str) -> str:
    return table.upper()


# ##### THE MATRIX


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_fault_leaves_the_day_whole_and_a_plain_rerun_converges(rig: Rig, case: Case) -> None:
    day, key = DAY, DAY.isoformat()
    truth = truth_keys(rig.emulator, day)
    (old_run,) = set().union(*rig.run_ids(day).values())
    row = {"fault": case.name, "message": "", "after_fault": "", "after_rerun": ""}
    MATRIX.append(row)

    started = time.monotonic()
    with Reader(rig, day, expected_counts(truth)) as reader:
        try:
            outcome = case.inject(rig, key)
        finally:
            rig.release_holds()
    row["message"] = f"{outcome.message[:400]} [{time.monotonic() - started:.1f} s]"
    row["after_fault"] = describe(rig, day, truth) + f"; reader: {reader.snapshots} snapshots, {len(reader.partial)} partial"
    assert not outcome.problem, outcome.problem
    assert reader.snapshots > 0
    assert reader.partial == [], f"a reader saw a partial day: {reader.partial[:3]}"
    # A failed or killed run leaves the day as it was; a run that rode out the fault replaced it.
    assert_whole(rig, day, truth, outcome.loaded or {old_run})

    started = time.monotonic()
    try:
        rerun = rig.run(key)
    except AssertionError as stuck:
        row["after_rerun"] = f"{stuck} [{time.monotonic() - started:.1f} s]; " + describe(rig, day, truth)
        raise
    row["after_rerun"] = f"{'succeeded' if rerun.success else failure_message(rerun)[:400]} [{time.monotonic() - started:.1f} s]; " + describe(rig, day, truth)  # fmt: skip
    assert rerun.success, failure_message(rerun)
    assert_converged(rig, day, truth, rerun)


# ##### THE PROXY ITSELF


def test_the_fault_proxy_forwards_fails_and_holds_requests(stack: stand_ins.LocalStack) -> None:
    with FaultProxy(stack.s3_endpoint_url) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.base_url, region_name=stand_ins.REGION, config=Config(
            retries={"max_attempts": 1}), aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        bucket = f"proxy-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="a=1/x.bin", Body=b"x" * 1000)
        assert s3.head_object(Bucket=bucket, Key="a=1/x.bin")["ContentLength"] == 1000  # HEAD keeps its length
        assert s3.get_object(Bucket=bucket, Key="a=1/x.bin")["Body"].read() == b"x" * 1000

        proxy.set_faults(1.0, ("503",))
        with pytest.raises(ClientError, match="SlowDown"):
            s3.get_object(Bucket=bucket, Key="a=1/x.bin")
        proxy.set_faults(0.0)

        held = proxy.hold(lambda r: r.method == "PUT")
        threading.Timer(0.2, held.drop).start()
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("PUT", f"/{bucket}/a=1/y.bin", body=b"y")
            connection.getresponse()
        assert held.reached.is_set() and held.request.path.endswith("/y.bin")
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="a=1/y")  # never forwarded
        assert proxy.stats.snapshot()["faults.503"] >= 1 and proxy.stats.snapshot()["dropped"] == 1
