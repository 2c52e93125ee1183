"""Time as a dependency: the one place that reads the wall clock and sleeps.

Handlers get `now` and `sleep` from the wiring (`common.bootstrap`); tests pass a clock they
advance themselves (`tests.fakes.FakeClock`), so they assert exact times.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The time now, and a wait in process."""

    def now(self) -> datetime: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock (UTC) and a real sleep."""

    def now(self) -> datetime:
        """The time now, in UTC."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (nothing for zero or less)."""
        if seconds > 0:
            time.sleep(seconds)


SYSTEM = SystemClock()
