"""What Genesys reports about a conversation days after it ended, beyond the timeline's first draws:
an evaluation's later versions as the evaluator works on it, and the first-contact resolution.

Everything here is drawn from the conversation's second random stream (`second_stream`), never from
the one the timeline and the record are drawn from, so that a conversation without these shapes
stays byte for byte as it was. `draw_restatements` runs in `shapes.draw_timeline` (it decides when
the record last changes); `evaluation_versions` and `resolution` run when the record is built.

- Evaluations (genesys-api-more.md s6): an evaluation first appears `Pending` (assigned to an
  evaluator) or `InProgress` (the evaluator started it at once), with no scores; later `Finished`
  with its scores, released to the agent or not, sometimes submitted by the system at its due date;
  a few are rescored afterwards. A calibration is two evaluators scoring the same conversation under
  one `calibrationId`. `deleted` is false on every version.
- Resolutions (next contact avoidance, help.mypurecloud.com "Next contact avoidance"): tracked on
  every queue and media type; a conversation handled on a queue whose customer does not start another
  interaction within the fixed 7-day lookup period gets an AnalyticsResolution naming the last queue
  and user, reported after the lookup period plus a processing delay. Those whose customer came back
  get none.
"""

from __future__ import annotations

import random
from typing import Any

from .directory import Directory
from .enrichment import evaluation, survey
from .ids import iso_ms, uuid_from_bits
from .records import Conversation, Restated
from .scenarios import DAY_MS, HOUR_MS, Timeline

_SECOND_STREAM_SALT = 0x2E57_A7E5_0000_0012
MINUTE_MS = 60_000
CALIBRATION_SHARE = 0.08  # evaluations that are part of a calibration (two evaluators)
RESCORE_SHARE = 0.06
PARTIAL_SURVEY_SHARE = 0.07  # surveys completed with required questions unanswered
NEXT_CONTACT_AVOIDED_SHARE = 0.72  # customers who do not contact the centre again within the lookup period
NCA_LOOKUP_MS = 7 * DAY_MS  # fixed by Genesys; not configurable


def second_stream(seed: int) -> random.Random:
    """The conversation's second random stream, for what was added after its first stream was fixed."""
    return random.Random(seed ^ _SECOND_STREAM_SALT)


def draw_restatements(rng: random.Random, timeline: Timeline) -> None:
    """Fills the timeline's evaluation steps and resolution time (`rng`: the second stream)."""
    if timeline.evaluation_at is not None:
        evaluators = 2 if rng.random() < CALIBRATION_SHARE else 1
        timeline.evaluation_steps = [_evaluation_steps(rng, timeline.evaluation_at) for _ in range(evaluators)]
    final = timeline.final_turn()
    if (
        final is not None and final.via_queue and timeline.direction == "inbound"
        and rng.random() < NEXT_CONTACT_AVOIDED_SHARE
    ):  # fmt: skip
        timeline.resolution_at = timeline.end + NCA_LOOKUP_MS + rng.randint(HOUR_MS, 20 * HOUR_MS)


def _evaluation_steps(rng: random.Random, first: int) -> list[tuple[int, str]]:
    steps = [(first, "Pending" if rng.random() < 0.6 else "InProgress")]
    at = first
    if steps[0][1] == "Pending" and rng.random() < 0.7:
        at += rng.randint(10 * MINUTE_MS, 24 * HOUR_MS)
        steps.append((at, "InProgress"))
    at += rng.randint(5 * MINUTE_MS, 48 * HOUR_MS)
    steps.append((at, "Finished"))
    if rng.random() < RESCORE_SHARE:
        steps.append((at + rng.randint(HOUR_MS, 72 * HOUR_MS), "Rescored"))
    return steps


def add_reports(
    conversation: Conversation, streams: tuple[random.Random, random.Random], directory: Directory,
    timeline: Timeline, queue_id: str, user_id: str,
) -> None:
    """The evaluations, survey and resolution of the agent who handled the customer last (`user_id`,
    from `queue_id`); `streams`: the conversation's first stream, where the record's draws went on
    before these existed, and its second."""
    rng, second = streams
    if timeline.evaluation_at is not None:
        finished = evaluation(rng, directory, timeline.evaluation_at, queue_id, user_id)
        conversation.evaluations = evaluation_versions(second, directory, finished, timeline)
    if timeline.survey_at is not None:
        record = survey(rng, directory, timeline.survey_at, queue_id, user_id, timeline.media)
        record["surveyPartialResponse"] = second.random() < PARTIAL_SURVEY_SHARE
        conversation.surveys.append([(timeline.survey_at, record)])
    if timeline.resolution_at is not None:
        at = timeline.resolution_at
        conversation.resolutions.append([(at, resolution(at, queue_id, user_id))])


def evaluation_versions(
    rng: random.Random, directory: Directory, finished: dict[str, Any], timeline: Timeline
) -> list[Restated]:
    """Every evaluation of the conversation, each as its versions over time. `finished` is the
    evaluation as first drawn (enrichment.evaluation): the first evaluator's scores; a calibration's
    second evaluator gets an evaluation of their own."""
    calibration_id = uuid_from_bits(rng.getrandbits(128)) if len(timeline.evaluation_steps) > 1 else None
    evaluations = []
    for number, steps in enumerate(timeline.evaluation_steps):
        scored = dict(finished)
        if number:
            others = [e for e in directory.evaluator_ids if e != finished["evaluatorId"]]
            scored |= {"evaluationId": uuid_from_bits(rng.getrandbits(128)), "evaluatorId": rng.choice(others)}
            scored |= {"oTotalCriticalScore": rng.choice((0, 100, 100, 100)), "oTotalScore": rng.randint(40, 100)}
        evaluations.append(_versions(rng, scored, steps, calibration_id))
    return evaluations


def _versions(
    rng: random.Random, scored: dict[str, Any], steps: list[tuple[int, str]], calibration_id: str | None
) -> Restated:
    released = rng.random() < 0.85
    system_submitted = rng.random() < 0.03
    versions: Restated = []
    for at, status in steps:
        done = status in ("Finished", "Rescored")
        version: dict[str, Any] = {"assigneeApplicable": True, "assigneeId": scored["evaluatorId"]}
        if calibration_id is not None:
            version["calibrationId"] = calibration_id
        version |= {k: scored[k] for k in ("contextId", "deleted", "evaluationId")}
        version["evaluationStatus"] = "Finished" if done else status
        version |= {"evaluatorId": scored["evaluatorId"], "eventTime": iso_ms(at)}
        version |= {k: scored[k] for k in ("formId", "formName", "queueId")}
        version |= {"released": done and released, "rescored": status == "Rescored",
                    "systemSubmitted": done and system_submitted, "userId": scored["userId"]}  # fmt: skip
        if status == "Finished":
            version |= {k: scored[k] for k in ("oTotalCriticalScore", "oTotalScore")}
        elif status == "Rescored":
            rescore = min(100, max(0, scored["oTotalScore"] + rng.randint(-15, 15)))
            version |= {"oTotalCriticalScore": scored["oTotalCriticalScore"], "oTotalScore": rescore}
        versions.append((at, version))
    return versions


def resolution(at: int, queue_id: str, user_id: str) -> dict[str, Any]:
    """An AnalyticsResolution: the next contact was avoided; the last queue and user that handled it."""
    return {"eventTime": iso_ms(at), "queueId": queue_id, "userId": user_id, "nNextContactAvoided": 1}
