"""The checks: on `snowflake_conversations`, the wiring of steps/row_counts.py; on
`flattened_conversations`, of steps/schema_drift.py.

`row_counts_match_across_stages` (blocking): the pipeline's own stages (raw, flatten, S3, COPY,
COUNT) must agree exactly; a mismatch is rows lost or gained by us, and fails the run.
`api_count_close_to_extracted` (not blocking, WARN): the API's own count of a day (the details query's
totalHits, which Genesys documents as approximate) against the records extracted, within
GENESYS_API_COUNT_TOLERANCE_PERCENT. An approximate number cannot prove a day wrong, so it warns
instead of blocking a correct day's load; a day for which the API gives no independent count is
reported as not compared.
`record_fields_match_the_contract` (not blocking, WARN, on flattened_conversations): the fields of the
day's records against those the flattened tables map or knowingly leave out (contracts/record_paths.py);
it warns when the list of new fields and mapped fields no longer sent changes from its previous
evaluation.

All are partitioned like the asset (Dagster calls that preview in 1.13): a single-day run records the
result against that day. A ranged run (a backfill's run of several days) evaluates every day of the range
at once, and Dagster 1.13 records a check's result against the range, not per day (one result per check
and step, without a partition). So each day's own result is logged as well, as an evaluation of that
partition (`_record_each_day`): the check's partitions page then shows every backfilled day Passed or
Failed with its own table. The returned result, for the whole range, is still what blocks the run.
"""

import warnings
from typing import Callable

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.tables import CONVERSATIONS
from genesys_pipeline.defs.partitions import daily_partitions
from genesys_pipeline.defs.resources import selected_tables
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.settings import SETTINGS
from genesys_pipeline.steps.row_counts import (
    ApiComparison,
    TableCounts,
    api_markdown_table,
    compare_api_counts,
    gather_counts,
    markdown_table,
)
from genesys_pipeline.steps.schema_drift import (
    NEW_FIELD,
    DriftReport,
    describe,
    drift_table,
    evaluate_drift,
)

ROW_COUNT_CHECK = "row_counts_match_across_stages"
DRIFT_CHECK = "record_fields_match_the_contract"
API_COUNT_CHECK = "api_count_close_to_extracted"
TOLERANCE_VARIABLE = "GENESYS_API_COUNT_TOLERANCE_PERCENT"


def _daily_check(
    name: str, blocking: bool, description: str, asset: str = "snowflake_conversations"
) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """`dg.asset_check` on the asset, partitioned like it (see the module docstring)."""

    def decorate(function: Callable[..., dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)  # partitions_def on checks: chosen deliberately
            return dg.asset_check(
                asset=asset, name=name, blocking=blocking, partitions_def=daily_partitions,
                description=description,
            )(function)  # fmt: skip

    return decorate


@_daily_check(
    ROW_COUNT_CHECK,
    blocking=True,
    description=(
        "Proves the day's numbers: for every table (of GENESYS_TABLES) and day, the raw records, the "
        "flattened rows, the rows "
        "in the published S3 object (read back from S3), the rows COPY loaded and COUNT(*) in Snowflake "
        "must all agree exactly. A mismatch names the table, the day and the two stages it lies between; "
        "the whole comparison is in the check's metadata. Blocking: a failed check fails the run. (The "
        f"API's own, approximate count is compared in {API_COUNT_CHECK}.)"
    ),
)
def row_counts_match_across_stages(
    context: dg.AssetCheckExecutionContext,
    working_storage: WorkingStorage,
    s3: S3Resource,
    s3_publishing: S3Publishing,
    snowflake: SnowflakeResource,
    snowflake_target: SnowflakeTarget,
) -> dg.AssetCheckResult:
    # partition_key raises in a ranged run; partition_keys is one day or the whole range.
    partition_keys = context.op_execution_context.partition_keys
    results = gather_counts(partition_keys, working_storage, s3, s3_publishing, snowflake, snowflake_target,
                            selected_tables())  # fmt: skip
    _record_each_day(context, "snowflake_conversations", ROW_COUNT_CHECK, partition_keys,
                     lambda day: check_result([day], [r for r in results if r.partition_key == day]))  # fmt: skip
    return check_result(partition_keys, results)


@_daily_check(
    API_COUNT_CHECK,
    blocking=False,
    description=(
        "Compares the API's own count of the day's conversations (the details query's totalHits for the "
        "UTC day, which Genesys documents as approximate) with the conversations extracted. Warns when "
        f"they differ by more than {TOLERANCE_VARIABLE} per cent of the extracted; never blocks the "
        "load. A day that is not one whole UTC day has no independent API count: it is reported as not "
        "compared."
    ),
)
def api_count_close_to_extracted(
    context: dg.AssetCheckExecutionContext, working_storage: WorkingStorage
) -> dg.AssetCheckResult:
    partition_keys = context.op_execution_context.partition_keys
    comparisons = compare_api_counts(partition_keys, working_storage, SETTINGS.api_count_tolerance_percent)
    _record_each_day(context, "snowflake_conversations", API_COUNT_CHECK, partition_keys,
                     lambda day: api_check_result([day], [c for c in comparisons if c.partition_key == day]))  # fmt: skip
    return api_check_result(partition_keys, comparisons)


@_daily_check(
    DRIFT_CHECK,
    blocking=False,
    asset="flattened_conversations",
    description=(
        "Lists the fields (JSON paths, such as participants[].sessions[].segments[].segmentType, and metrics "
        "by name) present in the day's raw records that no flattened column maps and that the documented "
        "ignore list does not name: fields Genesys added, kept only in CONVERSATIONS_RAW until a column "
        "maps them; and the mapped fields that stopped appearing (their columns go null). Each with how "
        "often it occurs and a conversation that has it. Warns when that list changes from the previous "
        "evaluation (a later day's or a rerun's), passes while it stays the same; never blocks the run."
    ),
)
def record_fields_match_the_contract(
    context: dg.AssetCheckExecutionContext, working_storage: WorkingStorage
) -> dg.AssetCheckResult:
    # Each day once, in order: an evaluation is the next one's "previous" (steps/schema_drift.py).
    reports = [evaluate_drift(working_storage, day) for day in context.op_execution_context.partition_keys]
    by_day = {report.partition_key: report for report in reports}
    _record_each_day(context, "flattened_conversations", DRIFT_CHECK, list(by_day),
                     lambda day: drift_check_result([by_day[day]]))  # fmt: skip
    return drift_check_result(reports)


asset_checks = [row_counts_match_across_stages, api_count_close_to_extracted, record_fields_match_the_contract]


def _record_each_day(
    context: dg.AssetCheckExecutionContext,
    asset: str,
    check_name: str,
    partition_keys: list[str],
    result_of_day: Callable[[str], dg.AssetCheckResult],
) -> None:
    """In a ranged run, log each day's result as an evaluation of that day's partition (see the module
    docstring); a single-day run's returned result is already recorded against its day."""
    if len(partition_keys) < 2:
        return
    for day in partition_keys:
        result = result_of_day(day)
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset), check_name=check_name, passed=result.passed,
                metadata=dict(result.metadata), severity=result.severity, description=result.description,
                partition=day,
            )
        )  # fmt: skip


def _days(partition_keys: list[str]) -> str:
    return partition_keys[0] if len(partition_keys) == 1 else f"{partition_keys[0]}..{partition_keys[-1]}"


def check_result(partition_keys: list[str], results: list[TableCounts]) -> dg.AssetCheckResult:
    """The check's verdict on `gather_counts`' results: passed, a description naming every mismatch,
    and the whole comparison as a markdown table."""
    problems = [problem for result in results for problem in result.problems]
    days = _days(partition_keys)
    if problems:
        description = f"{len(problems)} row-count mismatch(es) in {days}: " + "; ".join(problems)
    else:
        description = f"All {len({r.table for r in results})} tables agree at every stage for {days}."
    return dg.AssetCheckResult(
        passed=not problems,
        description=description,
        metadata={
            "comparison": dg.MetadataValue.md(markdown_table(results)),
            "mismatches": dg.MetadataValue.int(len(problems)),
            "problems": dg.MetadataValue.json(problems),
            "partitions": dg.MetadataValue.json(list(partition_keys)),
            "conversations_in_snowflake": dg.MetadataValue.int(
                sum(r.counts["snowflake"].rows or 0 for r in results if r.table == CONVERSATIONS.name)
            ),
        },
    )


def api_check_result(partition_keys: list[str], comparisons: list[ApiComparison]) -> dg.AssetCheckResult:
    """Passed unless a day's API count lies over the tolerance from its records (then a warning). Days
    without an independent count are named as not compared; if no day had one, the description says
    that nothing was compared rather than that the counts agree."""
    over = [c for c in comparisons if c.over_tolerance]
    compared = [c for c in comparisons if c.compared]
    tolerance = comparisons[0].tolerance_percent if comparisons else SETTINGS.api_count_tolerance_percent
    days = _days(partition_keys)
    if over:
        head = (f"The API's count is more than {tolerance:g} % ({TOLERANCE_VARIABLE}) off the records "
                f"extracted for {len(over)} day(s) of {days}")  # fmt: skip
    elif compared:
        head = f"The API's count is within {tolerance:g} % of the records extracted for {days}"
    else:
        head = f"Nothing compared for {days}: the API gave no independent count"
    return dg.AssetCheckResult(
        passed=not over,
        severity=dg.AssetCheckSeverity.WARN,
        description=head + ". " + "; ".join(c.sentence() for c in comparisons) + ".",
        metadata={
            "comparison": dg.MetadataValue.md(api_markdown_table(comparisons)),
            "tolerance_percent": dg.MetadataValue.float(tolerance),
            "days_compared": dg.MetadataValue.int(len(compared)),
            "days_over_tolerance": dg.MetadataValue.json([c.partition_key for c in over]),
            "days_not_compared": dg.MetadataValue.json({c.partition_key: c.note for c in comparisons
                                                        if not c.compared}),  # fmt: skip
            "partitions": dg.MetadataValue.json(list(partition_keys)),
        },
    )


def drift_check_result(reports: list[DriftReport]) -> dg.AssetCheckResult:
    """WARN when a day's drift list changed from the evaluation before it; each drifted path in a table."""
    entries = [e for r in reports for e in r.entries]
    return dg.AssetCheckResult(
        passed=not any(r.changed for r in reports),
        severity=dg.AssetCheckSeverity.WARN,
        description=" ".join(describe(r) for r in reports),
        metadata={
            "drift": dg.MetadataValue.md(drift_table(reports)),
            "new_fields": dg.MetadataValue.json(sorted({e.path for e in entries if e.kind == NEW_FIELD})),
            "no_longer_sent": dg.MetadataValue.json(sorted({e.path for e in entries if e.kind != NEW_FIELD})),
            "changed_days": dg.MetadataValue.json([r.partition_key for r in reports if r.changed]),
            "records": dg.MetadataValue.int(sum(r.records for r in reports)),
            "partitions": dg.MetadataValue.json([r.partition_key for r in reports]),
        },
    )
