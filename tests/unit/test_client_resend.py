"""The client sends a request once more when the server reset its kept-alive connection before
answering (a real socket server on loopback; nothing else is started)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from leadrun.client import LeadRunClient

ANSWER = b'{"runId": "run-1", "command": "pause", "state": "paused", "affected": 0, "inFlight": []}'


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _answer(conn: socket.socket, status: bytes) -> None:
    conn.sendall(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: "
        + str(len(ANSWER)).encode()
        + b"\r\nConnection: keep-alive\r\n\r\n"
        + ANSWER
    )


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset, as a server dropping an idle connection under a request does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class Server:
    """Answers the first request of its first connection, resets that connection under the
    second, and answers every request of later connections with `status`."""

    def __init__(self, status: bytes = b"200 OK") -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.status = status
        self.requests = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        first = True
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while _read_request(conn):
                    self.requests += 1
                    if first and self.requests == 2:
                        _reset(conn)
                        first = False
                        break
                    _answer(conn, b"200 OK" if self.requests == 1 else self.status)


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server()
    yield found
    found.listener.close()


def client(port: int) -> LeadRunClient:
    return LeadRunClient({"CONTROL_URL": f"http://127.0.0.1:{port}/"}, id_token="token")


def test_a_request_reset_on_a_kept_alive_connection_is_sent_again_on_a_new_one(
    server: Server,
) -> None:
    leadrun = client(server.port)
    assert leadrun.control("run-1", "pause").status_code == 200
    second = leadrun.control("run-1", "pause")
    assert second.status_code == 200
    assert second.json()["state"] == "paused"
    assert server.requests == 3  # the one reset, then the same command on a new connection


def test_an_answer_is_kept_whatever_its_status() -> None:
    server = Server(status=b"500 Internal Server Error")
    try:
        leadrun = client(server.port)
        assert leadrun.control("run-1", "pause").status_code == 200
        assert leadrun.control("run-1", "pause").status_code == 500  # resent after the reset
        assert server.requests == 3  # the 500 was not sent again
    finally:
        server.listener.close()
