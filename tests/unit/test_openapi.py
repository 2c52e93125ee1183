"""`docs/openapi.json` is what the models make (`make openapi`), is valid OpenAPI 3.1, and the
handlers' answers on the in-memory fakes match it. No emulator: the answers of the real stack
are checked in tests/integration/test_openapi.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.api_schema import ErrorCode
from common.handlers.diagnostics import handle_diagnostics_get, handle_diagnostics_post
from common.handlers.intake import error
from leadrun.openapi import API_VERSION, ENDPOINTS, ERRORS, SPEC_PATH, build_spec, main, render
from tests.openapi_check import check_answer, check_request, spec
from tests.support import free_leads, lead, request, unique
from tests.unit.world import World


def test_the_committed_document_is_what_the_models_make() -> None:
    committed = SPEC_PATH.read_text(encoding="utf-8")
    assert committed == render(build_spec()), "docs/openapi.json is stale: run `make openapi`"


def test_the_document_is_deterministic_and_ends_with_a_newline(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert main(["--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == first == render(build_spec()).encode()
    assert first.endswith(b"}\n") and not first.endswith(b"\n\n")
    assert main(["--out", str(out), "--check"]) == 0
    out.write_text(first.decode().replace(f'"{API_VERSION}"', '"0.0"', 1), encoding="utf-8")
    assert main(["--out", str(out), "--check"]) == 1


def test_the_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1.")
    validator.validate(document, cls=validator.OpenAPIV31SpecValidator)


def test_every_endpoint_is_a_path_with_its_url_and_every_error_a_shared_response() -> None:
    document = spec()
    assert set(document["paths"]) == {endpoint.key for endpoint in ENDPOINTS}
    for endpoint in ENDPOINTS:
        assert document["paths"][endpoint.key]["x-url"] == endpoint.url
        for op in endpoint.operations:
            responses = document["paths"][endpoint.key][op.method]["responses"]
            assert set(responses) == {str(op.status)} | {str(s) for s in op.errors}
    assert document["security"] == [{"firebaseIdToken": []}]


@pytest.mark.parametrize("status", sorted(ERRORS))
def test_error_answers_match_their_status(status: int) -> None:
    answer = ERRORS[status]
    code: ErrorCode = answer.codes[0]
    details = [{"field": "body", "message": "wrong"}] if answer.with_details else None
    result = error(status, code, "a sentence", details)
    assert result.status == status
    assert result.body["error"]["code"] == code
    assert ("details" in result.body["error"]) == answer.with_details
    path, method = _operation_answering(status)
    headers = {name: "x" for name in ("WWW-Authenticate", "Allow")}
    check_answer(path, method, status, result.body, headers)


def test_a_request_the_models_refuse_fails_the_request_check() -> None:
    body = request(unique("oa"), free_leads(1))
    with pytest.raises(AssertionError, match="leads"):
        check_request("/schedule", "post", {**body, "leads": []})
    with pytest.raises(AssertionError, match="surprise"):
        check_request("/schedule", "post", {**body, "surprise": True})


def test_another_code_for_a_status_fails_the_check() -> None:
    body = error(409, "forbidden", "not the documented code").body
    with pytest.raises(AssertionError, match="run_mode_conflict"):
        check_answer("/schedule", "post", 409, body)


def test_schedule_and_diagnostics_answers_on_the_fakes_match_the_document() -> None:
    world = World()
    run = unique("oa")
    body = request(run, [*free_leads(1), lead("lead-nomail", [], email=None)])
    check_request("/schedule", "post", body)
    answer = world.schedule(body)
    assert answer.status == 202, answer.body
    assert answer.body["rejected"] == [{"leadDocId": "lead-nomail", "reason": "no_email"}]
    check_answer("/schedule", "post", 202, answer.body)

    funnel = handle_diagnostics_get(world.store, "alice", {"runId": run}, world.clock())
    assert funnel.status == 200, funnel.body
    check_answer("/diagnostics", "get", 200, funnel.body)
    stages = {"runId": run, "sourced": 3, "filtered": 1, "filterReasons": {"duplicate": 1}}
    check_request("/diagnostics", "post", stages)
    posted = handle_diagnostics_post(
        world.store, "alice", json.dumps(stages).encode(), world.clock()
    )
    assert posted.status == 200, posted.body
    assert posted.body["counts"]["sourced"] == 3
    check_answer("/diagnostics", "post", 200, posted.body)


def test_an_answer_with_a_field_the_models_do_not_name_fails_the_check() -> None:
    world = World()
    run = unique("oa")
    assert world.schedule(request(run, free_leads(1))).status == 202
    funnel: dict[str, Any] = handle_diagnostics_get(
        world.store, "alice", {"runId": run}, world.clock()
    ).body
    with pytest.raises(AssertionError, match="Additional properties"):
        check_answer("/diagnostics", "get", 200, {**funnel, "surprise": 1})
    without = {k: v for k, v in funnel.items() if k != "waitingUntil"}
    with pytest.raises(AssertionError, match="waitingUntil"):
        check_answer("/diagnostics", "get", 200, without)


def _operation_answering(status: int) -> tuple[str, str]:
    for endpoint in ENDPOINTS:
        for op in endpoint.operations:
            if status in op.errors:
                return endpoint.key, op.method
    raise AssertionError(f"no operation answers {status}")


CONTROL_ANSWER: dict[str, Any] = {
    "runId": "run-1",
    "command": "pause",
    "state": "paused",
    "affected": 2,
    "inFlight": [{"leadDocId": "lead-1", "action": "calendar"}],
    "eta": {"hana@example.com": "2026-11-26T15:30:00Z"},
}


def test_control_answers_match_the_document_with_the_undo_counts_only_on_undo() -> None:
    check_answer("/control", "post", 200, CONTROL_ANSWER)
    undo = {
        **CONTROL_ANSWER,
        "command": "undo",
        "state": "cancelled",
        "toRevert": {"events": 3, "folders": 2, "drafts": 1},
        "unrecallable": {"sent": 4},
    }
    check_answer("/control", "post", 200, undo)
    check_request("/control", "post", {"runId": "run-1", "command": "undo", "preview": True})
    # Each of the counts is required, and nothing else is allowed in them.
    with pytest.raises(AssertionError, match="toRevert"):
        check_answer("/control", "post", 200, {**undo, "toRevert": {"events": 3, "folders": 2}})
    with pytest.raises(AssertionError, match="unrecallable"):
        check_answer("/control", "post", 200, {**undo, "unrecallable": {"sent": 4, "drafts": 1}})
