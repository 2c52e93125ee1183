"""`leadrun ui [RUN_ID]`: the Operations page's address (`{DIAGNOSTICS_URL}ops`), opened in a
browser when this machine has one to show it in."""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Mapping
from urllib.parse import urlencode


def ops_url(env: Mapping[str, str], run_id: str | None = None, uid: str | None = None) -> str:
    """The page of `run_id` (or the page with no run chosen). On the local stack, `uid` fills
    the sign-in box (the page still asks before it signs in)."""
    base = env["DIAGNOSTICS_URL"]
    if not base.endswith("/"):
        base += "/"
    query = {"runId": run_id} if run_id else {}
    if uid and env.get("WORKSPACE_SANDBOX_URL"):
        query["uid"] = uid
    return f"{base}ops" + (f"?{urlencode(query)}" if query else "")


def browser_available() -> bool:
    """Whether a graphical browser can be opened here (never a text one in this terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        return not isinstance(webbrowser.get(), webbrowser.GenericBrowser)
    except webbrowser.Error:
        return False


def show(url: str, open_browser: bool = True) -> bool:
    """Print the address; open it if asked and a browser is there. Whether it was opened."""
    print(f"Operations page: {url}")
    if open_browser and browser_available():
        return webbrowser.open(url)
    return False
