"""The Operations page's server side (common/ops_page.py), pure: its configuration, its
Content-Security-Policy, the shell's hooks, the funnel image, and `leadrun ui`'s address."""

from __future__ import annotations

import json
import re
from pathlib import Path

import flask
import pytest

from common.config import settings_from
from common.funnel import render_svg
from common.ops_page import ops_http, ops_route, page_config, render_page
from leadrun.report import funnel_svg
from leadrun.ui import ops_url
from leadrun.views import build_view

ASSETS = Path(__file__).resolve().parents[2] / "functions" / "diagnostics" / "ops"
LOCAL = {
    "GOOGLE_CLOUD_PROJECT": "demo",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
    "WORKSPACE_SANDBOX_URL": "http://127.0.0.1:2",
    "LEADRUN_GOOGLE_MODE": "sandbox",
    "LEADRUN_CONTROL_URL": "http://127.0.0.1:3/",
}
PRODUCTION = {
    "GOOGLE_CLOUD_PROJECT": "demo",
    "LEADRUN_CONTROL_URL": "https://europe-west1-demo.cloudfunctions.net/control",
    "LEADRUN_FIREBASE_API_KEY": "AIza-test",
}
HOOKS = (
    "signin-uid",
    "signin-submit",
    "run-id",
    "run-open",
    "run-state",
    "eta",
    "waiting-until",
    "filter-status",
    "filter-reason",
    "next-page",
    "btn-pause",
    "btn-resume",
    "btn-cancel",
    "btn-undo",
    "confirm",
    "error",
)


def serve(path: str, env: dict[str, str], method: str = "GET") -> flask.Response:
    with flask.Flask(__name__).test_request_context(path, method=method) as context:
        return ops_http(context.request, settings_from(env), ASSETS)


def test_routes_under_ops_only() -> None:
    assert ops_route("/ops") == "" and ops_route("/diagnostics/ops") == ""
    assert ops_route("/ops/ops.js") == "/ops.js" and ops_route("/ops/") == "/"
    assert ops_route("/") is None and ops_route("/leads") is None and ops_route("/ops/a/b") is None


def test_local_stack_signs_in_with_a_uid_and_production_with_firebase() -> None:
    local = page_config(settings_from(LOCAL))
    assert (local["signIn"], local["firebase"], local["controlUrl"]) == (
        "uid",
        None,
        "http://127.0.0.1:3/",
    )
    production = page_config(settings_from(PRODUCTION))
    assert production["signIn"] == "firebase"
    assert production["firebase"] == {
        "apiKey": "AIza-test",
        "authDomain": "demo.firebaseapp.com",
        "projectId": "demo",
    }
    assert page_config(settings_from({"GOOGLE_CLOUD_PROJECT": "demo"}))["signIn"] is None


def test_the_shell_has_every_hook_and_loads_only_its_own_files() -> None:
    page = render_page(settings_from(LOCAL), ASSETS)
    for hook in HOOKS:
        assert f'data-testid="{hook}"' in page, hook
    for name in ("Pause", "Resume", "Cancel run", "Undo run"):
        assert f">{name}</button>" in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("ops/", "#", "data:")) for s in sources), sources
    assert "firebase-app" not in page  # the local stack does not load the SDK
    production = render_page(settings_from(PRODUCTION), ASSETS)
    assert 'src="ops/firebase-app-compat-12.6.0.js"' in production
    assert 'data-testid="signin-uid"' not in production


def test_the_configuration_block_cannot_close_its_element() -> None:
    env = {**PRODUCTION, "LEADRUN_FIREBASE_API_KEY": "</script><script>alert(1)</script>"}
    page = render_page(settings_from(env), ASSETS)
    block = page.split('id="ops-config">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block)["firebase"]["apiKey"].startswith("</script>")
    assert "alert(1)</script>" not in page


def test_the_page_may_reach_its_origin_and_control_only() -> None:
    answer = serve("/ops?runId=r", LOCAL)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    policy = answer.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:3;" in policy
    assert "script-src 'self';" in policy and "*" not in policy
    assert "googleapis" not in policy  # the local stack talks to nothing of Google's
    production = serve("/ops", PRODUCTION).headers["Content-Security-Policy"]
    assert "https://identitytoolkit.googleapis.com" in production
    assert "frame-src https://demo.firebaseapp.com;" in production


def test_files_tokens_and_redirects() -> None:
    assert serve("/ops/ops.js", LOCAL).mimetype == "text/javascript"
    assert serve("/ops/page.html", LOCAL).status_code == 404  # the template is not a file to fetch
    assert serve("/ops/main.py", LOCAL).status_code == 404  # only the listed files
    moved = serve("/ops/?runId=r", LOCAL)
    assert (moved.status_code, moved.headers["Location"]) == (308, "../ops?runId=r")
    assert serve("/ops/token", PRODUCTION, method="POST").status_code == 404
    assert serve("/ops", LOCAL, method="POST").status_code == 405


def test_the_funnel_image_is_the_reports_renderer() -> None:
    counts = {"accepted": 3, "rejected": 1, "booked": 2, "noSlot": 1, "sent": 2, "drafted": 1}
    query = "&".join(f"{k}={v}" for k, v in counts.items())
    image = serve(f"/ops/funnel.svg?runId=run-1&submitted=4&{query}", LOCAL)
    assert image.mimetype == "image/svg+xml"
    assert image.get_data(as_text=True) == render_svg(counts, 4, "run-1")
    view = build_view({"runId": "run-1", "dryRun": False, "counts": counts, "reasons": {}}, [])
    assert funnel_svg(view) == render_svg(counts, view.submitted, "run-1")
    assert serve("/ops/funnel.svg?runId=run-1&booked=-1", LOCAL).status_code == 400
    assert serve("/ops/funnel.svg?runId=<b>", LOCAL).status_code == 400


def test_the_ops_origin_joins_the_allowed_origins_and_nothing_wider() -> None:
    env = {**LOCAL, "LEADRUN_ALLOWED_ORIGINS": "https://app.example.com"}
    allowed = settings_from({**env, "LEADRUN_OPS_ORIGIN": "http://127.0.0.1:9"}).allowed_origins
    assert allowed == {"https://app.example.com", "http://127.0.0.1:9"}
    for wrong in ("*", "null", "http://a.test/path", "http://a.test,http://b.test"):
        with pytest.raises(RuntimeError):
            settings_from({**env, "LEADRUN_OPS_ORIGIN": wrong})


def test_leadrun_ui_prints_the_page_of_a_run() -> None:
    env = {"DIAGNOSTICS_URL": "http://127.0.0.1:5/", "WORKSPACE_SANDBOX_URL": "http://x"}
    assert ops_url(env, "run-1", "operator") == "http://127.0.0.1:5/ops?runId=run-1&uid=operator"
    production = {"DIAGNOSTICS_URL": "https://r-p.cloudfunctions.net/diagnostics"}
    assert ops_url(production, "run-1", "operator") == (
        "https://r-p.cloudfunctions.net/diagnostics/ops?runId=run-1"
    )
    assert ops_url(production) == "https://r-p.cloudfunctions.net/diagnostics/ops"
