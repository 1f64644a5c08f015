"""Flow sessions as the records show them once the flow has exited (AnalyticsFlow, genesys-api.md s5.5
and genesys-api-more.md s6): the flow's own fields in the model's (alphabetical) order, then its
`outcomes`, with the session metrics that go with them.

A flow outcome (Architect) starts when the flow initialises it and ends when the flow sets it; one
that never succeeded has no end timestamp. Per outcome the session carries `nFlowOutcome` (when it is
settled: its end, or the flow's exit for a failure), `tFlowOutcome` (start to end, successes only) and
`nFlowOutcomeFailed` (failures); each milestone the caller reaches is an `nFlowMilestone`. The v269
AnalyticsFlow has no milestones field: milestones show only as metrics.

Everything is drawn from the conversation's second random stream (restatements.second_stream).
"""

from __future__ import annotations

import random
from typing import Any

from . import texts
from .directory import Directory
from .ids import iso_ms

Metrics = list[tuple[int, str, int]]  # (emit epoch ms, name, value)
_SPANISH_SWITCH_SHARE = 0.06  # callers of an English IVR who choose Spanish in its language menu
_CALLBACK_OFFER_SHARE = 0.3  # callers abandoning a voice queue who accept the in-queue flow's callback offer


def ivr_exit(
    rng: random.Random, directory: Directory, running: dict[str, Any], exited: dict[str, Any],
    start: int, end: int, *, self_served: bool,
) -> tuple[dict[str, Any], Metrics]:
    """The IVR's flow once exited at `end` (`exited`: its exit fields) and its outcome and milestone
    metrics; sets the running flow's starting language (`running` is changed in place)."""
    number = next(n for n, (flow_id, _) in enumerate(directory.ivr_flows) if flow_id == running["flowId"])
    running["startingLanguage"] = texts.IVR_FLOW_LANGUAGES[number]
    ending = running["startingLanguage"]
    if ending == "en-us" and rng.random() < _SPANISH_SWITCH_SHARE:
        ending = "es-us"
    names, span = texts.IVR_FLOW_OUTCOMES[number], end - start
    # (name, attempted, succeeded, start as a share of the span)
    identified = rng.random() < 0.88
    plan = [(names[0], rng.random() < 0.85, identified, rng.uniform(0.05, 0.2))]
    if self_served:
        plan.append((names[1], rng.random() < 0.9, rng.random() < 0.65, rng.uniform(0.3, 0.5)))
    else:
        plan.append((names[1], rng.random() < 0.25, False, rng.uniform(0.3, 0.5)))
        if len(names) > 2:
            plan.append((names[2], rng.random() < 0.7, rng.random() < 0.9, rng.uniform(0.55, 0.7)))
    outcomes, metrics = _outcomes(rng, directory, plan, start, span)
    reached = [0.02, 0.25] if rng.random() < 0.85 else [0.02]
    if identified and plan[0][1]:
        reached.append(0.3)
    metrics += [(start + int(span * share), "nFlowMilestone", 1) for share in reached]
    flow = dict(sorted(({**exited, **running, "endingLanguage": ending}).items()))
    if outcomes:
        flow["outcomes"] = outcomes
    return flow, metrics


def campaign_flow_exit(
    rng: random.Random, directory: Directory, running: dict[str, Any], exited: dict[str, Any], start: int, end: int
) -> tuple[dict[str, Any], Metrics]:
    """An agentless campaign's message flow once exited: the customer confirms the reminder, or not."""
    running |= {"startingLanguage": "en-us"}
    plan = [(texts.CAMPAIGN_FLOW_OUTCOMES[0], True, rng.random() < 0.55, rng.uniform(0.1, 0.3))]
    outcomes, metrics = _outcomes(rng, directory, plan, start, end - start)
    flow = dict(sorted(({**exited, **running, "endingLanguage": "en-us"}).items()))
    flow["outcomes"] = outcomes
    return flow, metrics


def in_queue_exit(rng: random.Random, running: dict[str, Any], abandoned: bool, voice: bool) -> dict[str, Any] | None:
    """The in-queue flow once the caller left the queue, if it changed: a caller who gives up waiting
    sometimes accepts the flow's callback offer (the callback is a conversation of its own)."""
    if abandoned and voice and rng.random() < _CALLBACK_OFFER_SHARE:
        return dict(sorted((running | {"issuedCallback": True}).items()))
    return None


def _outcomes(
    rng: random.Random, directory: Directory, plan: list[tuple[str, bool, bool, float]], start: int, span: int
) -> tuple[list[dict[str, Any]], Metrics]:
    outcomes: list[dict[str, Any]] = []
    metrics: Metrics = []
    for name, attempted, succeeded, share in plan:
        if not attempted:
            continue
        outcome_id, began = directory.flow_outcome_ids[name], start + int(span * share)
        value = "SUCCESS" if succeeded else "FAILURE"
        outcome = {"flowOutcome": f"{outcome_id}:{value}"}
        if succeeded:
            settled = began + int((start + span - began) * rng.uniform(0.1, 0.6))
            outcome["flowOutcomeEndTimestamp"] = iso_ms(settled)
            metrics += [(settled, "nFlowOutcome", 1), (settled, "tFlowOutcome", settled - began)]
        else:
            metrics += [(start + span, "nFlowOutcome", 1), (start + span, "nFlowOutcomeFailed", 1)]
        outcome |= {"flowOutcomeId": outcome_id, "flowOutcomeStartTimestamp": iso_ms(began),
                    "flowOutcomeValue": value}  # fmt: skip
        outcomes.append(outcome)
    return outcomes, metrics
