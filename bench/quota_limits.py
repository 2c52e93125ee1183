"""The quota phase's arithmetic (pure): Google's limits, compressed in time, and the bound they set.

Google's per-user limits (docs/api.md, "Sandbox limits"; docs/benchmarks.md, "Quota phase") are
counts over sliding windows: a window of `W` seconds lets at most `C` units through in any span of
`W` seconds. The sandbox enforces them over real seconds, so a benchmark compresses Google's minute
or day by dividing every window (and the lockout) by a factor while keeping every count.

The bound is the least time the limits allow for N leads, however good the pacing and however
fast everything else is. For one count `C` over a window `W`, N leads costing `c` each need
`U = N * c` units:

* at most `C` units fit in any `W`-second span, so `U` units span at least
  `k = ceil(U / C)` windows' worth of admissions;
* the fastest schedule spends `C` at t = 0, `C` again at t = W (the window is `(now - W, now]`:
  what was charged at 0 has slid out at exactly W), ..., and the last batch at `(k - 1) * W`;
* and no schedule does better: any span shorter than `(k - 1) * W` is covered by `k - 1` windows,
  which admit at most `(k - 1) * C < U` units.

So the bound for that count is `(ceil(N * c / C) - 1) * W` (0 when everything fits in one
window), and the run's bound is the largest over every count. Calls are whole: a window admits a
call only if all of it fits, so `C` counts down to whole calls of the count's smallest call
(`CALL_UNIT`): half of Drive's 3 writes, 1.5, admits one write a window, not one and a half.
It is a bound on the time between the first and the last admitted call; the run's settle time
also holds what comes before the first call and after the last one (accepting the POST,
publishing, the last receipts), so an efficiency (bound / actual) near but below 1 is the best
there is. Gmail's `concurrent` has no window and
sets no bound by itself (it would, given each call's latency: 10 calls in flight at a few ms each
allow thousands of calls a second, far above the unit rate).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from common.pacing import PUBLISHED

# Google's published per-user figures: the same document the pipeline paces to by default.
GOOGLE_LIMITS: dict[str, dict[str, float]] = PUBLISHED
COMPRESSION = 10  # "a minute lasts 6 s"

# The keys that are times (divided by the compression) and the window each count slides over,
# with the window the sandbox assumes when a document leaves it out (sandbox/limits.py).
TIME_KEYS: dict[str, tuple[str, ...]] = {
    "gmail": ("perSeconds", "sendsPerSeconds"),
    "calendar": ("perSeconds", "invitesPerSeconds", "lockoutSeconds"),
    "drive": ("perSeconds",),
}
WINDOW_OF: dict[tuple[str, str], tuple[str, float]] = {
    ("gmail", "units"): ("perSeconds", 60.0),
    ("gmail", "sends"): ("sendsPerSeconds", 86400.0),
    ("calendar", "requests"): ("perSeconds", 60.0),
    ("calendar", "externalInvites"): ("invitesPerSeconds", 86400.0),
    ("drive", "writes"): ("perSeconds", 1.0),
}
# What one booked and confirmed lead costs against each count, on a first, fault-free attempt:
# Gmail drafts.create 10 + drafts.send 100 units and one send; Calendar freebusy.query +
# events.insert, the insert inviting one external guest; Drive one files.create (generateIds is
# not a write, and comes once per 100 leads anyway).
LEAD_COSTS: dict[str, dict[str, float]] = {
    "gmail": {"units": 110, "sends": 1},
    "calendar": {"requests": 2, "externalInvites": 1},
    "drive": {"writes": 1},
}
# The smallest call against each count: Gmail's drafts.create (10 units); every other call
# counts 1. A window's capacity is a whole number of these.
CALL_UNIT: dict[tuple[str, str], float] = {("gmail", "units"): 10.0}
# Floating-point slack for whole-number arithmetic on counts such as 7,500 units.
_EPSILON = 1e-9


def _number(value: float) -> float | int:
    """An int when the value is whole, so the document reads like Google's figures."""
    return int(value) if float(value).is_integer() else float(value)


def compressed(limits: Mapping[str, Any], factor: float = COMPRESSION) -> dict[str, Any]:
    """`limits` with every time (windows and the lockout) divided by `factor`, counts kept.

    `concurrent` is a count of calls in flight, not a rate, so it is kept too.
    """
    if factor <= 0:
        raise ValueError(f"factor must be > 0, not {factor!r}")
    out: dict[str, Any] = copy.deepcopy(dict(limits))
    for api, keys in TIME_KEYS.items():
        section = out.get(api)
        if not isinstance(section, dict):
            continue
        for key in keys:
            if key in section:
                section[key] = _number(section[key] / factor)
    return out


def scaled_counts(limits: Mapping[str, Any], fraction: float) -> dict[str, Any]:
    """`limits` with every windowed count multiplied by `fraction`, windows and `concurrent` kept.

    The untold run's sandbox: the same windows as the pipeline was told, less in each.
    """
    if fraction <= 0:
        raise ValueError(f"fraction must be > 0, not {fraction!r}")
    out: dict[str, Any] = copy.deepcopy(dict(limits))
    for api, count in WINDOW_OF:
        section = out.get(api)
        if isinstance(section, dict) and count in section:
            section[count] = _number(section[count] * fraction)
    return out


def bound_by_count(
    limits: Mapping[str, Any], leads: int, costs: Mapping[str, Mapping[str, float]] = LEAD_COSTS
) -> dict[str, float]:
    """The least seconds each count allows for `leads` leads: `"gmail.units": 42.0`, ...

    A count the document leaves out is no limit and is not listed; a count of 0 with a cost is
    never met (infinity).
    """
    out: dict[str, float] = {}
    for (api, count), (window_key, default_window) in WINDOW_OF.items():
        section = limits.get(api)
        cost = float((costs.get(api) or {}).get(count) or 0)
        if not isinstance(section, Mapping) or section.get(count) is None or cost <= 0:
            continue
        unit = CALL_UNIT.get((api, count), 1.0)
        capacity = math.floor(float(section[count]) / unit + _EPSILON) * unit
        window = float(section.get(window_key, default_window))
        needed = leads * cost
        if needed <= 0:
            out[f"{api}.{count}"] = 0.0
        elif capacity <= 0:
            out[f"{api}.{count}"] = math.inf
        else:
            windows = math.ceil(needed / capacity - _EPSILON)
            out[f"{api}.{count}"] = max(0, windows - 1) * window
    return out


def quota_bound_s(
    limits: Mapping[str, Any], leads: int, costs: Mapping[str, Mapping[str, float]] = LEAD_COSTS
) -> float:
    """The least time Google's `limits` allow for `leads` leads of one host costing `costs` each:
    the largest of `bound_by_count` (0 when nothing binds). See the module's docstring."""
    return max(bound_by_count(limits, leads, costs).values(), default=0.0)
