"""Which key of a raw record becomes which column, and which metrics the conversations table sums."""

from __future__ import annotations

import orjson

SYSTEM_WRAPUP_PREFIX = "ININ-"  # a system wrap-up code: the code is both its id and its name

# Metrics summed into conversation columns, and those that mark a transfer.
SUMMED_METRICS = {"tTalk": "talk_ms", "tHeld": "hold_ms", "tAcw": "acw_ms", "tHandle": "handle_ms",
                  "tAcd": "wait_ms", "tAbandon": "abandon_ms"}  # fmt: skip
_TRANSFERS = ("nTransferred", "nBlindTransferred", "nConsultTransferred")
TRACKED_METRICS = frozenset(SUMMED_METRICS) | frozenset(_TRANSFERS)
# A transfer made by a person (genesys-api-more.md s4.1's decision), on an agent or user segment. The
# routing redirects noAnswerTransfer (RONA), notAvailableTransfer and dndTransfer are not transfers.
TRANSFER_DISCONNECTS = frozenset(("transfer", "consultTransfer", "conferenceTransfer", "forwardTransfer"))
# An agent handled the conversation if a session of theirs has an interact segment or one of these.
HANDLED_METRICS = frozenset(("tTalk", "tHandle"))
# Who wraps a conversation up, besides agents (genesys-api-more.md s3.2): a `user` reached without a
# queue, and the dialer's leg of a campaign call (purpose `outbound`; `dialer` and `campaign` are the
# API's other purposes for the dialer) when no agent took the call, as in an agentless campaign.
OTHER_WRAPUP_PURPOSES = frozenset(("user", "outbound", "dialer", "campaign"))


def _orjson_keys(*keys: str) -> tuple[str, ...]:
    """The very str objects orjson uses for these object keys (it caches keys it has parsed), so that
    `dict.get` in the hot loop finds them by identity instead of comparing characters."""
    return tuple(orjson.loads(orjson.dumps(dict.fromkeys(keys, 0))))


# The fields copied as they are, in the order of the flat row lists (a column is a strided slice).
# The metrics loop reads its three keys by name, so only the other record keys are orjson's own.
CONVERSATION_KEYS = _orjson_keys("conversationId", "conversationStart", "conversationEnd", "originatingDirection")
CONVERSATION_COLUMNS = ("conversation_id", "conversation_start", "conversation_end", "originating_direction")
PARTICIPANT_KEYS = _orjson_keys("participantId", "purpose", "participantName", "userId", "teamId",
                                "externalContactId")  # fmt: skip
PARTICIPANT_COLUMNS = ("participant_id", "purpose", "participant_name", "user_id", "team_id", "external_contact_id")
SESSION_KEYS = _orjson_keys("sessionId", "mediaType", "direction", "ani", "dnis", "addressFrom", "addressTo",
                            "messageType", "peerId", "provider", "usedRouting", "recording")  # fmt: skip
SESSION_COLUMNS = ("session_id", "media_type", "direction", "ani", "dnis", "address_from", "address_to",
                   "message_type", "peer_id", "provider", "used_routing", "recording")
FLOW_KEYS = _orjson_keys("flowName", "flowType", "exitReason")
FLOW_COLUMNS = ("flow_name", "flow_type", "flow_exit_reason")
SEGMENT_KEYS = _orjson_keys("segmentType", "segmentStart", "segmentEnd", "queueId", "wrapUpCode", "wrapUpNote",
                            "disconnectType", "errorCode", "conference", "subject")  # fmt: skip
SEGMENT_COLUMNS = ("segment_type", "segment_start", "segment_end", "queue_id", "wrapup_code_id", "wrapup_note",
                   "disconnect_type", "error_code", "conference", "subject")
METRIC_KEYS = ("name", "value", "emitDate")
METRIC_COLUMNS = ("name", "value", "emit_date")
