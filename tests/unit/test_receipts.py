"""Counters follow receipts: every transition moves them by exactly what the receipts count."""

from collections import Counter

import pytest

from common.receipts import counted_keys, delta, fold, lead_keys, recount


def test_pending_receipt_counts_as_pending() -> None:
    assert counted_keys({"status": "pending"}) == Counter({"counts.pending": 1})


@pytest.mark.parametrize(
    ("receipt", "expected"),
    [
        ({"status": "done", "outcome": "booked"}, {"counts.booked": 1}),
        (
            {"status": "done", "outcome": "no_slot", "reason": "no_slot"},
            {"counts.noSlot": 1, "reasons.no_slot": 1},
        ),
        ({"status": "simulated", "outcome": "sent"}, {"counts.simulated": 1, "counts.sent": 1}),
        ({"status": "done", "outcome": "drafted"}, {"counts.drafted": 1}),
        ({"status": "done", "outcome": "created"}, {"counts.foldersCreated": 1}),
        (
            {"status": "failed", "reason": "dead_lettered"},
            {"counts.failed": 1, "reasons.dead_lettered": 1},
        ),
        ({"status": "rejected", "reason": "no_email"}, {"reasons.no_email": 1}),
    ],
)
def test_each_receipt_counts_for_its_status_outcome_and_reason(receipt, expected) -> None:
    assert dict(counted_keys(receipt)) == expected


def test_transition_moves_pending_to_outcome() -> None:
    old = counted_keys({"status": "pending"})
    new = counted_keys({"status": "done", "outcome": "booked"})
    assert delta(old, new) == {"counts.pending": -1, "counts.booked": 1}


def test_repeating_a_transition_changes_nothing() -> None:
    same = counted_keys({"status": "done", "outcome": "sent"})
    assert delta(same, same) == {}


def test_reopened_no_slot_gives_back_its_counts() -> None:
    old = counted_keys({"status": "done", "outcome": "no_slot", "reason": "no_slot"})
    assert delta(old, counted_keys({"status": "pending"})) == {
        "counts.noSlot": -1,
        "reasons.no_slot": -1,
        "counts.pending": 1,
    }


def test_recount_folds_receipts_and_leads() -> None:
    totals = recount(
        [{"status": "done", "outcome": "booked"}, {"status": "rejected", "reason": "no_email"}],
        [{"status": "accepted"}, {"status": "rejected"}],
    )
    assert totals["counts"]["booked"] == 1
    assert totals["counts"]["accepted"] == 1 and totals["counts"]["rejected"] == 1
    assert totals["reasons"] == {"no_email": 1}


def test_fold_drops_zero_reasons() -> None:
    assert fold({"reasons.no_slot": 0, "counts.sent": 2})["reasons"] == {}


def test_lead_keys() -> None:
    assert lead_keys({"status": "accepted"}) == Counter({"counts.accepted": 1})
    assert lead_keys(None) == Counter()
