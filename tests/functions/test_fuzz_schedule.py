"""Hypothesis against `schedule` and the token check: whatever comes in, no 5xx, always JSON."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.conftest import Tokens
from tests.support import free_leads, request, unique

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

# Text that likes the edges: control characters, separators, quotes, non-ASCII, long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00\r\n\t\u2028\"'\\<>@,;:/._-aZ9é😀"), max_size=40),
    st.sampled_from(["", "__x__", "..", "../x", "a" * 129, "2026-12-01T15:00:00", "UTC", "Z"]),
    st.builds(lambda n: "x" * n, st.integers(200, 3_000)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


BASE = request("fuzz", free_leads(2, days_ahead=5), dryRun=True)
PATHS = [path for path in _paths(BASE) if path]


@st.composite
def spoiled_bodies(draw: st.DrawFn) -> bytes:
    """A valid request with a few values replaced, keys added or removed; or plain noise."""
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "noise", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "noise":
        return json.dumps(draw(json_values)).encode()
    body = copy.deepcopy(BASE)
    body["runId"] = unique("fuzz")
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target: Any = body
        try:
            for part in path[:-1]:
                target = target[part]
            action = draw(st.sampled_from(["replace", "replace", "add", "drop"]))
            if action == "replace":
                target[path[-1]] = draw(json_values)
            elif action == "add" and isinstance(target, dict):
                target[draw(nasty_text)] = draw(json_values)
            elif isinstance(target, dict):
                target.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation already changed the shape under this path
    return json.dumps(body).encode()


def test_schedule_never_answers_5xx(schedule_fn: FlaskClient, tokens: Tokens) -> None:
    headers = {**tokens.bearer(), "Content-Type": "application/json"}

    @FUZZ
    @given(spoiled_bodies())
    def check(data: bytes) -> None:
        answer = schedule_fn.post("/", data=data, headers=headers)
        assert answer.status_code < 500, answer.get_data(as_text=True)[:300]
        assert answer.mimetype == "application/json"
        payload = answer.get_json()
        if answer.status_code >= 400:
            assert payload["error"]["code"] and payload["error"]["message"]
            if answer.status_code == 400:
                assert all(d["field"] for d in payload["error"]["details"])

    check()


def test_authorization_header_never_answers_5xx(schedule_fn: FlaskClient) -> None:
    body = json.dumps(request("fuzz-auth", free_leads(1), dryRun=True)).encode()
    segment = st.text(alphabet=st.sampled_from("ab-_=+/.{}\"'\\ é\x00"), max_size=30)
    header_values = st.one_of(
        st.text(max_size=60).map(lambda t: f"Bearer {t}"),
        st.tuples(segment, segment, segment).map(lambda p: "Bearer " + ".".join(p)),
        st.text(max_size=60),
    ).map(lambda v: v.replace("\r", "").replace("\n", ""))  # the HTTP layer refuses those

    @settings(FUZZ, max_examples=100)
    @given(header_values)
    def check(value: str) -> None:
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            value = value.encode("utf-8").decode("latin-1")  # what arrives over the wire
        answer = schedule_fn.post("/", data=body, headers={"Authorization": value})
        assert answer.status_code == 401, answer.get_data(as_text=True)[:300]
        assert answer.get_json()["error"]["code"] == "unauthenticated"

    check()
