"""infra/firestore.rules, evaluated by the Firestore emulator (from the Google Cloud CLI).

A private emulator is started with `--rules infra/firestore.rules` on a free port. Requests go
through its REST API the way client SDKs talk to an emulator: `Authorization: Bearer <JWT>` with
`alg: none` (the emulator reads the claims without checking a signature) for a signed-in user,
no header for an anonymous one, and `Bearer owner` — the emulator's admin bypass, what server SDKs
use — to seed data the rules would never let a client write.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

RULES = Path(__file__).resolve().parents[2] / "infra" / "firestore.rules"
PROJECT = "rules-test"
RUN = "lead_runs/run-a"
PATHS = {
    "run": RUN,
    "lead": f"{RUN}/leads/lead-1",
    "receipt": f"{RUN}/leads/lead-1/receipts/calendar",
    "counter": f"{RUN}/counters/0",
    "stages": f"{RUN}/stages/client",
}


def test_rules_file_denies_by_default_and_never_allows_client_writes() -> None:
    text = RULES.read_text()
    assert "rules_version = '2';" in text
    code = re.sub(r"//[^\n]*", "", text)
    assert re.search(r"match /\{document=\*\*\}\s*\{\s*allow read, write: if false;", code)
    assert not re.search(r"allow[^;]*\b(write|create|update|delete)\b[^;]*:\s*if (?!false)", code)
    assert "if true" not in code


def _jwt(uid: str) -> str:
    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": uid,
        "user_id": uid,
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims)}."


class Emulator:
    """REST access to a Firestore emulator as some caller."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.docs = f"{base}/v1/projects/{PROJECT}/databases/(default)/documents"
        self.session = requests.Session()

    @staticmethod
    def headers(who: str | None) -> dict[str, str]:
        """`owner` (admin bypass), a uid, or None (anonymous)."""
        if who is None:
            return {}
        return {"Authorization": "Bearer owner" if who == "owner" else f"Bearer {_jwt(who)}"}

    def write(self, who: str | None, path: str, fields: dict[str, Any]) -> int:
        body = {"fields": {k: _value(v) for k, v in fields.items()}}
        url = f"{self.docs}/{path}"
        return self.session.patch(url, json=body, headers=self.headers(who), timeout=10).status_code

    def create(self, who: str | None, collection: str, doc_id: str) -> int:
        url = f"{self.docs}/{collection}?documentId={doc_id}"
        body = {"fields": {"ownerUid": _value(who or "")}}
        return self.session.post(url, json=body, headers=self.headers(who), timeout=10).status_code

    def delete(self, who: str | None, path: str) -> int:
        url = f"{self.docs}/{path}"
        return self.session.delete(url, headers=self.headers(who), timeout=10).status_code

    def read(self, who: str | None, path: str) -> int:
        url = f"{self.docs}/{path}"
        return self.session.get(url, headers=self.headers(who), timeout=10).status_code

    def query_runs(self, who: str | None, owner: str | None) -> int:
        query: dict[str, Any] = {"from": [{"collectionId": "lead_runs"}]}
        if owner is not None:
            query["where"] = {
                "fieldFilter": {
                    "field": {"fieldPath": "ownerUid"},
                    "op": "EQUAL",
                    "value": _value(owner),
                }
            }
        url = f"{self.docs}:runQuery"
        answer = self.session.post(
            url, json={"structuredQuery": query}, headers=self.headers(who), timeout=10
        )
        return answer.status_code


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    return {"stringValue": str(value)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A Firestore emulator of our own, with the rules, stopped (by its process group) after."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        pytest.fail("the rules tests need gcloud with the Firestore emulator, and java")
    port = _free_port()
    log = (tmp_path_factory.mktemp("rules") / "emulator.log").open("wb")
    process = subprocess.Popen(
        [
            gcloud,
            "emulators",
            "firestore",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--rules={RULES}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the java child goes with it
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(base, timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Firestore emulator did not start; see {log.name}")
            time.sleep(0.2)
        yield Emulator(base)
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


@pytest.fixture(scope="module")
def seeded(emulator: Emulator) -> Emulator:
    """A run of alice's with a lead, a receipt, a counter shard and stages; a calendar hold."""
    assert emulator.write("owner", PATHS["run"], {"ownerUid": "alice", "dryRun": False}) == 200
    assert emulator.write("owner", PATHS["lead"], {"status": "accepted"}) == 200
    assert emulator.write("owner", PATHS["receipt"], {"status": "done"}) == 200
    assert emulator.write("owner", PATHS["counter"], {"sent": 1}) == 200
    assert emulator.write("owner", PATHS["stages"], {"sourced": 3}) == 200
    assert emulator.write("owner", "calendar_holds/h1", {"owner": "x"}) == 200
    assert emulator.write("owner", "lead_runs/run-b", {"ownerUid": "bob"}) == 200
    return emulator


@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(PATHS))
def test_the_owner_reads_their_run(seeded: Emulator, kind: str) -> None:
    assert seeded.read("alice", PATHS[kind]) == 200


@pytest.mark.integration
@pytest.mark.parametrize("who", ["mallory", None])
@pytest.mark.parametrize("kind", sorted(PATHS))
def test_nobody_else_reads_it(seeded: Emulator, kind: str, who: str | None) -> None:
    assert seeded.read(who, PATHS[kind]) == 403


@pytest.mark.integration
def test_owners_list_only_their_own_runs(seeded: Emulator) -> None:
    assert seeded.query_runs("alice", owner="alice") == 200
    assert seeded.query_runs("alice", owner="bob") == 403
    assert seeded.query_runs("alice", owner=None) == 403
    assert seeded.read("alice", f"{RUN}/leads/lead-1/receipts") == 200  # list own receipts
    assert seeded.read("mallory", f"{RUN}/leads/lead-1/receipts") == 403


@pytest.mark.integration
def test_holds_are_server_only(seeded: Emulator) -> None:
    for who in ("alice", "mallory", None):
        assert seeded.read(who, "calendar_holds/h1") == 403


@pytest.mark.integration
@pytest.mark.parametrize("who", ["alice", "mallory", None])
def test_nobody_writes_from_a_client(seeded: Emulator, who: str | None) -> None:
    for kind, path in PATHS.items():
        assert seeded.write(who, path, {"status": "done", "ownerUid": who or ""}) == 403, kind
        assert seeded.delete(who, path) == 403, kind
    assert seeded.write(who, f"{RUN}/leads/lead-2/receipts/email", {"status": "done"}) == 403
    assert seeded.create(who, "lead_runs", "run-new") == 403
    assert seeded.write(who, "calendar_holds/h2", {"owner": "x"}) == 403
    # Nothing changed: alice's run is still alice's.
    assert seeded.read("alice", RUN) == 200 and seeded.read("owner", "lead_runs/run-new") == 404
