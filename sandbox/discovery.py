"""Routing and request validation from the discovery documents shipped with the client.

The documents are the ones ``googleapiclient.discovery.build(..., static_discovery=True)`` uses,
so the sandbox accepts exactly the paths, query parameters and body fields the client can send.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import googleapiclient

from sandbox.errors import ApiError, bad_request
from sandbox.fields import FieldTree

DOCUMENTS: dict[str, str] = {"calendar": "calendar.v3", "gmail": "gmail.v1", "drive": "drive.v3"}

# With ``client_options={"api_endpoint": URL}`` the client replaces rootUrl + servicePath by URL,
# so Calendar calls ``URL/calendars/...`` and Drive ``URL/files``; Gmail paths carry ``gmail/v1``.
# The service-path-prefixed forms are accepted as well.
PREFIXES: dict[str, tuple[str, ...]] = {
    "calendar": ("", "/calendar/v3"),
    "gmail": ("",),
    "drive": ("", "/drive/v3"),
}

_SCALARS = frozenset({"string", "integer", "number", "boolean"})
_PARAM = re.compile(r"\{(\+?)([^}]+)\}")


@dataclass(frozen=True)
class MethodSpec:
    """One discovery method: id, HTTP method, path pattern, parameters and request schema."""

    id: str
    api: str
    http_method: str
    path: str
    pattern: re.Pattern[str]
    path_params: tuple[str, ...]
    parameters: dict[str, Any]
    request_ref: str | None
    response_ref: str | None = None
    upload_paths: tuple[str, ...] = field(default_factory=tuple)

    @property
    def literal_weight(self) -> int:
        """How much of the path is literal text (more literal wins when two methods match)."""
        return len(_PARAM.sub("", self.path))


@dataclass
class Route:
    """A matched request: the method, its decoded path parameters, and whether it is an upload."""

    spec: MethodSpec
    params: dict[str, str]
    upload: bool = False


def _compile(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    names: list[str] = []
    out = ["^"]
    pos = 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos : m.start()]))
        out.append("(.+)" if m.group(1) else "([^/]+)")
        names.append(m.group(2))
        pos = m.end()
    out.append(re.escape(path[pos:]))
    out.append("$")
    return re.compile("".join(out)), tuple(names)


def documents_dir() -> Path:
    """The folder of discovery documents inside the installed google-api-python-client."""
    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


class Discovery:
    """The three APIs' discovery documents, as a router and a validator."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.methods: list[MethodSpec] = []
        for api, name in DOCUMENTS.items():
            doc = json.loads((documents_dir() / f"{name}.json").read_text(encoding="utf-8"))
            self.docs[api] = doc
            self._collect(api, doc.get("resources", {}))
        self.global_params: dict[str, set[str]] = {
            api: set(doc.get("parameters", {})) for api, doc in self.docs.items()
        }

    def _collect(self, api: str, resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                path = method.get("flatPath") or method["path"]
                pattern, names = _compile(path)
                uploads: list[str] = []
                for proto in method.get("mediaUpload", {}).get("protocols", {}).values():
                    uploads.append(proto["path"].lstrip("/").removeprefix("upload/"))
                self.methods.append(
                    MethodSpec(
                        id=method["id"],
                        api=api,
                        http_method=method["httpMethod"],
                        path=path,
                        pattern=pattern,
                        path_params=names,
                        parameters=method.get("parameters", {}),
                        request_ref=(method.get("request") or {}).get("$ref"),
                        response_ref=(method.get("response") or {}).get("$ref"),
                        upload_paths=tuple(u for u in uploads if not u.startswith("resumable")),
                    )
                )
            self._collect(api, resource.get("resources", {}))

    def route(self, http_method: str, raw_path: str) -> Route | None:
        """Find the method serving ``http_method raw_path`` (path still percent-encoded)."""
        upload = raw_path.startswith("/upload/")
        path = raw_path.removeprefix("/upload") if upload else raw_path
        best: Route | None = None
        for spec in self.methods:
            if spec.http_method != http_method:
                continue
            for prefix in PREFIXES[spec.api]:
                if not path.startswith(prefix + "/"):
                    continue
                rest = path[len(prefix) + 1 :]
                candidates = [_compile(p)[0] for p in spec.upload_paths] if upload else []
                for pattern in candidates or ([] if upload else [spec.pattern]):
                    m = pattern.match(rest)
                    if not m:
                        continue
                    if best is None or spec.literal_weight > best.spec.literal_weight:
                        values = [unquote(v) for v in m.groups()]
                        best = Route(spec, dict(zip(spec.path_params, values, strict=True)), upload)
        return best

    def validate_query(self, spec: MethodSpec, query: dict[str, list[str]]) -> dict[str, Any]:
        """Check the query parameters against the method; return them typed (lists if repeated)."""
        out: dict[str, Any] = {}
        for name, values in query.items():
            if name in self.global_params[spec.api]:
                out[name] = values[-1]
                continue
            param = spec.parameters.get(name)
            if param is None or param.get("location") != "query":
                raise bad_request(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                    f"parameter. Field '{name}' could not be found in request message."
                )
            typed = [_typed_param(name, param, v) for v in values]
            out[name] = typed if param.get("repeated") else typed[-1]
        for name, param in spec.parameters.items():
            if param.get("location") == "query" and param.get("required") and name not in out:
                raise bad_request(f"Required parameter: {name}", "required", location=name)
        return out

    def validate_body(self, spec: MethodSpec, body: Any) -> None:
        """Reject a body with a field unknown to the request schema (checked recursively)."""
        if spec.request_ref is None:
            return
        schema = self.docs[spec.api]["schemas"][spec.request_ref]
        self._check(spec.api, schema, body, "resource", depth=0)

    def validate_fields(self, spec: MethodSpec, tree: FieldTree | None) -> None:
        """Reject a ``fields`` mask naming a field the response resource does not have (400
        ``invalidParameter``, as Google answers); a method without a response body has none."""
        if tree is None or spec.response_ref is None:
            return
        schema = self.docs[spec.api]["schemas"][spec.response_ref]
        self._check_mask(spec.api, schema, tree, "")

    def _check_mask(self, api: str, schema: dict[str, Any], tree: FieldTree, where: str) -> None:
        schema = self._resolve(api, schema)
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, sub in tree.items():
            if name == "*":
                continue
            path = f"{where}/{name}" if where else name
            if name in props:
                child = props[name]
            elif isinstance(extra, dict):  # a map: any key names an entry
                child = extra
            else:
                raise invalid_field_selection(path)
            if sub is not None:
                inner = self._resolve(api, child)
                while inner.get("type") == "array":
                    inner = self._resolve(api, inner.get("items", {}))
                if inner.get("type") in _SCALARS:
                    raise invalid_field_selection(path)  # a scalar has no fields to select
                self._check_mask(api, inner, sub, path)

    def _resolve(self, api: str, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.docs[api]["schemas"][schema["$ref"]]
        return schema

    def _check(self, api: str, schema: dict[str, Any], value: Any, where: str, depth: int) -> None:
        schema = self._resolve(api, schema)
        kind = schema.get("type")
        if value is None or kind == "any" or depth > 64:
            return
        if kind == "object":
            if not isinstance(value, dict):
                raise _invalid_value(where, value)
            props: dict[str, Any] = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if key in props:
                    self._check(api, props[key], item, f"{where}.{key}", depth + 1)
                elif extra is not None:
                    self._check(api, extra, item, f"{where}[{key}]", depth + 1)
                else:
                    at = "" if where == "resource" else f" at '{where}'"
                    raise bad_request(
                        f'Invalid JSON payload received. Unknown name "{key}"{at}: '
                        "Cannot find field."
                    )
        elif kind == "array":
            if not isinstance(value, list):
                raise _invalid_value(where, value)
            for i, item in enumerate(value):
                self._check(api, schema.get("items", {}), item, f"{where}[{i}]", depth + 1)
        elif _scalar_mismatch(kind, value):
            raise _invalid_value(where, value)


def invalid_field_selection(path: str) -> ApiError:
    """Google's 400 for a ``fields`` mask naming a field the resource does not have."""
    return bad_request(f"Invalid field selection {path}", "invalidParameter", "fields")


def _scalar_mismatch(kind: Any, value: Any) -> bool:
    if isinstance(value, dict | list):
        return True
    if kind == "boolean":
        return not isinstance(value, bool)
    return kind in ("integer", "number") and isinstance(value, bool)


def _invalid_value(where: str, value: Any) -> ApiError:
    shown = json.dumps(value)[:80]
    return bad_request(f"Invalid value at '{where}', {shown}", "invalid")


def _typed_param(name: str, param: dict[str, Any], value: str) -> Any:
    kind = param.get("type")
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            raise bad_request(
                f"Invalid value '{value}'. Values must match the format: integer", "invalid", name
            ) from None
        lo, hi = param.get("minimum"), param.get("maximum")
        if (lo is not None and number < int(lo)) or (hi is not None and number > int(hi)):
            raise bad_request(f"Invalid value '{value}' for parameter {name}", "invalid", name)
        return number
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise bad_request(f"Invalid value '{value}' for parameter {name}", "invalid", name)
        return value.lower() == "true"
    enum = param.get("enum")
    if enum and value not in enum:
        raise bad_request(f"Invalid value at '{name}', \"{value}\"", "invalid", name)
    return value
