"""Workspace sandbox: a local stand-in for Google Calendar v3, Gmail v1 and Drive v3.

Its interface is docs/api.md, "Workspace sandbox".

Start it with ``python -m sandbox --host 127.0.0.1 --port P --project ID`` or, in-process,
``url, stop = sandbox.start_sandbox()``. Point ``googleapiclient.discovery.build`` at it with
``client_options={"api_endpoint": url}`` and credentials that name the acting user:
``common.google_apis.SandboxUserCredentials("host@example.com")``, which send
``Authorization: Bearer sandbox-user:host@example.com`` (``sandbox/identity.py``). An API call
without it is answered Google's 401; ``/_sandbox/*`` needs none.

Each user has their own mailbox, drive, calendar and quotas: ``events.*`` calls act on the
acting user's own calendar only (``primary`` or its address; anyone else's is 404), while
``freebusy.query`` reads any. A deleted event stays, ``cancelled``; ``files.update`` trashes a
file; a ``fields`` mask naming a field the resource lacks is 400 ``invalidParameter``.

``POST /_sandbox/limits`` sets Google's per-user limits (``sandbox/limits.py``), plus one sandbox
extension: ``"meetFails": true`` makes every new Meet conference end ``failure``. ``GET`` answers
the limits in force, ``DELETE`` (and ``POST /_sandbox/reset``) removes them.
"""

from __future__ import annotations

from sandbox.server import Sandbox, make_server, start_sandbox

__all__ = ["Sandbox", "make_server", "start_sandbox"]
