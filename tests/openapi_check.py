"""Checking an HTTP answer against `docs/openapi.json`, shared by the unit and integration tiers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from leadrun.openapi import SPEC_PATH

SPEC_URI = "urn:leadrun:openapi"


@cache
def spec() -> dict[str, Any]:
    """The document as committed (what clients read), not as the models would make it now."""
    return dict(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


def _pointer(*parts: str) -> str:
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """An OpenAPI Response object behind a `$ref` (a local one), and its JSON pointer."""
    ref = node["$ref"]
    assert ref.startswith("#/"), ref
    found: Any = document
    for part in ref[2:].split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found, ref[1:]


def response_of(
    path: str, method: str, status: int, document: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The documented answer of `method path` with `status`, and the JSON pointer of its schema."""
    document = document or spec()
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    response = responses[str(status)]
    pointer = _pointer("paths", path, method, "responses", str(status))
    if "$ref" in response:
        response, pointer = _resolve(document, response)
    return response, pointer + _pointer("content", "application/json", "schema")


def schema_problems(document: dict[str, Any], pointer: str, instance: Any) -> list[str]:
    """What is wrong with `instance` against the schema at `pointer` in the document."""
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def check_request(path: str, method: str, body: Any) -> None:
    """Fail unless `body` matches the request body `method path` documents."""
    pointer = _pointer("paths", path, method, "requestBody", "content", "application/json")
    problems = schema_problems(spec(), pointer + "/schema", body)
    assert not problems, f"{method.upper()} {path} request: " + "; ".join(problems)


def check_answer(
    path: str,
    method: str,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    document: dict[str, Any] | None = None,
) -> None:
    """Fail unless `body` (and the documented headers) match the answer `method path` documents
    for `status`. `$ref`s resolve inside the document, as Draft 2020-12 resolves them."""
    document = document or spec()
    response, pointer = response_of(path, method, status, document)
    problems = schema_problems(document, pointer, body)
    assert not problems, f"{method.upper()} {path} {status}: " + "; ".join(problems)
    for name in response.get("headers", {}):
        assert headers is not None and name in headers, f"{status} lacks the {name} header"
