"""Clients of the Google libraries find an emulator through the process environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def emulator_address(name: str, value: str | None) -> Iterator[None]:
    """`os.environ[name]` is `value` (absent for None) while a client is built, then as before.

    The Firestore and Pub/Sub clients read `FIRESTORE_EMULATOR_HOST` / `PUBSUB_EMULATOR_HOST`
    when they are built. A client for a given stack must use that stack's emulator (and a client
    for production none), whatever the caller's environment holds, e.g. another stack's address
    inherited from a parent process.
    """
    saved = os.environ.get(name)
    if value:
        os.environ[name] = value
    else:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
