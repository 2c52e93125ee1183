"""Each Workspace request is executed as the host it names, however the clients are shared.

Collections are built once per thread and shared by every host; the identity is the HTTP client a
request is executed with. These checks run without a Google account: credentials are built, never
used.
"""

from __future__ import annotations

import threading
from typing import Any

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from google_auth_httplib2 import AuthorizedHttp

from common.config import settings_from
from common.google_apis import SCOPES, SandboxUserCredentials, ServiceCache

WORKSPACE = {
    "GOOGLE_CLOUD_PROJECT": "leadrun-prod",
    "LEADRUN_GOOGLE_MODE": "workspace",
    "LEADRUN_DELEGATION_SA": "notify@leadrun-prod.iam.gserviceaccount.com",
    "LEADRUN_WORKSPACE_SUBJECTS": "example.com",
}

SANDBOX = {
    "GOOGLE_CLOUD_PROJECT": "demo-leadrun",
    "LEADRUN_GOOGLE_MODE": "sandbox",
    "WORKSPACE_SANDBOX_URL": "http://127.0.0.1:9999",
}


@pytest.fixture()
def workspace(monkeypatch: pytest.MonkeyPatch) -> ServiceCache:
    def default(scopes: Any = None, **_: Any) -> tuple[Any, str]:
        return AnonymousCredentials(), "leadrun-prod"

    monkeypatch.setattr(google.auth, "default", default)
    return ServiceCache(settings_from(WORKSPACE))


def test_each_host_gets_its_own_delegated_identity_with_the_kinds_scopes(
    workspace: ServiceCache,
) -> None:
    ana = workspace("gmail", "ana@example.com", "users.drafts")
    bob = workspace("gmail", "bob@example.com", "users.drafts")
    for bound, subject in ((ana, "ana@example.com"), (bob, "bob@example.com")):
        assert isinstance(bound.http, AuthorizedHttp)
        credentials = bound.http.credentials
        assert credentials._subject == subject
        assert tuple(credentials._scopes) == SCOPES["gmail"]
        assert credentials.service_account_email == WORKSPACE["LEADRUN_DELEGATION_SA"]
    assert ana.collection is bob.collection  # built once, shared by every host
    assert ana.http is not bob.http
    drive = workspace("drive", "ana@example.com", "files")
    assert tuple(drive.http.credentials._scopes) == SCOPES["drive"]
    assert drive.http is not ana.http  # another kind: another scope, another client


def test_clients_are_never_shared_between_threads(workspace: ServiceCache) -> None:
    here = workspace("drive", "ana@example.com", "files")
    there: list[Any] = []
    thread = threading.Thread(
        target=lambda: there.append(workspace("drive", "ana@example.com", "files"))
    )
    thread.start()
    thread.join()
    assert there[0].collection is not here.collection
    assert there[0].http is not here.http


def test_a_request_is_executed_with_the_hosts_client(workspace: ServiceCache) -> None:
    sent: list[Any] = []

    class Recording:
        def request(self, uri: str, method: str = "GET", **kwargs: Any) -> Any:
            sent.append((self, uri, method))
            raise ConnectionError("not sent in this test")

    bound = workspace("drive", "ana@example.com", "files")
    recording = Recording()
    object.__setattr__(bound, "http", recording)
    with pytest.raises(ConnectionError):
        bound.call("create", body={"name": "x"}, fields="id")
    assert [(client, method) for client, _, method in sent] == [(recording, "POST")]
    assert sent[0][1].startswith("https://www.googleapis.com/drive/v3/files")


def test_on_the_sandbox_each_host_presents_itself_too() -> None:
    cache = ServiceCache(settings_from(SANDBOX))
    ana = cache("gmail", "ana@example.com", "users.drafts")
    bob = cache("gmail", "bob@example.com", "users.drafts")
    for bound, subject in ((ana, "ana@example.com"), (bob, "bob@example.com")):
        assert isinstance(bound.http, AuthorizedHttp)
        assert isinstance(bound.http.credentials, SandboxUserCredentials)
        headers: dict[str, str] = {}
        bound.http.credentials.before_request(None, "GET", "http://x", headers)
        assert headers["authorization"] == f"Bearer sandbox-user:{subject}"
    assert ana.http is not bob.http
    assert cache("gmail", "ana@example.com", "users.messages").http is ana.http  # per kind, user
    assert cache("drive", "ana@example.com", "files").http is not ana.http
