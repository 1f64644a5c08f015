"""The tables of a record's quality, survey and flow data: evaluations, surveys and resolutions (children
of the conversation), media endpoint stats (children of a session), flows (one per flow session) and
their outcomes. Built from the same column vocabulary as tables.py, which lists them in TABLES.

Evaluations and surveys are keyed by their own ids, which Genesys always sends; resolutions, stats and
outcomes have no id of their own and are keyed by their position in the record.
"""

from __future__ import annotations

import pyarrow as pa

from genesys_pipeline.contracts.columns import (
    Column,
    Table,
    flag,
    json_list,
    number,
    text,
    timestamp,
)
from genesys_pipeline.contracts.conversation_keys import (
    CONVERSATION_ID,
    EXTRACTION_RUN,
    PARTICIPANT_ID,
    PARTITION_DATE,
    SESSION_ID,
)


def real(name: str, description: str) -> Column:
    """A measurement with a fraction (a MOS of 4.38): float64 in Parquet, FLOAT in Snowflake."""
    return Column(name, pa.float64(), "FLOAT", True, description)


def _user_name(field: str) -> Column:
    return text(field.replace("_id", "_name"), "its name (DIM_USERS.name, deleted users included); null if unresolved")


_QUEUE_NAME = text("queue_name", "its name (DIM_QUEUES.name); null if unresolved")

EVALUATIONS = Table(
    "evaluations",
    key=("conversation_id", "evaluation_id"),
    description="One row per quality evaluation of the conversation (evaluations[]), as it stands when the "
    "day was extracted: a later run of the day brings evaluations finished or changed since.",
    columns=(
        CONVERSATION_ID,
        text("evaluation_id", "evaluations[].evaluationId", nullable=False),
        PARTITION_DATE,
        text("form_id", "evaluations[].formId: the evaluation form (this version of it)"),
        text("form_name", "evaluations[].formName"),
        text("form_context_id", "evaluations[].contextId: the form whatever its version"),
        text("evaluation_status", "evaluations[].evaluationStatus: Finished, InProgress, InReview, Pending or Retracted"),
        timestamp("event_time", "evaluations[].eventTime: when the evaluation happened"),
        text("evaluator_id", "evaluations[].evaluatorId: the user who scored (DIM_USERS.user_id)"),
        _user_name("evaluator_id"),
        text("user_id", "evaluations[].userId: the agent evaluated (DIM_USERS.user_id)"),
        _user_name("user_id"),
        text("queue_id", "evaluations[].queueId (DIM_QUEUES.queue_id)"),
        _QUEUE_NAME,
        text("assignee_id", "evaluations[].assigneeId: the user the evaluation is assigned to"),
        flag("assignee_applicable", "evaluations[].assigneeApplicable"),
        text("calibration_id", "evaluations[].calibrationId: the calibration session (evaluator training) it belongs to; null for a normal evaluation"),
        number("total_score", "evaluations[].oTotalScore: the form's total score"),
        number("total_critical_score", "evaluations[].oTotalCriticalScore: the score over the form's critical questions"),
        flag("released", "evaluations[].released: the agent can see it"),
        flag("rescored", "evaluations[].rescored: scored again at least once"),
        flag("deleted", "evaluations[].deleted"),
        flag("system_submitted", "evaluations[].systemSubmitted: submitted automatically"),
        EXTRACTION_RUN,
    ),
)

SURVEYS = Table(
    "surveys",
    key=("conversation_id", "survey_id"),
    description="One row per customer survey of the conversation (surveys[]): a post-call or web survey, "
    "with its NPS answer and score.",
    columns=(
        CONVERSATION_ID,
        text("survey_id", "surveys[].surveyId", nullable=False),
        PARTITION_DATE,
        text("survey_form_id", "surveys[].surveyFormId: the survey form (this version of it)"),
        text("survey_form_name", "surveys[].surveyFormName"),
        text("survey_form_context_id", "surveys[].surveyFormContextId: the form whatever its version"),
        text("survey_type", "surveys[].surveyType: Voice or Web"),
        text("survey_status", "surveys[].surveyStatus (Finished, ...)"),
        timestamp("completed_at", "surveys[].surveyCompletedDate: when the customer completed it"),
        flag("partial_response", "surveys[].surveyPartialResponse: completed with required questions unanswered"),
        number("promoter_score", "surveys[].surveyPromoterScore: the answer to the NPS question, 0 to 10"),
        text("promoter_category", "from promoter_score, as NPS counts it: promoter (9-10), passive (7-8), detractor (0-6); null without an answer"),
        number("total_score", "surveys[].oSurveyTotalScore: the survey's total score"),
        text("user_id", "surveys[].userId: the agent the survey is about (DIM_USERS.user_id)"),
        _user_name("user_id"),
        text("queue_id", "surveys[].queueId (DIM_QUEUES.queue_id)"),
        _QUEUE_NAME,
        timestamp("event_time", "surveys[].eventTime"),
        EXTRACTION_RUN,
    ),
)

RESOLUTIONS = Table(
    "resolutions",
    key=("conversation_id", "resolution_index"),
    description="One row per resolution of the conversation (resolutions[]): Genesys's first-contact "
    "resolution, with the last queue and agent that handled the conversation.",
    columns=(
        CONVERSATION_ID,
        number("resolution_index", "position in the record's resolutions, from 0", nullable=False),
        PARTITION_DATE,
        text("queue_id", "resolutions[].queueId: the last queue that handled the conversation (DIM_QUEUES.queue_id)"),
        _QUEUE_NAME,
        text("user_id", "resolutions[].userId: the last agent who handled it (DIM_USERS.user_id)"),
        _user_name("user_id"),
        number("next_contact_avoided", "resolutions[].nNextContactAvoided: 1 when the customer made no next contact (resolved on first contact)"),
        timestamp("event_time", "resolutions[].eventTime: when the resolution was determined"),
        EXTRACTION_RUN,
    ),
)

MEDIA_ENDPOINT_STATS = Table(
    "media_endpoint_stats",
    key=("conversation_id", "participant_id", "session_id", "stat_index"),
    description="One row per media endpoint statistics entry of a session (mediaEndpointStats[]): the "
    "audio quality of a voice endpoint. Join SESSIONS and PARTICIPANTS for the media, queue and agent.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        number("stat_index", "position in the session's mediaEndpointStats, from 0", nullable=False),
        PARTITION_DATE,
        json_list("codecs", "mediaEndpointStats[].codecs: the audio MIME types used"),
        real("min_mos", "mediaEndpointStats[].minMos: the worst estimated MOS (1 to 5) of the endpoint's audio streams"),
        real("min_r_factor", "mediaEndpointStats[].minRFactor: the worst R-factor (0 to 100)"),
        number("max_latency_ms", "mediaEndpointStats[].maxLatencyMs: the maximum latency, in ms"),
        number("received_packets", "mediaEndpointStats[].receivedPackets: all packets received, invalid, duplicate and discarded included"),
        number("discarded_packets", "mediaEndpointStats[].discardedPackets: arrived too late or too early, or jitter-queue overrun or underrun"),
        number("duplicate_packets", "mediaEndpointStats[].duplicatePackets: duplicate sequence numbers"),
        number("invalid_packets", "mediaEndpointStats[].invalidPackets: malformed, not RTP, or an unknown payload"),
        number("overrun_packets", "mediaEndpointStats[].overrunPackets: jitter queue full (also counted as discarded)"),
        number("underrun_packets", "mediaEndpointStats[].underrunPackets: arrived after play-out (also counted as discarded)"),
        timestamp("event_time", "mediaEndpointStats[].eventTime: when the statistics were taken"),
        EXTRACTION_RUN,
    ),
)

FLOWS = Table(
    "flows",
    key=("conversation_id", "participant_id", "session_id"),
    description="One row per flow session (participants[].sessions[].flow): an Architect flow the conversation "
    "went through (IVR, in-queue, bot), how it entered and how it left.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        PARTITION_DATE,
        text("flow_id", "flow.flowId"),
        text("flow_name", "flow.flowName: the name when the flow ran"),
        text("flow_type", "flow.flowType: INBOUNDCALL, INQUEUECALL, BOT, INBOUNDCHAT, ..."),
        text("flow_version", "flow.flowVersion (\"5.0\")"),
        text("entry_type", "flow.entryType: agent, direct, dnis, flow or outbound"),
        text("entry_reason", "flow.entryReason: what started it (the number dialled, a user or a flow id)"),
        text("exit_reason", "flow.exitReason: TRANSFER, DISCONNECT, CUSTOMER_DISCONNECT, ...; null while the flow runs"),
        text("transfer_type", "flow.transferType: how a flow that ended in a transfer transferred (ACD, ...)"),
        text("transfer_target_address", "flow.transferTargetAddress: where it transferred to"),
        text("transfer_target_name", "flow.transferTargetName: the queue, user or flow it transferred to"),
        flag("issued_callback", "flow.issuedCallback: the flow scheduled a callback"),
        text("starting_language", "flow.startingLanguage"),
        text("ending_language", "flow.endingLanguage"),
        text("recognition_failure_reason", "flow.recognitionFailureReason: why speech or bot recognition failed"),
        number("outcome_count", "how many entries flow.outcomes has (its rows in FLOW_OUTCOMES); 0 without outcomes", nullable=False),
        EXTRACTION_RUN,
    ),
)

FLOW_OUTCOMES = Table(
    "flow_outcomes",
    key=("conversation_id", "participant_id", "session_id", "outcome_index"),
    description="One row per outcome of a flow (flow.outcomes[]): the business outcomes an Architect flow "
    "sets (a caller authenticated, a payment taken), with their value. A child of FLOWS.",
    columns=(
        CONVERSATION_ID,
        PARTICIPANT_ID,
        SESSION_ID,
        number("outcome_index", "position in the flow's outcomes, from 0", nullable=False),
        PARTITION_DATE,
        text("flow_outcome_id", "flow.outcomes[].flowOutcomeId: the outcome defined in Architect"),
        text("flow_outcome_value", "flow.outcomes[].flowOutcomeValue: SUCCESS, FAILURE"),
        text("flow_outcome", "flow.outcomes[].flowOutcome: \"<flowOutcomeId>:<flowOutcomeValue>\""),
        timestamp("outcome_start", "flow.outcomes[].flowOutcomeStartTimestamp"),
        timestamp("outcome_end", "flow.outcomes[].flowOutcomeEndTimestamp; may be null when the outcome did not succeed"),
        EXTRACTION_RUN,
    ),
)

QUALITY_AND_FLOW_TABLES: tuple[Table, ...] = (
    EVALUATIONS,
    SURVEYS,
    RESOLUTIONS,
    MEDIA_ENDPOINT_STATS,
    FLOWS,
    FLOW_OUTCOMES,
)
