"""How every subscriber handles one Pub/Sub delivery: claim, act once, record, or ask for a retry.

The lease in the receipt decides who may act (docs/api.md, "Receipts"); the effect itself is
idempotent (deterministic ids, checkpoints, tags), so a delivery that takes over an expired lease
first finds out what the earlier one already did. An effect returns what it decided (`Outcome`);
this module records it. What a failure means is `common.errors.classify`'s verdict, and `_act` is
that table: a limit parks the receipt, a transient error raises `Retry` (an HTTP 500, so Pub/Sub
redelivers with backoff), a permanent one ends the receipt `failed`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic import ValidationError

from common import flow
from common.bus import Outgoing
from common.counts import WAITING
from common.errors import Failure, Transient, classify
from common.holds import Settlement
from common.lanes import Lane, Lanes
from common.limits import ACTION_API, Limit
from common.log import Story
from common.models import Lead, RunSettings
from common.pacing import BRIEF
from common.ports import Bus, Holds, Receipts, Tools
from common.receipts import Ending, Receipt, Status, failed
from common.runs import ReceiptMissing
from common.store import Claim

QUICK_TRIES = 3
QUICK_BACKOFF_S = 0.2
# A limit that asks for no more than this is waited out in process; a longer one parks the receipt.
BRIEF_WAIT_S = BRIEF.total_seconds()


class Retry(Transient):
    """Ask Pub/Sub to deliver this message again later."""


class Later(Exception):
    """Nothing can be decided yet (Google's search has not caught up, or the booking an email
    carries has not settled): the receipt stays pending with the lease given back and `code`
    as its error, and the message is acknowledged (a nack would spend a delivery attempt).
    With `until`, the receipt waits for that moment (`waiting`, reason `code`) and the sweeper
    publishes it then; without, the sweeper publishes it again once it has been quiet for a
    while, and an email waiting for its booking is published by book, with the booking."""

    def __init__(self, code: str, message: str, until: datetime | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.until = until


@dataclass(frozen=True)
class Delivery:
    """One push delivery of a lead action message, decoded from its CloudEvent."""

    run_id: str
    lead_doc_id: str
    action: str
    message_id: str
    publish_time: datetime | None
    booking: dict[str, Any] | None = None
    trace: str | None = None
    traceparent: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Cloud Logging labels that tell one lead's story."""
        return {"runId": self.run_id, "leadDocId": self.lead_doc_id, "action": self.action}


@dataclass(frozen=True)
class Deps:
    """What handling a delivery needs: the stores, the bus, and Google for a run's mode."""

    receipts: Receipts
    holds: Holds
    lanes: Lanes
    bus: Bus
    tools_for: Callable[[bool], Tools]
    clock: Callable[[], datetime]  # the wiring's (`common.clock`), or a test's
    sleep: Callable[[float], None]
    max_age: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Work:
    """What an effect gets: the lead, its settings, the claim, and what it may touch."""

    delivery: Delivery
    dry_run: bool  # decided by the run document, never by the message
    lead_doc: dict[str, Any]
    lead: Lead
    settings: RunSettings
    claim: Claim
    tools: Tools
    receipts: Receipts
    holds: Holds
    now: datetime  # when this delivery began
    clock: Callable[[], datetime]  # the time now
    sleep: Callable[[float], None]
    tries: int = 1
    # Wait for this lead's turn in its host's lane: an effect calls it right before the call
    # the lane paces (after its own checkpoints, so their latency does not move the call).
    turn: Callable[[], None] = lambda: None

    @property
    def resumed(self) -> bool:
        """Something before this try may have taken effect: look before acting again."""
        return self.claim.resumed or self.tries > 1

    @property
    def status_done(self) -> Status:
        """The terminal status of a successful action in this run's mode."""
        return Status.SIMULATED if self.dry_run else Status.DONE


@dataclass(frozen=True)
class Outcome:
    """What an effect decided: how the receipt ends (or another move of it), messages to
    publish, and the slot holds a booking keeps (written with the receipt)."""

    change: Ending | Callable[[Receipt], Receipt]
    follow_ups: tuple[Outgoing, ...] = ()
    keep: Settlement | None = None

    def apply(self, receipt: Receipt) -> Receipt:
        """The receipt as this outcome leaves it."""
        if isinstance(self.change, Ending):
            return receipt.finish(self.change)
        return self.change(receipt)


Effect = Callable[[Work], Outcome]


def close_email_after_failed_booking(
    receipts: Receipts, run_id: str, lead_doc_id: str, settings: RunSettings
) -> None:
    """The booking cannot go on: the email that would carry it must not stay pending."""
    ending = flow.email_when_booking_fails(settings.actions)
    if ending is not None:  # only an open email: one that was made keeps its revert, if queued
        receipts.record(
            run_id, lead_doc_id, "email", lambda r: None if r.terminal else r.finish(ending)
        )


def _lead_of(lead_doc: dict[str, Any] | None) -> Lead | None:
    """The lead of a lead document; None if it does not hold a valid one."""
    if lead_doc is None:
        return None
    try:
        return Lead.model_validate(lead_doc.get("lead"), strict=False)
    except ValidationError:
        return None


def handle_delivery(
    deps: Deps, delivery: Delivery, effect: Effect, revert: Effect | None = None
) -> str:
    """Run `effect` at most once for this receipt (or `revert`, once, when an undo queued
    one for what it made); returns the outcome for the log."""
    say = Story(deps.clock, delivery.trace, delivery.labels, {"messageId": delivery.message_id})
    d = delivery
    owner = f"{d.message_id}:{uuid.uuid4().hex[:12]}"
    run = deps.receipts.run_mode(d.run_id)
    if run is None:
        say("no such run: message dropped", severity="ERROR", outcome="dropped")
        return "dropped"
    now = deps.clock()
    claim = _claim(deps.receipts, d, owner, say, now)
    if claim is None:
        return "dropped"
    say.context["attempt"] = claim.attempt
    if claim.terminal:
        say("already terminal: nothing to do", outcome="duplicate")
        return "duplicate"
    if claim.braked:  # acknowledged: a pause must not spend delivery attempts
        say("paused by its owner: acknowledged, resumes when resumed", outcome="paused")
        return "paused"
    if reverting := claim.receipt.to_revert:
        assert revert is not None, f"no revert for {d.action}"
        effect = revert

    def record(outcome: Outcome) -> Receipt | None:
        return deps.receipts.record(
            d.run_id, d.lead_doc_id, d.action, outcome.apply, also=outcome.keep
        )

    lead_doc = claim.lead  # read (and moved) with the receipt by the claim
    lead = _lead_of(lead_doc)
    if lead_doc is None or lead is None:
        # Schedule writes a lead with its receipts, so this is damage, not a race: say so in
        # the receipt rather than leave it pending for the sweeper to publish again and again.
        record(Outcome(failed("permanent_error", "lead_missing", "the lead document is missing")))
        say("no readable lead", severity="ERROR", outcome="permanent_error", status=Status.FAILED)
        return "permanent_error"
    settings = deps.receipts.lead_settings(d.run_id, lead_doc)
    if d.publish_time and now - d.publish_time > deps.max_age and not reverting:
        record(Outcome(failed("expired", "expired", f"older than {deps.max_age}; replay to retry")))
        if d.action == "calendar":
            close_email_after_failed_booking(deps.receipts, d.run_id, d.lead_doc_id, settings)
        say("message too old", severity="WARNING", outcome="expired", status=Status.FAILED)
        return "expired"

    dry_run = bool(run.get("dryRun"))
    tools = deps.tools_for(dry_run)
    lane = _Lane(
        deps.lanes, settings.host.senderEmail, ACTION_API[d.action], deps.clock, deps.sleep
    )
    work = Work(
        d,
        dry_run,
        lead_doc,
        lead,
        settings,
        claim,
        tools,
        deps.receipts,
        deps.holds,
        now,
        deps.clock,
        deps.sleep,
        turn=lane.turn,
    )
    give_back = _GiveBack(deps.receipts, d, owner, say)
    outcome = lane.held(claim, deps.clock()) or _act(effect, work, lane, give_back)
    try:
        if outcome.follow_ups:
            deps.bus.publish(outcome.follow_ups, traceparent=d.traceparent)
        recorded = record(outcome)
    except Exception as exc:
        # The effect is done (and idempotent): let the redelivery record it at once.
        give_back("record_failed", exc)
        raise Retry(str(exc)) from exc
    if recorded is None:
        say("finished meanwhile by another delivery", outcome="duplicate")
        return "duplicate"
    if recorded.to_revert and not reverting:  # undone while this delivery made its effect
        deps.bus.publish([Outgoing(d.run_id, d.lead_doc_id, d.action)], traceparent=d.traceparent)
    return _told(say, d, recorded, deps.receipts, settings)


def _told(
    say: Story, d: Delivery, receipt: Receipt, receipts: Receipts, settings: RunSettings
) -> str:
    """Log what was recorded (and close the email of a failed booking); the log's outcome."""
    if receipt.status is Status.FAILED and d.action == "calendar":
        close_email_after_failed_booking(receipts, d.run_id, d.lead_doc_id, settings)
    if receipt.waiting is not None:
        waiting = receipt.waiting.waiting()
        say(
            f"{d.action} waiting for Google's {waiting['api']} {waiting['reason']} until "
            f"{waiting['until']}",
            severity="WARNING",
            outcome=WAITING,
            status="pending",
            waiting=waiting,
        )
        return WAITING
    if not receipt.terminal:
        say(f"{d.action} left pending: {(receipt.error or {}).get('message')}", outcome="later")
        return "later"
    result = receipt.outcome or receipt.reason
    severity = "ERROR" if receipt.status is Status.FAILED else "INFO"
    say(f"{d.action} {receipt.status}", severity=severity, outcome=result, status=receipt.status)
    return str(result)


@dataclass
class _Lane:
    """This delivery's view of its host's lane on the API it calls."""

    lanes: Lanes
    host: str
    api: str
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    start: datetime | None = None  # this lead's start, for its turn
    seen: Lane | None = None  # the lane as `held` read it (a refusal since: read it again)
    paced: bool = False  # this call waited for the one before it: the lane is in full use

    def held(self, claim: Claim, now: datetime) -> Outcome | None:
        """A parked outcome while the lane holds this lead back, else None: its own start is
        later (it came early: a replay, a duplicate), or another lead's limit closed the gate.
        A start, or a gate's opening, only a moment away is waited for in the effect's `turn`,
        with the lane's interval since this process's last call (late ones must not bunch up)."""
        lane = self.seen = self.lanes.read(self.host, self.api)
        closed = lane.closed(now)
        # Parked before calling Google, this try leaves nothing behind: if no try before it
        # did either, the next one need not look for what they might have made.
        clean = None if claim.resumed else claim.attempt
        if closed is not None and closed.until - now > BRIEF:
            return Outcome(lambda r: r.wait_for(closed, clean))
        start = claim.receipt.planned or now
        if start - now > BRIEF:  # came before its start (a replay, a duplicate): wait for it
            return Outcome(lambda r: r.park(clean))
        self.start = start if closed is None else max(start, closed.until)
        return None

    def turn(self) -> None:
        """Wait for this call's turn: its start, and the lane's (slowed) interval after this
        process's previous call on it. A refused call that tries again when the gate opens
        takes its turn too: the deliveries that met the same refusal must not all call again
        at the moment it ends, and be refused together."""
        lane = self.seen or self.lanes.read(self.host, self.api)
        now = self.clock()
        start = self.start or now
        at = self.lanes.spaced_start(self.host, self.api, lane, start, now)
        self.paced = at > max(start, now)
        self.sleep(max((at - self.clock()).total_seconds(), 0.0))

    def parked(self, wait: Limit) -> Limit:
        """`wait` as a receipt parks for it: no sooner than `BRIEF` from now (the sweeper's
        passes look `LOOKAHEAD` ahead and never back: a nearer start may be behind them)."""
        return replace(wait, until=max(wait.until, self.clock() + BRIEF))

    def again_at(self, until: datetime) -> None:
        """The next try's turn is when a brief refusal ends, in the lane as read anew then."""
        self.start, self.seen = until, None

    def verdict(self, exc: BaseException) -> Failure:
        """`classify`'s verdict on `exc`; a limit's wait is the lane's (it is slowed, its gate
        closed). The lane is read again: other leads' refusals since this one started count in
        the streak."""
        streak = self.lanes.read(self.host, self.api).streak
        failure = classify(exc, self.api, self.clock(), streak, self.lanes.first_wait(self.api))
        if failure.limit is None:
            return failure
        return replace(failure, limit=self.lanes.close(self.host, failure.limit, self.clock()))

    def passed(self) -> None:
        """Calls went through: the refusal streak ends, and a slowed lane that they use in
        full speeds up again."""
        self.lanes.passed(self.host, self.api, self.clock(), in_use=self.paced)


def _claim(receipts: Receipts, d: Delivery, owner: str, say: Story, now: datetime) -> Claim | None:
    """The claim on this delivery's receipt; None if the message names no receipt."""
    try:
        return receipts.claim(d.run_id, d.lead_doc_id, d.action, owner, now)
    except ReceiptMissing:
        say("no receipt for this action: message dropped", severity="ERROR", outcome="dropped")
        return None
    except Exception as exc:
        if classify(exc, "firestore", now).kind != "transient":
            raise
        say(f"could not claim the receipt: {exc!r}", severity="WARNING", outcome="busy")
        raise Retry("claim failed") from exc


def _reread(work: Work) -> Work:
    """The work with its receipt as stored now: a retry must see the checkpoints of the try
    before it (the draft, the folder id) to resume instead of acting again."""
    d = work.delivery
    receipt = work.receipts.get_receipt(d.run_id, d.lead_doc_id, d.action)
    return replace(work, claim=replace(work.claim, receipt=receipt or work.claim.receipt))


@dataclass(frozen=True)
class _GiveBack:
    """Release the lease with the error, so the redelivery can go on at once."""

    receipts: Receipts
    d: Delivery
    owner: str
    say: Story

    def __call__(self, code: str, exc: BaseException, severity: str = "WARNING") -> None:
        detail = str(exc) if code != "internal" else f"{type(exc).__name__}: {exc}"
        error = {"code": code, "message": detail[:500]}
        self.receipts.release(self.d.run_id, self.d.lead_doc_id, self.d.action, self.owner, error)
        what = {"transient": "transient error", "internal": "unexpected error"}.get(
            code, "recording failed"
        )
        self.say(f"{what}, retrying: {exc!r}", severity=severity, outcome="retry")


def _act(effect: Effect, work: Work, lane: _Lane, give_back: _GiveBack) -> Outcome:
    """The effect's outcome, with a few quick retries; a failure is handled as
    `common.errors.classify` judges it:

    - `wait` (one of Google's limits): a brief one is waited out in process, a longer one parks
      the receipt (acknowledged: a wait must not spend Pub/Sub's delivery attempts);
    - `transient`: a one-off (a 503, a reset connection) is tried again at once, a few times;
      else the lease is given back and Pub/Sub redelivers with backoff;
    - `permanent`: the receipt ends `failed` with the code;
    - `internal` (a defect): logged as an error, the lease given back, Pub/Sub retries.

    `Later` is no failure: the receipt stays pending, acknowledged. Every retry is a resumed
    try, so it first looks for what the failed call may have done before acting again.
    """
    for attempt in range(1, QUICK_TRIES + 1):
        if attempt > 1:
            work = _reread(work)
        try:
            outcome = effect(replace(work, tries=attempt))
        except Later as exc:
            api = ACTION_API[work.delivery.action]
            held = None if exc.until is None else lane.parked(Limit(exc.code, api, exc.until))
            return Outcome(partial(Receipt.later, code=exc.code, message=str(exc), wait=held))
        except Exception as exc:
            failure = lane.verdict(exc)
            last = attempt == QUICK_TRIES
            if failure.limit is not None:
                wait = (failure.limit.until - lane.clock()).total_seconds()
                if wait <= BRIEF_WAIT_S and not last:
                    lane.again_at(failure.limit.until)  # a brief wait costs less than a round trip
                    continue
                return Outcome(partial(Receipt.wait_for, wait=lane.parked(failure.limit)))
            if failure.kind == "permanent":
                return Outcome(failed("permanent_error", failure.code, failure.message))
            if failure.kind == "transient" and failure.retry_here and not last:
                give_back.say(
                    f"transient error, retrying in process: {exc}",
                    severity="WARNING",
                    outcome="retry",
                )
                work.sleep(QUICK_BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()))
                continue
            if failure.kind == "transient":
                give_back("transient", exc)
                raise Retry(str(exc)) from exc
            give_back("internal", exc, severity="ERROR")
            raise
        lane.passed()
        return outcome
    raise AssertionError("unreachable")
