"""Workspace sandbox: a local stand-in for Google Calendar v3, Gmail v1 and Drive v3 (CONTRACT §7).

Start it with ``python -m sandbox --host 127.0.0.1 --port P --project ID`` or, in-process,
``url, stop = sandbox.start_sandbox()``. Point ``googleapiclient.discovery.build`` at it with
``client_options={"api_endpoint": url}`` and ``AnonymousCredentials``.
"""

from __future__ import annotations

from sandbox.server import Sandbox, make_server, start_sandbox

__all__ = ["Sandbox", "make_server", "start_sandbox"]
