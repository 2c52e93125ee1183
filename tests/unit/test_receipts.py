"""Counters follow receipts: every transition moves them by exactly what the receipts count."""

from collections import Counter

import pytest

from common.receipts import counted_keys, delta, fold, lead_keys, recount, retally


def test_pending_receipt_counts_as_pending() -> None:
    assert counted_keys({"status": "pending"}) == Counter({"counts.pending": 1})


@pytest.mark.parametrize(
    ("receipt", "expected"),
    [
        ({"status": "done", "outcome": "booked"}, {"counts.booked": 1}),
        (
            {"status": "done", "outcome": "no_slot", "reason": "no_slot"},
            {"counts.noSlot": 1},
        ),
        ({"status": "simulated", "outcome": "sent"}, {"counts.simulated": 1, "counts.sent": 1}),
        ({"status": "done", "outcome": "drafted"}, {"counts.drafted": 1}),
        ({"status": "done", "outcome": "created"}, {"counts.foldersCreated": 1}),
        (
            {"status": "failed", "reason": "dead_lettered"},
            {"counts.failed": 1},
        ),
        ({"status": "rejected", "reason": "no_email"}, {}),
        (
            {"status": "pending", "waiting": {"until": "2030-01-01T00:00:00.000Z"}},
            {"counts.pending": 1, "counts.waiting": 1},
        ),
    ],
)
def test_each_receipt_counts_for_its_status_and_outcome(receipt, expected) -> None:
    """Reasons are the lead's (docs/api.md, "Diagnostics"), not the receipt's."""
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
        "counts.pending": 1,
    }


def test_a_lead_counts_once_for_each_distinct_reason_of_its_receipts() -> None:
    rejected = {"status": "rejected", "reason": "no_email"}
    totals = recount(
        [
            ({"status": "accepted"}, [{"status": "done", "outcome": "booked"}]),
            ({"status": "rejected"}, [rejected, dict(rejected), dict(rejected)]),
            (
                {"status": "accepted"},
                [
                    {"status": "failed", "reason": "permanent_error"},
                    {"status": "rejected", "reason": "calendar_failed"},
                    {"status": "failed", "reason": "permanent_error"},
                ],
            ),
        ]
    )
    assert totals["counts"]["booked"] == 1
    assert totals["counts"]["accepted"] == 2 and totals["counts"]["rejected"] == 1
    assert totals["reasons"] == {"calendar_failed": 1, "no_email": 1, "permanent_error": 1}


def test_a_lead_tally_moves_a_reason_count_only_at_its_first_and_last_receipt() -> None:
    lead = {"status": "accepted", "reasonTally": {"permanent_error": 1}}
    failed = {"status": "failed", "reason": "permanent_error"}
    second = retally(lead["reasonTally"], {"status": "pending"}, failed)
    assert second == {"permanent_error": 2}
    assert delta(lead_keys(lead), lead_keys({**lead, "reasonTally": second})) == {}
    gone = retally(retally(second, failed, {"status": "pending"}), failed, {"status": "pending"})
    assert delta(lead_keys(lead), lead_keys({**lead, "reasonTally": gone})) == {
        "reasons.permanent_error": -1
    }


def test_fold_drops_zero_reasons() -> None:
    assert fold({"reasons.no_slot": 0, "counts.sent": 2})["reasons"] == {}


def test_lead_keys() -> None:
    assert lead_keys({"status": "accepted"}) == Counter({"counts.accepted": 1})
    assert lead_keys(None) == Counter()
