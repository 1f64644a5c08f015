"""Operators' signal when a run fails: a message to a chat webhook. (Freshness is the policy on
snowflake_conversations.)"""

import dagster as dg

from genesys_pipeline.defs.jobs import conversations_job, dimensions_job
from genesys_pipeline.resources.alerts import FailureAlerts
from genesys_pipeline.settings import SETTINGS
from genesys_pipeline.steps.alerts import AlertError

ALERT_VARIABLE = "GENESYS_ALERT_WEBHOOK_URL"


def _days(run: dg.DagsterRun) -> str:
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return f"{start}..{end}" if start and end else ""


@dg.run_failure_sensor(
    name="genesys_failed_run_alert",
    monitored_jobs=[conversations_job, dimensions_job],
    default_status=dg.DefaultSensorStatus.RUNNING if SETTINGS.alerts_configured else dg.DefaultSensorStatus.STOPPED,
    description=(
        "Posts a message to the chat webhook in GENESYS_ALERT_WEBHOOK_URL (Slack, Mattermost, Google Chat) "
        "when a run of genesys_conversations or genesys_dimensions fails: the job, the day or days, the "
        "cause and a link to the run (GENESYS_DAGSTER_UI_URL). Running when that variable is set; set "
        "it to turn alerts on."
    ),
)
def genesys_failed_run_alert(context: dg.RunFailureSensorContext, alerts: FailureAlerts) -> None:
    run = context.dagster_run
    try:
        alerts.announce_failure(run.job_name, run.run_id, _days(run), context.failure_event.message)
    except AlertError as error:
        # Logged, not raised: a sensor that raises is retried for the same failure, and posts again.
        context.log.warning(f"Could not announce the failure of run {run.run_id}: {error}")
        return
    context.log.info(f"Announced the failure of run {run.run_id} ({run.job_name} {_days(run)})")


def alert_resources() -> dict[str, FailureAlerts]:
    """The alerting resource; its URL is only read when the sensor runs (an EnvVar)."""
    return {"alerts": FailureAlerts(webhook_url=dg.EnvVar(ALERT_VARIABLE), ui_base_url=SETTINGS.dagster_ui_url)}


sensors = [genesys_failed_run_alert]
