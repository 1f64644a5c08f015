"""The days of one run into their raw files: extracted at once, each exactly as on its own.

A range run (a backfill's chunk, the schedule's lookback) used to read its days one after another,
each waiting on its own detail job. Here the days run side by side, their jobs as many at once as the
client's detail-job slots (`GenesysClient.job_slots`: the org's `details.jobs.concurrent.access.max` when
readable, at most `detail_jobs_at_once`), so one day's job runs while another's pages are read.
Everything shares the one client: its token, its request budget (the throttle) and its job slots, so
side by side costs no request more than one after another. Each day is extracted by `extract_partition` into its own files,
exactly as a run of that day alone would (same records in the same order, same manifest).

The lookups (names of queues, users, wrap-up codes and divisions) are read once per run, while the days
are extracted, and saved next to each day's raw file before that file is replaced: flatten reads them
there.

A day that fails stops the days not yet finished (at their next progress tick) and the step fails
naming it; days already finished keep their complete files, and a rerun replaces every day.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import IO, Callable, Iterator

from genesys_pipeline.contracts.manifests import RawManifest
from genesys_pipeline.contracts.paths import raw_records_path
from genesys_pipeline.genesys.client import GenesysClient
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.extract import extract_window
from genesys_pipeline.steps.flatten.lookups import Lookups, save_lookups
from genesys_pipeline.steps.privacy import Protector, protector_for
from genesys_pipeline.steps.raw_records import ExtractionReport

# A day's progress line comes at most this often, and only once it has gained this share of the API's
# estimate since its last line (when there is one): a long day says where it is, a short one stays quiet.
PROGRESS_SECONDS = 10.0
PROGRESS_SHARE = 0.10
PROGRESS_CHECK_EVERY = 100  # records written between two looks at the clock
DAYS_PER_JOB_SLOT = 2  # days in progress per detail-job slot (see extract_days)


@dataclasses.dataclass(frozen=True)
class Day:
    partition_key: str
    start: datetime
    end: datetime


class Stopped(Exception):
    """Another day of the run failed: this one stops too (its job is cancelled, its file not replaced)."""


class DayProgress:
    """`2024-05-08: 3,000 of ~5,120 conversations (59 %)`, at most every `seconds` and `share` of the
    estimate; raises `Stopped` once `stop` is set, so that a day stops soon after another failed."""

    def __init__(self, key: str, log: Callable[[str], None], stop: threading.Event, seconds: float, share: float) -> None:
        self._key, self._log, self._stop = key, log, stop
        self._seconds, self._share = seconds, share
        self._estimate: int | None = None
        self._last = (0, time.monotonic())  # records and time of the last line

    def estimate(self, estimate: int | None) -> None:
        self._estimate = estimate

    def __call__(self, written: int) -> None:
        if self._stop.is_set():
            raise Stopped(f"{self._key}: stopped, the run failed elsewhere")
        now = time.monotonic()
        last_written, last_time = self._last
        if now - last_time < self._seconds:
            return
        if self._estimate and written - last_written < self._share * self._estimate:
            return
        self._last = (written, now)
        if self._estimate:
            share = min(written / self._estimate, 1.0)  # the estimate is approximate: never over 100 %
            self._log(f"{self._key}: {written:,} of ~{self._estimate:,} conversations ({share:.0%})".replace("%", " %"))
        else:
            self._log(f"{self._key}: {written:,} conversations so far")


def extract_partition(
    client: GenesysClient,
    storage: WorkingStorage,
    partition_key: str,
    start: datetime,
    end: datetime,
    run_id: str,
    *,
    job_result_cap: int,
    on_progress: Callable[[int], None] | None = None,
    protector: Protector | None = None,
    progress_every: int = 10_000,
    on_estimate: Callable[[int | None], None] | None = None,
    before_records_replaced: Callable[[], None] | None = None,
) -> tuple[ExtractionReport, RawManifest]:
    """One partition's conversations into its raw file, then its manifest (written last: a manifest
    that exists describes a complete file). The paths are the partition's, so a rerun replaces it.
    `protector`: the personal-data policy, applied to each record before it is written;
    `before_records_replaced()`: writes the day's other files (the lookups) once every record is read,
    before the new raw file replaces the old one: if it fails, the day's files stay as they were."""
    records_path = raw_records_path(partition_key)
    protector = protector or protector_for(None)
    protect = protector.protect_record if protector.active else None

    @contextlib.contextmanager
    def output() -> Iterator[IO[bytes]]:
        with storage.writer(records_path) as handle:
            yield handle
            if before_records_replaced is not None:  # only once the records are complete
                before_records_replaced()

    report = extract_window(client, start, end, output, job_result_cap=job_result_cap, on_progress=on_progress,
                            progress_every=progress_every, protect=protect, on_estimate=on_estimate)  # fmt: skip
    report.personal_data = protector.policy.as_dict()
    manifest = RawManifest(
        partition_key=partition_key,
        run_id=run_id,
        extracted_at=datetime.now(timezone.utc),
        files=(records_path,),
        records=report.records_written,
        bytes=storage.size(records_path),
        extraction=report.as_dict(),
    )
    manifest.write(storage)
    return report, manifest


def extract_days(
    client: GenesysClient,
    storage: WorkingStorage,
    days: list[Day],
    run_id: str,
    *,
    job_result_cap: int,
    protector: Protector | None = None,
    log: Callable[[str], None] = lambda line: None,
    progress_seconds: float = PROGRESS_SECONDS,
    progress_share: float = PROGRESS_SHARE,
    progress_every: int = PROGRESS_CHECK_EVERY,
) -> tuple[list[tuple[ExtractionReport, RawManifest]], Lookups]:
    """Extract `days` side by side (their detail jobs as many at once as the client has job slots) and
    save the run's lookups next to each; returns each day's report and manifest, in the order of `days`, and
    the lookups. Read the org's limits (`client.get_analytics_limits()`) first to size the slots."""
    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="lookups") as side:
        lookups = side.submit(Lookups.from_client, client)
        lookups.add_done_callback(lambda done: stop.set() if done.exception() else None)  # no day can finish

        def one_day(day: Day) -> tuple[ExtractionReport, RawManifest]:
            if stop.is_set():
                raise Stopped(f"{day.partition_key}: not started, the run failed elsewhere")
            log(f"Extracting conversations started in [{day.start.isoformat()}, {day.end.isoformat()}) "
                f"for partition {day.partition_key}")  # fmt: skip
            progress = DayProgress(day.partition_key, log, stop, progress_seconds, progress_share)
            report, manifest = extract_partition(
                client, storage, day.partition_key, day.start, day.end, run_id, job_result_cap=job_result_cap,
                protector=protector, on_progress=progress, progress_every=progress_every,
                on_estimate=progress.estimate,
                before_records_replaced=lambda: save_lookups(storage, day.partition_key, lookups.result()),
            )  # fmt: skip
            log(f"{day.partition_key}: {report.records_written:,} conversations via {report.path} "
                f"({report.ongoing} ongoing, {report.duplicates_dropped} duplicates dropped)")  # fmt: skip
            return report, manifest

        # Twice as many days as job slots: while some days' jobs hold the slots, the next days read their
        # counts and open conversations (queries, no job) and are ready to submit when a slot frees.
        days_at_once = max(1, min(len(days), DAYS_PER_JOB_SLOT * client.job_slots.capacity))
        with ThreadPoolExecutor(days_at_once, thread_name_prefix="day") as pool:
            futures = [pool.submit(one_day, day) for day in days]
            _raise_first_failure(days, futures, stop, lookups)
        return [future.result() for future in futures], lookups.result()


def _raise_first_failure(days: list[Day], futures: list[Future], stop: threading.Event, lookups: Future) -> None:
    """Wait for every day; once one fails, stop the others and raise its error, noting the day (the
    error keeps its type: whether the step is retried depends on it)."""
    failed: list[tuple[Day, Future]] = []
    pending: set[Future] = set(futures)
    while pending and not failed:
        _, pending = wait(pending, return_when=FIRST_EXCEPTION)
        failed = [(day, f) for day, f in zip(days, futures) if f.done() and not f.cancelled() and _failure(f)]
    lookups_error = lookups.exception() if lookups.done() else None
    if not failed and lookups_error is None:
        return
    stop.set()
    for future in futures:
        future.cancel()
    wait(futures)  # the days in flight stop at their next progress tick
    if lookups_error is not None and (not failed or _failure(failed[0][1]) is lookups_error):
        # Every day waits for them before replacing its file: no day is to blame, and none was replaced.
        lookups_error.add_note("Reading the names of queues, users, wrap-up codes and divisions failed; no day's "
                               "files were replaced.")  # fmt: skip
        raise lookups_error
    day, future = failed[0]
    error = _failure(future)
    assert error is not None
    if len(days) > 1:
        done = [d.partition_key for d, f in zip(days, futures) if not f.cancelled() and f.exception() is None]
        error.add_note(
            f"Partition {day.partition_key} failed; of the run's other days "
            + (f"{', '.join(done)} finished (their files are complete)" if done else "none finished")
            + ". A rerun of the range extracts every day again."
        )
    raise error


def _failure(future: Future) -> BaseException | None:
    """The day's error, unless it only stopped because another day failed."""
    error = future.exception()
    return None if isinstance(error, Stopped) else error
