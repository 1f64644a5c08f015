"""The row-count check on `snowflake_conversations`: the wiring of steps/row_counts.py.

Blocking, partitioned like the asset (Dagster calls that preview in 1.13): a single-day run records
the result against that day. A ranged run (one run for several days) evaluates every day of the
range at once; Dagster then records it against the asset, not per day.
"""

import warnings

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from genesys_pipeline.contracts.tables import CONVERSATIONS, TABLES
from genesys_pipeline.defs.partitions import daily_partitions
from genesys_pipeline.resources.warehouse import S3Publishing, SnowflakeTarget
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline.steps.row_counts import TableCounts, gather_counts, markdown_table

ROW_COUNT_CHECK = "row_counts_match_across_stages"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # partitions_def on checks: chosen deliberately, see above

    @dg.asset_check(
        asset="snowflake_conversations",
        name=ROW_COUNT_CHECK,
        blocking=True,
        partitions_def=daily_partitions,
        description=(
            "Proves the day's numbers: for every table and day, the row count the API reported, the raw "
            "records, the flattened rows, the rows in the published S3 object (read back from S3), the rows "
            "COPY loaded and COUNT(*) in Snowflake must all agree. A mismatch names the table, the day and "
            "the two stages it lies between; the whole comparison is in the check's metadata. Blocking: a "
            "failed check fails the run."
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
        results = gather_counts(partition_keys, working_storage, s3, s3_publishing, snowflake, snowflake_target)
        return check_result(partition_keys, results)


asset_checks = [row_counts_match_across_stages]


def check_result(partition_keys: list[str], results: list[TableCounts]) -> dg.AssetCheckResult:
    """The check's verdict on `gather_counts`' results: passed, a description naming every mismatch,
    and the whole comparison as a markdown table."""
    problems = [problem for result in results for problem in result.problems]
    skipped = sorted(
        {f"{r.partition_key} ({r.counts['api'].skipped})" for r in results if "api" in r.counts and r.counts["api"].skipped}
    )
    days = f"{partition_keys[0]}" if len(partition_keys) == 1 else f"{partition_keys[0]}..{partition_keys[-1]}"
    if problems:
        description = f"{len(problems)} row-count mismatch(es) in {days}: " + "; ".join(problems)
    else:
        description = f"All {len(TABLES)} tables agree at every stage for {days}."
    if skipped:
        description += " API count comparison skipped for " + ", ".join(skipped) + "."
    return dg.AssetCheckResult(
        passed=not problems,
        description=description,
        metadata={
            "comparison": dg.MetadataValue.md(markdown_table(results)),
            "mismatches": dg.MetadataValue.int(len(problems)),
            "problems": dg.MetadataValue.json(problems),
            "partitions": dg.MetadataValue.json(list(partition_keys)),
            "api_comparison_skipped": dg.MetadataValue.json(skipped),
            "conversations_in_snowflake": dg.MetadataValue.int(
                sum(r.counts["snowflake"].rows or 0 for r in results if r.table == CONVERSATIONS.name)
            ),
        },
    )
