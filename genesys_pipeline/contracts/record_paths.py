"""Which JSON paths of a conversation-detail record the flattened tables hold, and which they leave out
on purpose: what the schema-drift check (steps/schema_drift.py) compares each day's records with.

A path names a field wherever it occurs, with `[]` for the elements of an array of objects:
`participants[].sessions[].segments[].segmentType`. Metrics are told apart by name, since a new metric
is a new field in all but form: `participants[].sessions[].metrics[name=tTalk]`. The objects under an
opaque field (the keys of `participants[].attributes` are the org's own data) are not paths.

    MAPPED_PATHS    every field a flattened column is made from, with the columns ("table.column")
    IGNORED_PATHS   fields of the Genesys SDK's models (v269) that no column holds, and why; the whole
                    record, these included, is in CONVERSATIONS_RAW.record
    METRIC_NAMES    the metric names a detail record can carry (the SDK's metric enum)

Anything else in a record is drift: a field Genesys added after this list was written. A mapped path
that stops appearing is drift too (a renamed field leaves its columns null).
"""

from __future__ import annotations

import dataclasses

from genesys_pipeline.contracts.paths import FLAT_PREFIX
from genesys_pipeline.contracts.tables import TABLES

PARTICIPANT = "participants[]."
SESSION = PARTICIPANT + "sessions[]."
SEGMENT = SESSION + "segments[]."
METRICS = SESSION + "metrics[]"
FLOW = SESSION + "flow."
OUTCOME = FLOW + "outcomes[]."
ENDPOINT_STAT = SESSION + "mediaEndpointStats[]."
EVALUATION, SURVEY, RESOLUTION = "evaluations[].", "surveys[].", "resolutions[]."


def metric_path(name: str) -> str:
    """The path of a metric by name: `participants[].sessions[].metrics[name=tTalk]`."""
    return f"{METRICS[:-2]}[name={name}]"


@dataclasses.dataclass(frozen=True)
class MappedPath:
    path: str
    columns: tuple[str, ...]  # "table.column": the columns made from it (alone or with other fields)


@dataclasses.dataclass(frozen=True)
class IgnoredPath:
    path: str
    reason: str


# Columns no field of the record makes: the partition, the run, positions in an array, the whole record.
NOT_FROM_A_FIELD = ("partition_date", "extraction_run_id", "extracted_at", "segment_index", "metric_index",
                    "resolution_index", "stat_index", "outcome_index", "conversations_raw.record")  # fmt: skip

# The fields of the key columns.
KEY_FIELDS = {"conversation_id": "conversationId", "participant_id": PARTICIPANT + "participantId",
              "session_id": SESSION + "sessionId"}  # fmt: skip

_CONVERSATION_AGENTS = ("conversations.agent_ids", "conversations.agent_names", "conversations.alerted_agent_ids",
                        "conversations.alerted_agent_names")  # fmt: skip
_FIRST_QUEUE = ("conversations.first_queue_id", "conversations.first_queue_name")
_FINAL_WRAPUP = ("conversations.final_wrapup_code_id", "conversations.final_wrapup_code_name")

# Fields that make one column each: (table, level, {field: column}).
_ONE_COLUMN = (
    ("participants", PARTICIPANT, {"teamId": "team_id", "externalContactId": "external_contact_id"}),
    ("sessions", SESSION, {"direction": "direction", "ani": "ani", "dnis": "dnis", "addressFrom": "address_from",
        "addressTo": "address_to", "messageType": "message_type", "peerId": "peer_id", "provider": "provider",
        "usedRouting": "used_routing", "recording": "recording"}),
    ("segments", SEGMENT, {"wrapUpNote": "wrapup_note", "errorCode": "error_code", "conference": "conference",
        "subject": "subject"}),
    ("session_metrics", METRICS, {".name": "name", ".value": "value", ".emitDate": "emit_date"}),
    ("flows", FLOW, {"flowId": "flow_id", "flowVersion": "flow_version", "entryType": "entry_type",
        "entryReason": "entry_reason", "transferType": "transfer_type",
        "transferTargetAddress": "transfer_target_address", "transferTargetName": "transfer_target_name",
        "issuedCallback": "issued_callback", "startingLanguage": "starting_language",
        "endingLanguage": "ending_language", "recognitionFailureReason": "recognition_failure_reason"}),
    ("flow_outcomes", OUTCOME, {"flowOutcomeValue": "flow_outcome_value", "flowOutcome": "flow_outcome",
        "flowOutcomeStartTimestamp": "outcome_start", "flowOutcomeEndTimestamp": "outcome_end"}),
    ("media_endpoint_stats", ENDPOINT_STAT, {"codecs": "codecs", "minMos": "min_mos", "minRFactor": "min_r_factor",
        "maxLatencyMs": "max_latency_ms", "receivedPackets": "received_packets",
        "discardedPackets": "discarded_packets", "duplicatePackets": "duplicate_packets",
        "invalidPackets": "invalid_packets", "overrunPackets": "overrun_packets",
        "underrunPackets": "underrun_packets", "eventTime": "event_time"}),
    ("evaluations", EVALUATION, {"evaluationId": "evaluation_id", "formId": "form_id", "formName": "form_name",
        "contextId": "form_context_id", "evaluationStatus": "evaluation_status", "eventTime": "event_time",
        "assigneeId": "assignee_id", "assigneeApplicable": "assignee_applicable", "calibrationId": "calibration_id",
        "oTotalScore": "total_score", "oTotalCriticalScore": "total_critical_score", "released": "released",
        "rescored": "rescored", "deleted": "deleted", "systemSubmitted": "system_submitted"}),
    ("surveys", SURVEY, {"surveyId": "survey_id", "surveyFormId": "survey_form_id",
        "surveyFormName": "survey_form_name", "surveyFormContextId": "survey_form_context_id",
        "surveyType": "survey_type", "surveyStatus": "survey_status", "surveyCompletedDate": "completed_at",
        "surveyPartialResponse": "partial_response", "oSurveyTotalScore": "total_score", "eventTime": "event_time"}),
    ("resolutions", RESOLUTION, {"nNextContactAvoided": "next_contact_avoided", "eventTime": "event_time"}),
)
# Ids whose name the flatten looks up as well: (table, level, {field: column stem}) -> <stem>_id, <stem>_name.
_ID_AND_NAME = (
    ("evaluations", EVALUATION, {"evaluatorId": "evaluator", "userId": "user", "queueId": "queue"}),
    ("surveys", SURVEY, {"userId": "user", "queueId": "queue"}),
    ("resolutions", RESOLUTION, {"userId": "user", "queueId": "queue"}),
)
# Fields that make several columns, or a column with other fields.
_FIELDS: dict[str, tuple[str, ...]] = {
    "conversationStart": ("conversations.conversation_start", "conversations.duration_ms",
                          "conversations_raw.conversation_start"),
    "conversationEnd": ("conversations.conversation_end", "conversations.duration_ms", "conversations.ongoing"),
    "originatingDirection": ("conversations.originating_direction",),
    "divisionIds": ("conversations.division_ids", "conversations.division_names"),
    PARTICIPANT + "purpose": ("participants.purpose", *_CONVERSATION_AGENTS, *_FIRST_QUEUE, *_FINAL_WRAPUP,
                              "conversations.transferred"),
    PARTICIPANT + "participantName": ("participants.participant_name", "conversations.first_queue_name",
                                      "segments.queue_name"),
    PARTICIPANT + "userId": ("participants.user_id", "participants.user_name", *_CONVERSATION_AGENTS),
    PARTICIPANT + "attributes": ("participant_attributes.attribute_key", "participant_attributes.attribute_value"),
    SESSION + "mediaType": ("sessions.media_type", "conversations.media_types"),
    SEGMENT + "segmentType": ("segments.segment_type", *_CONVERSATION_AGENTS, *_FINAL_WRAPUP),
    SEGMENT + "segmentStart": ("segments.segment_start", "segments.duration_ms", *_FIRST_QUEUE, *_FINAL_WRAPUP),
    SEGMENT + "segmentEnd": ("segments.segment_end", "segments.duration_ms"),
    SEGMENT + "queueId": ("segments.queue_id", "segments.queue_name", *_FIRST_QUEUE),
    SEGMENT + "wrapUpCode": ("segments.wrapup_code_id", "segments.wrapup_code_name", *_FINAL_WRAPUP),
    SEGMENT + "disconnectType": ("segments.disconnect_type", "conversations.transferred"),
    FLOW + "flowName": ("sessions.flow_name", "flows.flow_name"),
    FLOW + "flowType": ("sessions.flow_type", "flows.flow_type"),
    FLOW + "exitReason": ("sessions.flow_exit_reason", "flows.exit_reason"),
    OUTCOME + "flowOutcomeId": ("flow_outcomes.flow_outcome_id", "flows.outcome_count"),
    SURVEY + "surveyPromoterScore": ("surveys.promoter_score", "surveys.promoter_category"),
    **{prefix + field: (f"{table}.{stem}_id", f"{table}.{stem}_name") for table, prefix, fields in _ID_AND_NAME
       for field, stem in fields.items()},
    **{prefix + field: (f"{table}.{column}",) for table, prefix, fields in _ONE_COLUMN
       for field, column in fields.items()},
}  # fmt: skip

# Every metric name valid in detail records (the SDK's ConversationDetailQueryPredicate.metric enum, v269).
METRIC_NAMES = frozenset("""
    nAgentDeclined nAlertExpired nBlindTransferred nBotInteractions nCallbackAttempts nCallbackOverSla
    nCallbackScheduled nCfcOffered nCobrowseSessions nConnected nConsult nConsultTransferred nConversations nError
    nFlow nFlowMilestone nFlowOutcome nFlowOutcomeFailed nOffered nOutbound nOutboundAbandoned nOutboundAttempted
    nOutboundConnected nOverSla nStateTransitionError nTakeover nTransferred oAudioMessageCount
    oExternalAudioMessageCount oExternalMediaCount oFlowMilestone oMediaCount oMessageCount oMessageSegmentCount
    oMessageTurn oSkillExpressionApplications tAbandon tAcd tActiveCallback tActiveCallbackComplete tAcw
    tAgentResponseTime tAgentVideoConnected tAlert tAnswered tAverageAgentResponseTime tAverageCustomerResponseTime
    tBarging tCallbackAbandon tCallbackConnect tCallbackNotReached tCallbackVirtualWait tCfcAbandon tCfcAcd
    tCfcAnswered tCfcFlowOut tCoaching tCoachingComplete tConnected tContacting tConversationDuration tDialing
    tFirstConnect tFirstDial tFirstEngagement tFirstResponse tFlow tFlowDisconnect tFlowExit tFlowOut
    tFlowOutcome tHandle tHeld tHeldComplete tIvr tMonitoring tMonitoringComplete tNotResponding tPark
    tParkComplete tScreenMonitoring tShortAbandon tSnippetRecord tTalk tTalkComplete tTransmitting
    tUserResponseTime tVoicemail
""".split())
# Beyond SESSION_METRICS (every metric, by name), these columns are made from a metric by name.
_METRIC_COLUMNS = {
    "tTalk": ("conversations.talk_ms", *_CONVERSATION_AGENTS),
    "tHandle": ("conversations.handle_ms", *_CONVERSATION_AGENTS),
    "tHeld": ("conversations.hold_ms",), "tAcw": ("conversations.acw_ms",), "tAcd": ("conversations.wait_ms",),
    "tAbandon": ("conversations.abandon_ms", "conversations.abandoned"),
    "nTransferred": ("conversations.transferred",), "nBlindTransferred": ("conversations.transferred",),
    "nConsultTransferred": ("conversations.transferred",),
}  # fmt: skip


MAPPED_PATHS: tuple[MappedPath, ...] = (
    # The key columns, in every table that has them.
    *(MappedPath(path, tuple(f"{t.name}.{column}" for t in TABLES if column in t.column_names))
      for column, path in KEY_FIELDS.items()),
    *(MappedPath(path, columns) for path, columns in _FIELDS.items()),
    *(MappedPath(metric_path(name), ("session_metrics.name", "session_metrics.value", *_METRIC_COLUMNS.get(name, ())))
      for name in sorted(METRIC_NAMES)),
)  # fmt: skip


def _ignored(reason: str, prefix: str, names: str) -> tuple[IgnoredPath, ...]:
    return tuple(IgnoredPath(prefix + name, reason) for name in names.split())


_RAW_ONLY = "in CONVERSATIONS_RAW.record only: "
IGNORED_PATHS: tuple[IgnoredPath, ...] = (
    *_ignored(_RAW_ONLY + "conversation-level detail no flattened table models", "", """
        mediaStatsMinConversationMos mediaStatsMinConversationRFactor conversationInitiator customerParticipation
        externalTag associatedConversationId consultationConversationIds conferenceStart accessAttributes
        inactivityTimeout knowledgeBaseIds originatingSocialMediaPublic selfServed"""),
    *_ignored(_RAW_ONLY + "participant detail no flattened table models", PARTICIPANT, """
        externalOrganizationId flaggedReason screenRecording"""),
    *_ignored(_RAW_ONLY + "session detail no flattened table models (routing, dialer, messaging, video, "
              "journey and supervision fields)", SESSION, """
        activeSkillIds acwSkipped addressOther addressSelf agentAssistantId agentBullseyeRing agentOwned assignerId
        authenticated bargedParticipantId bcc cc callbackNumbers callbackScheduledTime callbackUserName cleared
        coachedParticipantId cobrowseRole cobrowseRoomId deliveryPushed deliveryStatus deliveryStatusChangeDate
        destinationAddresses detectedSpeechEnd detectedSpeechStart dispositionAnalyzer dispositionName edgeId
        eligibleAgentCounts engagementSource errorCodeDescription extendedDeliveryStatus flowInType flowOutType
        journeyActionId journeyActionMapId journeyActionMapVersion journeyCustomerId journeyCustomerIdType
        journeyCustomerSessionId journeyCustomerSessionIdType mediaBridgeId mediaCount monitoredParticipantId
        outboundCampaignId outboundContactId outboundContactListId protocolCallId remote remoteNameDisplayable
        removedSkillIds requestedRoutings roomId routingRing routingRule routingRuleType screenMonitoredUserId
        screenShareAddressSelf screenShareRoomId scriptId selectedAgentId selectedAgentRank sessionDnis
        sharingScreen skillExpressionId skipEnabled snippetRecording timeoutSeconds videoAddressSelf videoRoomId
        waitingInteractionCounts agentGroups proposedAgents"""),
    *_ignored(_RAW_ONLY + "segment detail no flattened table models", SEGMENT, """
        wrapUpTags audioMuted videoMuted destinationConversationId destinationSessionId sourceConversationId
        sourceSessionId groupId q850ResponseCodes sipResponseCodes requestedLanguageId requestedRoutingSkillIds
        requestedRoutingUserIds scoredAgents properties"""),
)

MAPPED_BY_PATH = {mapped.path: mapped for mapped in MAPPED_PATHS}
IGNORED_BY_PATH = {ignored.path: ignored for ignored in IGNORED_PATHS}
KNOWN_PATHS = frozenset(MAPPED_BY_PATH) | frozenset(IGNORED_BY_PATH)

# Working location: each day's paths (written by the flatten step), and the check's last list.
RECORD_PATHS_FILE = "record_paths.json"
DRIFT_STATE_PATH = "checks/schema_drift.json"


def record_paths_path(partition_key: str) -> str:
    """`flat/<day>/record_paths.json`: the paths the day's raw records hold, with counts and samples."""
    return f"{FLAT_PREFIX}/{partition_key}/{RECORD_PATHS_FILE}"
