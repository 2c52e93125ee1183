"""`GET {DIAGNOSTICS_URL}ops`: the Operations page, and the files it loads (docs/api.md,
"Operations page").

The page is one HTML shell (a Jinja2 template) plus its own CSS and JS, the shared funnel
renderer and the pinned Firebase Web SDK, all shipped with the diagnostics function in its
`ops/` folder: nothing is loaded from anywhere else. The page reads the run through the same
endpoints as any client (diagnostics and `/leads`, same origin) and steers it through
`CONTROL_URL` with the signed-in user's token; this module holds no run data.

On the local stack (the emulators, with the Workspace sandbox) the page signs in with a uid:
`POST ops/token` asks the sandbox for a token for it, so the browser needs no other origin.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import flask
import jinja2
import requests
from markupsafe import Markup

from common.config import Settings
from common.funnel import DRAWN, render_svg

TEMPLATE = "page.html"
# The files the page loads, and their types; nothing else in the folder is served.
ASSETS = {
    "ops.css": "text/css; charset=utf-8",
    "ops.js": "text/javascript; charset=utf-8",
    "firebase-app-compat-12.6.0.js": "text/javascript; charset=utf-8",
    "firebase-auth-compat-12.6.0.js": "text/javascript; charset=utf-8",
}
FIREBASE_FILES = ("firebase-app-compat-12.6.0.js", "firebase-auth-compat-12.6.0.js")
# What Firebase Authentication's popup sign-in talks to (production only).
FIREBASE_CONNECT = (
    "https://identitytoolkit.googleapis.com",
    "https://securetoken.googleapis.com",
    "https://www.googleapis.com",
)
_OPS_PATH = re.compile(r"^(?:.*/)?ops(/[^/]*)?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_COUNT = re.compile(r"^[0-9]{1,9}$")
# What the funnel draws: the diagnostics counts it shows, and the leads submitted.
FUNNEL_COUNTS = (*DRAWN, "submitted")
_UID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
TOKEN_TIMEOUT_S = 10


def ops_route(path: str) -> str | None:
    """`""` for the page, `"/"`, `"/<file>"` or `"/token"` under it; None if not the page's."""
    match = _OPS_PATH.match(path)
    if match is None:
        return None
    return match.group(1) or ""


def local_signin(settings: Settings) -> bool:
    """Whether this deployment signs in with a uid (the local stack: tokens from the sandbox)."""
    return bool(settings.on_emulators and settings.sandbox_url)


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page's script is told: where to steer and how to sign in."""
    firebase = None
    if not local_signin(settings) and settings.firebase_api_key:
        firebase = {
            "apiKey": settings.firebase_api_key,
            "authDomain": settings.firebase_auth_domain or f"{settings.project}.firebaseapp.com",
            "projectId": settings.project,
        }
    return {
        "controlUrl": settings.control_url,
        "signIn": "uid" if local_signin(settings) else ("firebase" if firebase else None),
        "firebase": firebase,
    }


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else None


def content_policy(settings: Settings) -> str:
    """The page's Content-Security-Policy: its own files, its own origin and Control only."""
    connect = ["'self'"]
    frames = ["'none'"]
    control = _origin(settings.control_url)
    if control:
        connect.append(control)
    config = page_config(settings)
    if config["firebase"]:
        connect += FIREBASE_CONNECT
        frames = [f"https://{config['firebase']['authDomain']}"]
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            f"frame-src {' '.join(frames)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@lru_cache(maxsize=4)
def _templates(folder: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render_page(settings: Settings, assets: Path) -> str:
    """The page's HTML: the shell, with its configuration as a JSON data block."""
    config = page_config(settings)
    # A data block, never executed; `<` escaped so no value can close the element.
    data = json.dumps(config, sort_keys=True).replace("<", "\\u003c")
    template = _templates(str(assets)).get_template(TEMPLATE)
    return template.render(
        config_json=Markup(data),  # noqa: S704 - JSON with every `<` escaped, built above
        firebase_files=FIREBASE_FILES if config["firebase"] else (),
        local=config["signIn"] == "uid",
    )


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(text, status=status, mimetype="text/plain")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _json(status: int, body: dict[str, Any]) -> flask.Response:
    response = flask.Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _token(request: flask.Request, settings: Settings) -> flask.Response:
    """`POST ops/token {"uid"}` on the local stack: a token for that uid, from the sandbox."""
    if not local_signin(settings):
        return _json(404, {"error": {"code": "not_found", "message": "no local sign-in here"}})
    if request.method != "POST":
        return _json(405, {"error": {"code": "method_not_allowed", "message": "use POST"}})
    body = request.get_json(silent=True)
    uid = body.get("uid") if isinstance(body, dict) else None
    if not isinstance(uid, str) or not _UID.match(uid):
        message = "uid: 1 to 128 letters, digits or _ . @ -"
        return _json(400, {"error": {"code": "invalid_request", "message": message}})
    answer = requests.post(
        f"{settings.sandbox_url}/_sandbox/token", json={"uid": uid}, timeout=TOKEN_TIMEOUT_S
    )
    answer.raise_for_status()
    return _json(200, {"idToken": answer.json()["idToken"]})


def _funnel(request: flask.Request) -> flask.Response:
    """`GET ops/funnel.svg?runId=R&accepted=3&...`: the funnel (common/funnel.py) of the counts
    in the query, as an image. It reads nothing: the page passes the diagnostics answer's counts."""
    counts: dict[str, int] = {}
    for key in FUNNEL_COUNTS:
        value = request.args.get(key, "0")
        if not _COUNT.match(value):
            return _plain(400, f"{key}: a whole number from 0")
        counts[key] = int(value)
    run_id = request.args.get("runId", "")
    if not _RUN_ID.match(run_id):
        return _plain(400, "runId: a run id")
    svg = render_svg(counts, counts.pop("submitted"), run_id)
    response = flask.Response(svg, content_type="image/svg+xml; charset=utf-8")
    # The same query always draws the same image.
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def ops_http(request: flask.Request, settings: Settings, assets: Path) -> flask.Response:
    """Serve the page, one of its files, or (local stack) a sign-in token."""
    route = ops_route(request.path) or ""
    if route == "/token":
        return _token(request, settings)
    if request.method not in ("GET", "HEAD"):
        return _plain(405, "use GET", {"Allow": "GET, HEAD"})
    if route == "/funnel.svg":
        return _funnel(request)
    if route == "/":
        query = request.query_string.decode()
        return _plain(308, "moved", {"Location": "../ops" + (f"?{query}" if query else "")})
    if route == "":
        response = flask.Response(render_page(settings, assets), mimetype="text/html")
        response.headers["Content-Security-Policy"] = content_policy(settings)
        response.headers["Referrer-Policy"] = "no-referrer"
    else:
        name = route[1:]
        if name not in ASSETS:
            return _plain(404, "not found")
        response = flask.Response((assets / name).read_bytes(), content_type=ASSETS[name])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
