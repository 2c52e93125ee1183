"""Runs, leads and receipts: every stored change is a `documents.change` (read, decide, guarded
commit), and every receipt transition carries the counter changes it causes.

A receipt transition reads the receipt and its lead together: the lead keeps `reasonTally` (how many
of its receipts give each reason), so `reasons` can count leads (docs/api.md, "Diagnostics") and two
receipts of one lead changing at once cannot both count the same reason (both write the lead,
guarded, and one of them decides again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from common import paths
from common.counts import counted_keys, delta, lead_keys, retally
from common.documents import (
    ABSENT,
    ROUNDS,
    SERVER_TIME,
    Commit,
    Contended,
    Decision,
    Part,
    Stored,
    Write,
    change,
    guarded,
)
from common.lead_pages import facets_follow
from common.models import parse_time, stamp
from common.pacing import BRIEF
from common.receipts import Ending, LeaseHeld, Receipt, changes, lead_wait_change
from common.runs import ReceiptMissing, Runs

Change = Callable[[Receipt], Receipt | None]


@dataclass
class Claim:
    """A delivery's hold on one receipt, or the news that there is nothing to do."""

    terminal: bool
    receipt: Receipt
    attempt: int = 0
    braked: bool = False  # paused: nothing to do until resumed
    lead: dict[str, Any] | None = None  # the receipt's lead document, as the claim left it

    @property
    def resumed(self) -> bool:
        """An earlier delivery may have started this work: find out what it did before doing it
        again."""
        return self.receipt.resumed(self.attempt)


def lead_change(
    old_lead: Mapping[str, Any] | None,
    new_lead: Mapping[str, Any] | None,
    old_receipts: Mapping[str, Receipt | None],
    new_receipts: Mapping[str, Receipt | None],
) -> Counter[str]:
    """The counter change when a lead and some of its receipts change together."""
    before: Counter[str] = Counter(lead_keys(old_lead))
    after: Counter[str] = Counter(lead_keys(new_lead if new_lead is not None else old_lead))
    for action, receipt in new_receipts.items():
        before.update(counted_keys(old_receipts.get(action)))
        after.update(counted_keys(receipt))
    return delta(before, after)


class Store(Runs):
    """Runs, leads and receipts over a `Documents` port: every receipt transition."""

    # -- receipts -------------------------------------------------------------------------
    def get_receipt(self, run_id: str, lead_doc_id: str, action: str) -> Receipt | None:
        """One receipt, or None."""
        doc = self._get(paths.receipt(run_id, lead_doc_id, action))
        return None if doc is None else Receipt.from_doc(doc)

    def _transition(
        self,
        run_id: str,
        lead_doc_id: str,
        action: str,
        step: Callable[[Receipt], tuple[Any, Receipt | None]],
        also: Part | None = None,
        recall: bool = True,
    ) -> tuple[Any, dict[str, Any] | None]:
        """The one way a receipt changes: `step(receipt)` gives (result, the new receipt or
        None); the receipt, its lead's summary, the counters and `also` (if the receipt
        changes) move in one guarded commit. Returns the result and the lead document as this
        change left it (None: no lead). It may decide on what this process last read and left
        (`documents.change`): the lead matters only where written; a claim hands it on, so reads."""
        receipt_path = paths.receipt(run_id, lead_doc_id, action)
        lead_path = paths.lead(run_id, lead_doc_id)
        extra = list(also.paths) if also is not None else []

        def decide(found: dict[str, Stored | None]) -> Decision[tuple[Any, dict[str, Any] | None]]:
            doc = found[receipt_path]
            if doc is None:
                raise ReceiptMissing(receipt_path)
            lead = found[lead_path]
            result, new = step(Receipt.from_doc(doc.data))
            if new is None:
                return Decision((result, None if lead is None else lead.data))
            commit, after = _moved(run_id, found, lead_path, {action: (receipt_path, new)})
            if also is not None:
                commit.writes.extend(also.writes(found))
            return Decision((result, after), commit)

        every = [receipt_path, lead_path, *extra]
        return change(self.docs, every, decide, known=self.known, recall=recall)

    def claim(self, run_id: str, lead_doc_id: str, action: str, owner: str, now: datetime) -> Claim:
        """Take the receipt's lease for this delivery (`Receipt.claim`); a wait that ends
        within `BRIEF` (the sweeper published it) ends here."""

        def step(receipt: Receipt) -> tuple[Claim, Receipt | None]:
            if receipt.closed:  # terminal, no revert queued
                return Claim(terminal=True, receipt=receipt), None
            if receipt.cancelling and not receipt.leased(now):  # its delivery died: end it
                ended = receipt.settled()
                return Claim(terminal=True, receipt=ended), ended
            if receipt.paused:  # the brake: no lease, no call (docs/api.md, "Control")
                return Claim(terminal=False, receipt=receipt, braked=True), None
            taken = receipt.claim(owner, now, self.lease, now + BRIEF)
            return Claim(terminal=False, receipt=taken, attempt=taken.attempts), taken

        try:
            result, lead = self._transition(run_id, lead_doc_id, action, step, recall=False)
        except (Contended, LeaseHeld) as exc:
            raise LeaseHeld(f"{run_id}/{lead_doc_id}/{action}") from exc
        claim: Claim = result
        return replace(claim, lead=lead)

    def checkpoint(
        self, run_id: str, lead_doc_id: str, action: str, values: dict[str, Any]
    ) -> None:
        """Record progress inside an effect (e.g. a Gmail draft id) before the next step."""
        self._transition(run_id, lead_doc_id, action, lambda r: (None, r.checkpointed(values)))

    def record(
        self, run_id: str, lead_doc_id: str, action: str, move: Change, *, also: Part | None = None
    ) -> Receipt | None:
        """Move an open receipt (or one with a revert queued) by `move` with its counters
        (None: it was closed already, or `move` left it as it was). `also` (a booking's slot
        holds) is written with it."""

        def step(receipt: Receipt) -> tuple[Receipt | None, Receipt | None]:
            moved = None if receipt.closed else move(receipt)
            new = None if moved is None else moved.settled()
            return new, new

        moved, _ = self._transition(run_id, lead_doc_id, action, step, also)
        return moved

    def finish(self, run_id: str, lead_doc_id: str, action: str, ending: Ending) -> bool:
        """End an open receipt; False if it was already terminal."""
        return self.record(run_id, lead_doc_id, action, lambda r: r.finish(ending)) is not None

    def reopen(self, run_id: str, lead_doc_id: str, action: str) -> bool:
        """Make a terminal receipt pending again (replay, redrive); False if it was open."""

        def step(receipt: Receipt) -> tuple[bool, Receipt | None]:
            return (True, receipt.reopen()) if receipt.terminal else (False, None)

        reopened, _ = self._transition(run_id, lead_doc_id, action, step)
        return bool(reopened)

    def release(
        self, run_id: str, lead_doc_id: str, action: str, owner: str, error: dict[str, Any]
    ) -> None:
        """Give the lease back after a transient failure so the redelivery can go on at once.
        Not through `settled`: the try may have made its effect, and the redelivery finds out."""
        code, message = str(error["code"]), str(error["message"])

        def step(receipt: Receipt) -> tuple[None, Receipt | None]:
            return None, None if receipt.closed else receipt.release(owner, code, message)

        try:
            self._transition(run_id, lead_doc_id, action, step)
        except ReceiptMissing:
            return

    def rewait(self, run_id: str, lead_doc_id: str, action: str, until: datetime) -> bool:
        """A waiting receipt that the sweeper spaced anew waits for its new start (and keeps
        it); False if it no longer waits (it finished, or was claimed)."""
        moved = self.record(
            run_id, lead_doc_id, action, lambda r: r.respaced(until) if r.waiting else None
        )
        return moved is not None

    def due_receipts(
        self, by: datetime, after: datetime | None = None
    ) -> Iterator[tuple[str, str, str, Receipt]]:
        """Waiting receipts whose wait is over by `by` (and was not over at `after`), soonest
        first, read as they are iterated: (runId, leadDocId, action, receipt)."""
        rows = self.docs.due_receipts(stamp(by), None if after is None else stamp(after))
        return ((run, lead, action, Receipt.from_doc(doc)) for run, lead, action, doc in rows)

    def next_wait(self, after: datetime | None = None) -> datetime | None:
        """When the soonest wait (after `after`) ends, or None: one indexed read."""
        found = self.docs.next_wait(None if after is None else stamp(after))
        return None if found is None else parse_time(found)

    # -- the sweeper's live tick (common/handlers/sweep.py) -------------------------------------
    def take_tick(self, owner: str, now: datetime, until: datetime) -> bool:
        """Hold the sweeper's tick for `owner` until `until`; False while another one holds
        it (or takes it at this moment)."""

        def decide(found: dict[str, Stored | None]) -> Decision[bool]:
            doc = found[paths.SWEEPER]
            data = {} if doc is None else doc.data
            if data.get("owner") not in (None, owner) and data.get("until", now) > now:
                return Decision(False)
            tick = {"owner": owner, "until": until}
            return Decision(True, Commit([guarded(paths.SWEEPER, doc, tick)]))

        try:
            return bool(change(self.docs, [paths.SWEEPER], decide, rounds=1))
        except Contended:
            return False

    def tick_live(self, now: datetime) -> bool:
        """Whether a sweeper tick holds its tick past `now`."""
        doc = self._get(paths.SWEEPER)
        return doc is not None and doc.get("until", now) > now

    def touch_receipt(self, run_id: str, lead_doc_id: str, action: str) -> None:
        """Move `updatedAt`, so the next sweep waits a full period before publishing again."""
        self._touch(paths.receipt(run_id, lead_doc_id, action))

    def stale_receipts(
        self, older_than: datetime, now: datetime, limit: int
    ) -> list[tuple[str, str, str, Receipt]]:
        """(runId, leadDocId, action, receipt) of pending receipts untouched since `older_than`,
        unleased and not waiting for one of Google's limits (those resume when due)."""
        found = []
        for run_id, lead_id, action, doc in self.docs.stale_receipts(older_than, limit):
            receipt = Receipt.from_doc(doc)
            held = receipt.paused and not receipt.cancelling  # a cancel ends it when published
            if receipt.leased(now) or held or receipt.waits_past(now):
                continue
            found.append((run_id, lead_id, action, receipt))
        return found

    def steer(
        self,
        run_id: str,
        leads: Mapping[str, Iterable[str]],
        move: Callable[[str, Receipt, Mapping[str, Receipt]], Receipt | None],
        rounds: int = ROUNDS,
        preview: bool = False,
    ) -> dict[str, tuple[dict[str, Receipt], dict[str, Receipt]]]:
        """Move receipts of several leads (lead -> its actions) in one guarded commit (a
        command of their owner): `move(lead, receipt, the lead's receipts)` gives each its new
        value or None. Returns, per lead, its receipts as read and those that moved. A delivery
        that changed one meanwhile makes the change decide again (at most `rounds` times, then
        `Contended`). A `preview` decides and writes nothing."""
        wanted = {
            lead_id: {a: paths.receipt(run_id, lead_id, a) for a in actions}
            for lead_id, actions in leads.items()
        }
        every = [p for mine in wanted.values() for p in mine.values()]
        every += [paths.lead(run_id, lead_id) for lead_id in wanted]
        Steered = dict[str, tuple[dict[str, Receipt], dict[str, Receipt]]]

        def decide(found: dict[str, Stored | None]) -> Decision[Steered]:
            result: Steered = {}
            commit = Commit([], run_id)
            for lead_id, mine in wanted.items():
                before = {
                    a: Receipt.from_doc(doc.data) for a, p in mine.items() if (doc := found[p])
                }
                moved = {
                    a: new
                    for a, r in before.items()
                    if (new := move(lead_id, r, before)) is not None
                }
                result[lead_id] = (before, moved)
                if moved:
                    lead_path = paths.lead(run_id, lead_id)
                    part, _ = _moved(
                        run_id, found, lead_path, {a: (mine[a], new) for a, new in moved.items()}
                    )
                    commit.writes.extend(part.writes)
                    commit.counts.update(part.counts)
            return Decision(result, commit if commit.writes and not preview else None)

        return change(self.docs, every, decide, rounds=rounds, recall=False)


def _moved(
    run_id: str,
    found: Mapping[str, Stored | None],
    lead_path: str,
    moves: Mapping[str, tuple[str, Receipt]],
) -> tuple[Commit, dict[str, Any] | None]:
    """The guarded commit that stores receipts of one lead as `moves` (action -> (path, new)),
    with what their lead keeps of them and the counters they move; and the lead after it."""
    writes: list[Write] = []
    counts: Counter[str] = Counter()
    lead = found[lead_path]
    after = None if lead is None else dict(lead.data)
    lead_fields: dict[str, Any] = {}
    for action, (path, new) in moves.items():
        doc = found[path]
        assert doc is not None
        old = Receipt.from_doc(doc.data)
        writes.append(guarded(path, doc, {**changes(old, new), "updatedAt": SERVER_TIME}))
        counts.update(delta(counted_keys(old), counted_keys(new)))
        if after is not None:
            follows = _lead_follows(after, action, old, new)
            lead_fields.update(follows)
            after.update(follows)
    if lead is not None and after is not None:
        counts.update(delta(lead_keys(lead.data), lead_keys(after)))
        if lead_fields:
            writes.append(guarded(lead_path, lead, lead_fields))
    return Commit(writes, run_id, counts), after


def _lead_follows(
    lead: Mapping[str, Any], action: str, old: Receipt, new: Receipt
) -> dict[str, Any]:
    """What a lead keeps of its receipts, when one changes from `old` to `new`: `reasonTally`
    (so `reasons` counts leads) and its receipts' waits (`receipts.lead_wait_change`)."""
    fields: dict[str, Any] = {}
    if old.reason != new.reason:
        fields["reasonTally"] = retally(lead.get("reasonTally") or {}, old, new)
    return fields | lead_wait_change(lead, action, old, new) | facets_follow(lead, action, new)


def created(path: str, doc: Mapping[str, Any]) -> Write:
    """A document that must not exist yet, stamped with the commit's time."""
    return Write(path, {**doc, "createdAt": SERVER_TIME, "updatedAt": SERVER_TIME}, ABSENT)
