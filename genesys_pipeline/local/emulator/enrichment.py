"""What a record carries beside the interaction itself: quality evaluations and surveys (which arrive
hours to days after the end, as restatements) and participant attributes (job results only)."""

from __future__ import annotations

import random
from typing import Any

from . import texts
from .directory import Directory
from .ids import iso_ms, uuid_from_bits
from .records import Conversation

ATTRIBUTE_LIMIT = 1024  # job results truncate participant attribute keys and values to this many characters


def evaluation(
    rng: random.Random, directory: Directory, at: int, queue_id: str, user_id: str
) -> dict[str, Any]:
    """An AnalyticsEvaluation of agent `user_id` as finished and scored (its versions over time:
    restatements.evaluation_versions)."""
    form_id, form_name = rng.choice(directory.evaluation_forms)
    rng.getrandbits(128)  # was a random contextId; still drawn so that every later draw stays as it was
    return {
        "contextId": directory.evaluation_context_ids[form_id],  # the form's, whatever its version
        "deleted": False,
        "evaluationId": uuid_from_bits(rng.getrandbits(128)),
        "evaluationStatus": "Finished",
        "evaluatorId": rng.choice(directory.evaluator_ids),
        "eventTime": iso_ms(at),
        "formId": form_id,
        "formName": form_name,
        "queueId": queue_id,
        "released": True,
        "rescored": False,
        "systemSubmitted": False,
        "userId": user_id,
        "oTotalCriticalScore": rng.choice((0, 100, 100, 100)),
        "oTotalScore": rng.randint(40, 100),
    }


def survey(
    rng: random.Random, directory: Directory, at: int, queue_id: str, user_id: str, media: str
) -> dict[str, Any]:
    """An AnalyticsSurvey about agent `user_id`, completed by the customer at `at`."""
    form_id, form_name, context_id = rng.choice(directory.survey_forms)
    completed = iso_ms(at)
    return {
        "eventTime": completed,
        "queueId": queue_id,
        "surveyCompletedDate": completed,
        "surveyFormContextId": context_id,
        "surveyFormId": form_id,
        "surveyFormName": form_name,
        "surveyId": uuid_from_bits(rng.getrandbits(128)),
        "surveyPartialResponse": False,
        "surveyPromoterScore": rng.randint(0, 10),
        "surveyStatus": "Finished",
        "surveyType": "Voice" if media == "voice" else "Web",
        "userId": user_id,
        "oSurveyTotalScore": rng.randint(0, 100),
    }


def add_attributes(rng: random.Random, conversation: Conversation) -> None:
    """Participant data for ~60% of conversations, on the customer (and sometimes the IVR or an agent),
    truncated to ATTRIBUTE_LIMIT characters as the API does; some CRM payloads are longer than that."""
    if rng.random() >= 0.6:
        return
    for participant in conversation.participants:
        purpose = participant.head["purpose"]
        if purpose in ("customer", "external"):
            attributes = {
                "AccountNumber": f"ACC-{rng.randint(100_000, 999_999)}",
                "CustomerSegment": rng.choice(texts.SEGMENTS),
                "Intent": rng.choice(texts.INTENTS),
                "Language": rng.choice(texts.LANGUAGES),
            }
            if rng.random() < 0.5:
                attributes["Notes"] = rng.choice(texts.ATTRIBUTE_FREE_TEXT)
            if rng.random() < 0.08:
                attributes["CrmPayload"] = texts.long_payload(rng.randint(1100, 4000))
            if rng.random() < 0.03:
                attributes[texts.long_payload(1100)] = "key longer than the limit"
        elif purpose == "ivr" and rng.random() < 0.4:
            attributes = {"IVR.MenuChoice": str(rng.randint(1, 9)), "IVR.Intent": rng.choice(texts.INTENTS)}
        elif purpose == "agent" and rng.random() < 0.2:
            attributes = {"ScriptOutcome": rng.choice(texts.ATTRIBUTE_FREE_TEXT)}
        else:
            continue
        participant.attributes = {k[:ATTRIBUTE_LIMIT]: v[:ATTRIBUTE_LIMIT] for k, v in attributes.items()}
