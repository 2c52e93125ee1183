"""The deployment's shape, in one place: topics, subscriptions, functions and their policies.

The local stack, the Terraform in `infra/` and the offline drift checks all read these names, so
what runs on a laptop is what runs in production.
"""

from __future__ import annotations

from dataclasses import dataclass

TOPIC_CALENDAR = "lead-calendar"
TOPIC_NOTIFY = "lead-notify"
TOPIC_DRIVE = "lead-drive"
TOPIC_DEAD_LETTER = "lead-dead-letter"
# Cloud Scheduler publishes here every minute; the sweeper publishes due and stale actions.
TOPIC_SWEEP = "lead-sweep"
TOPICS: tuple[str, ...] = (
    TOPIC_CALENDAR,
    TOPIC_NOTIFY,
    TOPIC_DRIVE,
    TOPIC_DEAD_LETTER,
    TOPIC_SWEEP,
)
SWEEP_SCHEDULE = (
    "* * * * *"  # production cadence (Cloud Scheduler, cron): waits resume within a minute
)
SWEEP_STALE_S = 600  # a pending receipt untouched this long has lost its message
# One tick publishes what falls due for the schedule's whole period, so no start falls between
# two ticks; its delivery is given that long and a margin (the sweep subscription's deadline).
SWEEP_LOOP_S = 60
SWEEP_ACK_DEADLINE_S = 90

# Pub/Sub policy shared by every push subscription (production values; the local stack may
# shorten the backoff through LEADRUN_RETRY_MIN_S / LEADRUN_RETRY_MAX_S so tests settle fast).
RETRY_MIN_BACKOFF_S = 10
RETRY_MAX_BACKOFF_S = 600
MAX_DELIVERY_ATTEMPTS = 10
ACK_DEADLINE_S = 60
MESSAGE_RETENTION_S = 7 * 24 * 3600


@dataclass(frozen=True)
class FunctionSpec:
    """One deployable entry point: where its code lives and how it is triggered."""

    name: str  # Cloud Functions name, also the local process name
    source_dir: str  # deploy unit under functions/
    target: str  # Python function in the unit's main.py
    signature: str  # "http" or "cloudevent"
    topic: str | None = None  # the Pub/Sub trigger, for cloudevent functions
    subscription: str | None = None  # push subscription feeding it
    dead_letter: bool = True  # whether its subscription dead-letters to TOPIC_DEAD_LETTER
    ack_deadline_s: int = ACK_DEADLINE_S  # its subscription's deadline, and its timeout


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("schedule", "schedule", "schedule", "http"),
    FunctionSpec("control", "schedule", "control", "http"),
    FunctionSpec("book", "schedule", "book", "cloudevent", TOPIC_CALENDAR, "lead-calendar-book"),
    FunctionSpec("notify", "notify", "notify", "cloudevent", TOPIC_NOTIFY, "lead-notify-send"),
    FunctionSpec("drive", "drive", "drive", "cloudevent", TOPIC_DRIVE, "lead-drive-create"),
    FunctionSpec("diagnostics", "diagnostics", "diagnostics", "http"),
    FunctionSpec(
        "dead-letter",
        "diagnostics",
        "dead_letter",
        "cloudevent",
        TOPIC_DEAD_LETTER,
        "lead-dead-letter-mark",
        dead_letter=False,
    ),
    FunctionSpec(
        "sweep",
        "diagnostics",
        "sweep",
        "cloudevent",
        TOPIC_SWEEP,
        "lead-sweep-run",
        dead_letter=False,
        ack_deadline_s=SWEEP_ACK_DEADLINE_S,
    ),
)

ACTION_TOPICS: dict[str, str] = {
    "calendar": TOPIC_CALENDAR,
    "email": TOPIC_NOTIFY,
    "drive": TOPIC_DRIVE,
}


def function(name: str) -> FunctionSpec:
    """The spec of the function called `name`."""
    for spec in FUNCTIONS:
        if spec.name == name:
            return spec
    raise KeyError(name)
