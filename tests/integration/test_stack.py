"""The local stack (leadrun/stack.py) against stand-in functions and a stand-in sandbox.

The real emulators run (Google Cloud CLI + Java); the functions and the Workspace sandbox are tiny
stand-ins written to tmp_path, so these tests check the stack itself: processes, ports, push
delivery as CloudEvents, retry and dead-letter policy, restart, reset and clean shutdown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from common import topology
from leadrun import stack as stackmod
from leadrun import stack_config
from leadrun.client import read_env_file
from leadrun.processes import listening_inodes, owned_processes, proc_stat
from leadrun.pubsub import pubsub_clients, subscription_requests
from leadrun.running_stack import Stack
from leadrun.stack import start_stack
from leadrun.stack_config import StackError

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_emulators = pytest.mark.skipif(
    not (shutil.which("gcloud") and shutil.which("java")),
    reason="needs the Google Cloud CLI emulators and Java",
)

# One recorder shared by every cloudevent stand-in: appends what it received to
# $STANDIN_OUT/<target>.jsonl, then raises if the target is listed in $STANDIN_FAIL, or takes a
# second if it is listed in $STANDIN_SLOW.
_RECORDER = """
import base64, json, os

import functions_framework


def _record(target, event):
    message = event.data["message"]
    line = {
        "target": target,
        "pid": os.getpid(),
        "time": __import__("time").time(),
        "id": event["id"],
        "type": event["type"],
        "source": event["source"],
        "messageId": message.get("messageId"),
        "publishTime": message.get("publishTime"),
        "attributes": message.get("attributes") or {},
        "data": base64.b64decode(message.get("data") or "").decode(),
    }
    path = os.path.join(os.environ["STANDIN_OUT"], target + ".jsonl")
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\\n")
    if target in os.environ.get("STANDIN_FAIL", "").split(","):
        raise RuntimeError("stand-in failure for " + target)
    if target in os.environ.get("STANDIN_SLOW", "").split(","):
        __import__("time").sleep(1.0)
"""

_CLOUDEVENT = """

@functions_framework.cloud_event
def {target}(event):
    _record("{target}", event)
"""

_HTTP = """

@functions_framework.http
def {target}(request):
    import common.topology

    keys = [
        "GOOGLE_CLOUD_PROJECT", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST",
        "WORKSPACE_SANDBOX_URL", "LEADRUN_GOOGLE_MODE", "LEADRUN_FIREBASE_CERTS_URL",
        "LEADRUN_ALLOWED_ORIGINS", "STANDIN_OUT", "K_SERVICE",
    ]
    env = {{key: os.environ.get(key) for key in keys}}
    return {{"target": "{target}", "env": env, "topics": list(common.topology.TOPICS)}}
"""

_SANDBOX = """
import argparse, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--project")
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_sandbox/health":
            self._answer({"ok": True, "project": args.project})
        elif self.path == "/_sandbox/certs":
            self._answer({})
        else:
            self.send_error(404)

    def do_POST(self):
        if self.path == "/_sandbox/reset":
            self._answer({"reset": True})
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
"""


def write_standins(root: Path) -> tuple[Path, list[str]]:
    """Stand-in deploy units for every function of the topology, and a sandbox command."""
    functions_dir = root / "functions"
    units: dict[str, list[topology.FunctionSpec]] = {}
    for spec in topology.FUNCTIONS:
        units.setdefault(spec.source_dir, []).append(spec)
    for unit, specs in units.items():
        code = _RECORDER
        for spec in specs:
            template = _CLOUDEVENT if spec.signature == "cloudevent" else _HTTP
            code += template.format(target=spec.target)
        (functions_dir / unit).mkdir(parents=True)
        (functions_dir / unit / "main.py").write_text(code)
    sandbox = root / "standin_sandbox.py"
    sandbox.write_text(textwrap.dedent(_SANDBOX))
    cmd = [sys.executable, str(sandbox), "--host", "127.0.0.1", "--port", "{port}"]
    return functions_dir, [*cmd, "--project", "{project}"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def records(out: Path, target: str) -> list[dict[str, Any]]:
    """What the stand-in `target` recorded so far."""
    path = out / f"{target}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def publish(stack: Stack, topic: str, data: dict[str, Any], attributes: dict[str, str]) -> str:
    """Publish one message on the stack's emulator; its message id."""
    with pubsub_clients(stack.env) as (bus, _):
        future = bus.publisher.publish(
            f"projects/{stack.project}/topics/{topic}", json.dumps(data).encode(), **attributes
        )
        return str(future.result(timeout=30))


def alive(pid: int) -> bool:
    """Whether `pid` is a live, non-zombie process."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    root = tmp_path_factory.mktemp("standins")
    functions_dir, sandbox_cmd = write_standins(root)
    out = root / "out"
    out.mkdir()
    return functions_dir, sandbox_cmd, out


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, standins: tuple[Path, list[str], Path]
) -> Iterator[Stack]:
    functions_dir, sandbox_cmd, out = standins
    started = time.monotonic()
    running = start_stack(
        tmp_path_factory.mktemp("state"),
        ports="auto",
        project="leadrun-stack-test",
        extra_env={"STANDIN_OUT": str(out), "STANDIN_FAIL": "drive", "STANDIN_SLOW": "notify"},
        functions_dir=functions_dir,
        sandbox_cmd=sandbox_cmd,
        retry_min_s=0,
        retry_max_s=1,
    )
    print(f"\nstack started in {time.monotonic() - started:.1f}s")
    try:
        yield running
    finally:
        running.stop()


def new_ids() -> dict[str, str]:
    return {"runId": f"run-{uuid.uuid4().hex[:8]}", "leadDocId": f"lead-{uuid.uuid4().hex[:8]}"}


# ------------------------------------------------------------------------------------------------
# With emulators.


@pytest.mark.integration
@needs_emulators
def test_stack_env_and_pid_file(stack: Stack) -> None:
    env = read_env_file(stack.state_dir / "stack.env")
    for key in (
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_EMULATOR_HOST",
        "FIRESTORE_EMULATOR_HOST",
        "WORKSPACE_SANDBOX_URL",
        "SCHEDULE_URL",
        "DIAGNOSTICS_URL",
        "LEADRUN_FIREBASE_CERTS_URL",
    ):
        assert env.get(key), key
    assert env == stack.env
    assert env["GOOGLE_CLOUD_PROJECT"] == "leadrun-stack-test"
    assert env["PUBSUB_EMULATOR_HOST"] == f"127.0.0.1:{stack.port('pubsub')}"
    assert env["FIRESTORE_EMULATOR_HOST"] == f"127.0.0.1:{stack.port('firestore')}"
    assert env["SCHEDULE_URL"] == f"http://127.0.0.1:{stack.port('schedule')}/"
    assert env["DIAGNOSTICS_URL"] == stack.url("diagnostics")
    assert env["LEADRUN_FIREBASE_CERTS_URL"] == env["WORKSPACE_SANDBOX_URL"] + "/_sandbox/certs"

    pids = json.loads((stack.state_dir / "stack.pids.json").read_text())
    assert set(pids) == set(stack_config.COMPONENTS)
    for name, entry in pids.items():
        assert entry["pid"] == entry["pgid"] == stack.processes[name].pid
        assert entry["port"] == stack.port(name)
        assert Path(entry["log"]).exists()
    assert len({entry["port"] for entry in pids.values()}) == len(pids)
    assert stack.healthy()


@pytest.mark.integration
@needs_emulators
def test_http_function_gets_the_stack_environment(stack: Stack) -> None:
    body = requests.get(stack.env["SCHEDULE_URL"], timeout=10).json()
    assert body["target"] == "schedule"
    assert body["topics"] == list(topology.TOPICS)  # PYTHONPATH reaches common/
    env = body["env"]
    assert env["GOOGLE_CLOUD_PROJECT"] == stack.project
    assert env["PUBSUB_EMULATOR_HOST"] == stack.pubsub_host
    assert env["FIRESTORE_EMULATOR_HOST"] == stack.firestore_host
    assert env["WORKSPACE_SANDBOX_URL"] == stack.sandbox_url
    assert env["LEADRUN_GOOGLE_MODE"] == "sandbox"
    assert env["LEADRUN_FIREBASE_CERTS_URL"] == stack.sandbox_url + "/_sandbox/certs"
    assert env["LEADRUN_ALLOWED_ORIGINS"]
    assert env["STANDIN_OUT"]  # extra_env
    assert env["K_SERVICE"] == "schedule"


@pytest.mark.integration
@needs_emulators
def test_subscriptions_carry_the_production_policy(stack: Stack) -> None:
    project = stack.project
    with pubsub_clients(stack.env) as (bus, subscriber):
        listed = bus.publisher.list_topics(request={"project": f"projects/{project}"})
        topics = {t.name for t in listed}
        assert topics == {f"projects/{project}/topics/{t}" for t in topology.TOPICS}
        for spec in topology.FUNCTIONS:
            if spec.signature != "cloudevent":
                continue
            sub = subscriber.get_subscription(
                request={"subscription": f"projects/{project}/subscriptions/{spec.subscription}"}
            )
            assert sub.topic == f"projects/{project}/topics/{spec.topic}"
            assert sub.push_config.push_endpoint == (
                f"http://127.0.0.1:{stack.port(spec.name)}/projects/{project}/topics/{spec.topic}"
            )
            assert sub.ack_deadline_seconds == spec.ack_deadline_s
            assert sub.retry_policy.minimum_backoff.total_seconds() == 0
            assert sub.retry_policy.maximum_backoff.total_seconds() == 1
            assert sub.retain_acked_messages
            assert sub.message_retention_duration.total_seconds() == topology.MESSAGE_RETENTION_S
            if spec.dead_letter:
                assert sub.dead_letter_policy.dead_letter_topic == (
                    f"projects/{project}/topics/{topology.TOPIC_DEAD_LETTER}"
                )
                assert sub.dead_letter_policy.max_delivery_attempts == (
                    topology.MAX_DELIVERY_ATTEMPTS
                )
            else:
                assert not sub.dead_letter_policy.dead_letter_topic
        audit = subscriber.get_subscription(
            request={
                "subscription": f"projects/{project}/subscriptions/"
                f"{stack_config.DEAD_LETTER_AUDIT_SUBSCRIPTION}"
            }
        )
        assert audit.topic == f"projects/{project}/topics/{topology.TOPIC_DEAD_LETTER}"
        assert not audit.push_config.push_endpoint
        assert audit.retain_acked_messages


@pytest.mark.integration
@needs_emulators
def test_push_delivers_a_cloudevent(stack: Stack, standins: tuple[Path, list[str], Path]) -> None:
    out = standins[2]
    ids = new_ids()
    attributes = {**ids, "action": "calendar"}
    data = {**attributes}
    message_id = publish(stack, topology.TOPIC_CALENDAR, data, attributes)

    def received() -> list[dict[str, Any]]:
        return [
            r for r in records(out, "book") if r["attributes"].get("leadDocId") == ids["leadDocId"]
        ]

    got = wait_for(received, 30, "the book stand-in to receive the message")
    event = got[0]
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"].endswith(f"projects/{stack.project}/topics/{topology.TOPIC_CALENDAR}")
    assert event["messageId"] == message_id
    assert event["attributes"] == attributes
    assert json.loads(event["data"]) == data
    assert event["pid"] in owned_processes(stack.processes["book"])
    time.sleep(1.5)  # a success is acknowledged: no redelivery
    assert len(received()) == 1


@pytest.mark.integration
@needs_emulators
def test_push_keeps_many_deliveries_of_one_function_in_flight(
    stack: Stack, standins: tuple[Path, list[str], Path]
) -> None:
    """The emulator alone pushes two messages of a subscription at a time; production push and
    Cloud Run take many. Eight deliveries that each take a second must overlap beyond two."""
    out = standins[2]
    run = f"run-{uuid.uuid4().hex[:8]}"
    with pubsub_clients(stack.env) as (bus, _):
        topic = f"projects/{stack.project}/topics/{topology.TOPIC_NOTIFY}"
        futures = [
            bus.publisher.publish(topic, b"{}", runId=run, leadDocId=f"lead-{i}", action="email")
            for i in range(8)
        ]
        for future in futures:
            future.result(timeout=30)

    def arrived() -> list[float]:
        got = [r["time"] for r in records(out, "notify") if r["attributes"].get("runId") == run]
        return sorted(got) if len(got) >= 8 else []

    starts = wait_for(arrived, 60, "eight deliveries to the notify stand-in")
    # Two loops that each wait a second for their answer start at most two deliveries a second.
    most_in_a_second = max(sum(1 for t in starts if s <= t < s + 0.9) for s in starts)
    assert most_in_a_second > 2, starts

    def pusher() -> dict[str, Any]:
        status: dict[str, Any] = requests.get(stack.url(stack_config.PUSHER), timeout=5).json()
        return status if status["pushed"] >= 1 else {}

    # A push counts once its delivery has answered (a second later) and it is acknowledged.
    assert wait_for(pusher, 30, "the pusher to count its pushes")["lanes"] > 0


@pytest.mark.integration
@needs_emulators
def test_failing_message_is_redelivered_then_dead_lettered(
    stack: Stack, standins: tuple[Path, list[str], Path]
) -> None:
    out = standins[2]
    ids = new_ids()
    attributes = {**ids, "action": "drive"}
    started = time.monotonic()
    message_id = publish(stack, topology.TOPIC_DRIVE, attributes, attributes)

    def dead_lettered() -> list[dict[str, Any]]:
        rows = records(out, "dead_letter")
        return [r for r in rows if r["attributes"].get("leadDocId") == ids["leadDocId"]]

    dead = wait_for(dead_lettered, 60, "the message to reach the dead-letter function")[0]
    elapsed = time.monotonic() - started
    attempts = [
        r for r in records(out, "drive") if r["attributes"].get("leadDocId") == ids["leadDocId"]
    ]
    print(f"\ndead-lettered after {len(attempts)} deliveries in {elapsed:.1f}s")
    assert len(attempts) == topology.MAX_DELIVERY_ATTEMPTS
    assert {r["messageId"] for r in attempts} == {message_id}
    assert dead["source"].endswith(f"topics/{topology.TOPIC_DEAD_LETTER}")
    assert {k: dead["attributes"][k] for k in attributes} == attributes
    assert json.loads(dead["data"]) == attributes

    # The audit pull subscription keeps a copy for operators (`leadrun redrive`).
    audit = f"projects/{stack.project}/subscriptions/{stack_config.DEAD_LETTER_AUDIT_SUBSCRIPTION}"
    with pubsub_clients(stack.env) as (_, subscriber):
        found = None
        deadline = time.monotonic() + 20
        while found is None and time.monotonic() < deadline:
            response = subscriber.pull(
                request={"subscription": audit, "max_messages": 100}, timeout=5
            )
            for received in response.received_messages:
                subscriber.acknowledge(
                    request={"subscription": audit, "ack_ids": [received.ack_id]}
                )
                if received.message.attributes.get("leadDocId") == ids["leadDocId"]:
                    found = received.message
        assert found is not None, "dead letter missing from the audit subscription"
        assert json.loads(found.data) == attributes


@pytest.mark.integration
@needs_emulators
def test_restart_function_keeps_the_port(
    stack: Stack, standins: tuple[Path, list[str], Path]
) -> None:
    out = standins[2]
    before = stack.processes["book"]
    old_pids = owned_processes(before)
    assert old_pids
    stack.restart_function("book")
    after = stack.processes["book"]
    assert after.port == before.port and after.pid != before.pid
    assert not any(alive(pid) for pid in old_pids)
    pid_file = json.loads((stack.state_dir / "stack.pids.json").read_text())
    assert pid_file["book"]["pid"] == after.pid

    ids = new_ids()
    publish(stack, topology.TOPIC_CALENDAR, ids, {**ids, "action": "calendar"})
    got = wait_for(
        lambda: [r for r in records(out, "book") if r["attributes"].get("runId") == ids["runId"]],
        30,
        "delivery to the restarted function",
    )
    assert owned_processes(after)
    assert got[0]["pid"] in owned_processes(after)


@pytest.mark.integration
@needs_emulators
def test_reset_emulators_empties_firestore_and_keeps_the_topology(stack: Stack) -> None:
    base = (
        f"http://{stack.firestore_host}/v1/projects/{stack.project}/databases/(default)/documents"
    )
    headers = {"Authorization": "Bearer owner"}
    created = requests.post(
        f"{base}/probe?documentId=doc1",
        json={"fields": {"n": {"integerValue": "1"}}},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    assert requests.get(f"{base}/probe/doc1", headers=headers, timeout=10).status_code == 200

    stackmod.reset_emulators(stack)

    assert requests.get(f"{base}/probe/doc1", headers=headers, timeout=10).status_code == 404
    with pubsub_clients(stack.env) as (_, subscriber):
        for spec in topology.FUNCTIONS:
            if spec.subscription:
                subscriber.get_subscription(
                    request={
                        "subscription": f"projects/{stack.project}/subscriptions/"
                        f"{spec.subscription}"
                    }
                )


@pytest.mark.integration
@needs_emulators
def test_cli_up_is_idempotent_and_down_leaves_no_process(
    tmp_path: Path, standins: tuple[Path, list[str], Path]
) -> None:
    functions_dir, sandbox_cmd, out = standins
    state_dir = tmp_path / "state"
    env = {
        **os.environ,
        "LEADRUN_SANDBOX_CMD": " ".join(sandbox_cmd),
        "LEADRUN_PROJECT": "leadrun-cli-test",
        "STANDIN_OUT": str(out),
    }
    base = [sys.executable, "-m", "leadrun.stack"]
    flags = [
        "--state-dir",
        str(state_dir),
        "--ports",
        "auto",
        "--functions-dir",
        str(functions_dir),
    ]

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, command, *flags],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    started = time.monotonic()
    up = run("up")
    print(f"\n`up` took {time.monotonic() - started:.1f}s\n{up.stdout}")
    try:
        assert up.returncode == 0, up.stderr
        stack = Stack.load(state_dir)
        assert stack is not None
        env_file = read_env_file(state_dir / "stack.env")
        assert env_file["GOOGLE_CLOUD_PROJECT"] == "leadrun-cli-test"
        assert requests.get(env_file["SCHEDULE_URL"], timeout=10).status_code == 200

        pids = stack.pids()
        commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids}
        assert sum(b"java" in cmd for cmd in commands.values()) >= 2  # both emulators' JVMs
        assert all(proc_stat(pid)[1] != os.getpgrp() for pid in pids)

        again = run("up")
        assert again.returncode == 0, again.stderr
        assert "already up" in again.stdout
        assert Stack.load(state_dir).processes == stack.processes  # nothing restarted

        status = run("status")
        assert status.returncode == 0
        assert status.stdout.count(" up ") == len(stack_config.COMPONENTS)
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every stack process to exit")
    assert not (state_dir / "stack.env").exists()
    assert not (state_dir / "stack.pids.json").exists()
    assert run("down").returncode == 0
    assert run("status").returncode == 1


# ------------------------------------------------------------------------------------------------
# Without emulators.


def test_missing_prerequisites_name_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert stackmod.main(["up", "--state-dir", str(tmp_path / "state")]) == 1
    err = capsys.readouterr().err
    assert "Google Cloud CLI" in err and "emulator" in err
    assert "Java 17" in err
    assert not (tmp_path / "state" / "stack.env").exists()


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        stat = proc_stat(stranger.pid)
        assert stat is not None
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        entry = {
            "pid": stranger.pid,
            "pgid": stranger.pid,
            "port": 1,
            "log": str(tmp_path / "x.log"),
            "start_time": stat[2] - 1,  # a recycled pid: same number, other process
            "cmd": ["sleep"],
            "cwd": str(tmp_path),
            "env": {},
        }
        (state_dir / "stack.pids.json").write_text(json.dumps({"book": entry}))
        assert stackmod.main(["down", "--state-dir", str(state_dir)]) == 0
        assert stranger.poll() is None, "down killed a process it did not start"
        assert not (state_dir / "stack.pids.json").exists()

        # With the right start time it is ours, and down stops it.
        (state_dir / "stack.pids.json").write_text(
            json.dumps({"book": {**entry, "start_time": stat[2]}})
        )
        assert stackmod.main(["down", "--state-dir", str(state_dir)]) == 0
        assert stranger.wait(timeout=10) == -signal.SIGTERM
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()


def test_retry_backoff_and_ports_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADRUN_RETRY_MIN_S", raising=False)
    monkeypatch.delenv("LEADRUN_RETRY_MAX_S", raising=False)
    assert stack_config.retry_backoff() == (1, 10)
    monkeypatch.setenv("LEADRUN_RETRY_MIN_S", "0")
    monkeypatch.setenv("LEADRUN_RETRY_MAX_S", "2.5")
    assert stack_config.retry_backoff() == (0, 2.5)
    assert stack_config.retry_backoff(3, 4) == (3, 4)
    with pytest.raises(StackError):
        stack_config.retry_backoff(5, 1)

    monkeypatch.setenv("LEADRUN_PORT_BASE", "9100")
    ports = stack_config.resolve_ports(None)
    assert ports["pubsub"] == 9100 and ports["firestore"] == 9101 and ports["sandbox"] == 9102
    assert ports["schedule"] == 9110 and set(ports) == set(stack_config.COMPONENTS)
    assert stack_config.resolve_ports({"pubsub": 1234})["pubsub"] == 1234
    auto = stack_config.resolve_ports("auto")
    assert len(set(auto.values())) == len(stack_config.COMPONENTS)
    with pytest.raises(StackError):
        stack_config.resolve_ports({"nope": 1})

    subs = subscription_requests("p", {s.name: 1 for s in topology.FUNCTIONS}, 0, 1)
    names = {s["name"].rsplit("/", 1)[1] for s in subs}
    expected = {s.subscription for s in topology.FUNCTIONS if s.subscription}
    assert names == {*expected, stack_config.DEAD_LETTER_AUDIT_SUBSCRIPTION}


class _Squatter:
    """Another program's HTTP server on a port the stack wanted (it answers HTTP, too)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler
        )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _listening(port: int) -> bool:
    return bool(listening_inodes(port))


@pytest.mark.integration
@needs_emulators
def test_a_port_held_by_another_process_is_never_taken_for_ours(
    tmp_path: Path, standins: tuple[Path, list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    functions_dir, sandbox_cmd, out = standins
    squatter = _Squatter()
    try:
        # Fixed ports: a clear error naming the port, and nothing left running.
        ports = stack_config.resolve_ports("auto")
        ports["schedule"] = squatter.port
        with pytest.raises(StackError, match=f"port {squatter.port} is held by another process"):
            start_stack(
                tmp_path / "fixed",
                ports=ports,
                functions_dir=functions_dir,
                sandbox_cmd=sandbox_cmd,
                extra_env={"STANDIN_OUT": str(out)},
            )
        for name in ("pubsub", "firestore", "sandbox", "book"):
            wait_for(lambda n=name: not _listening(ports[n]), 10, f"{name} to be stopped")
        assert not (tmp_path / "fixed" / "stack.pids.json").exists()

        # ports="auto": the stack notices and moves the component to another free port.
        real_free_ports = stack_config.free_ports
        calls = {"n": 0}

        def racy_free_ports(count: int) -> list[int]:
            calls["n"] += 1
            picked = real_free_ports(count)
            if calls["n"] == 1:  # someone grabs schedule's port between our pick and its bind
                picked[stack_config.COMPONENTS.index("schedule")] = squatter.port
            return picked

        monkeypatch.setattr(stack_config, "free_ports", racy_free_ports)
        running = start_stack(
            tmp_path / "auto",
            ports="auto",
            functions_dir=functions_dir,
            sandbox_cmd=sandbox_cmd,
            extra_env={"STANDIN_OUT": str(out)},
        )
        try:
            assert running.port("schedule") != squatter.port
            assert running.env["SCHEDULE_URL"] == running.url("schedule")
            body = requests.get(running.env["SCHEDULE_URL"], timeout=10).json()
            assert body["target"] == "schedule"
        finally:
            running.stop()
    finally:
        squatter.close()
