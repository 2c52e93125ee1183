"""Counts Firestore RPCs and documents in a function process (bench only, via PYTHONPATH).

The benchmark puts this directory first on the functions' PYTHONPATH and sets
`BENCH_FIRESTORE_COUNT_DIR`. The GAPIC `FirestoreClient` methods every `google.cloud.firestore`
call goes through are wrapped to count, per process: RPCs by method, documents asked for by
`BatchGetDocuments` (a read each, found or not), documents returned by `RunQuery` (and the queries
that returned none, which Firestore bills as one read), and writes sent in `Commit` requests
(deletes apart, as Firestore bills them). For the cost per lead it also counts the messages this
process publishes to Pub/Sub with their bytes (data and attributes), and the requests the function
serves (`invocations`) with their wall time (`request_ms`, what Cloud Run bills an instance for
at one request at a time). A daemon thread writes the totals to `<dir>/<K_SERVICE>-<pid>.json`
every 0.2 s. Nothing here changes what the calls do.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any

_DIR = os.environ.get("BENCH_FIRESTORE_COUNT_DIR", "")
_MIN_BYTES = 1000  # Pub/Sub bills a request at least this (bench/prices.py)
_lock = threading.Lock()
_counts: Counter[str] = Counter()
_state: dict[str, Any] = {"pid": None, "dirty": False}


def _flusher(pid: int) -> None:
    path = os.path.join(_DIR, f"{os.environ.get('K_SERVICE', 'proc')}-{pid}.json")
    while os.getpid() == pid:
        time.sleep(0.2)
        with _lock:
            if not _state["dirty"]:
                continue
            data = json.dumps(dict(_counts))
            _state["dirty"] = False
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)


def _add(**amounts: int) -> None:
    pid = os.getpid()
    with _lock:
        if _state["pid"] != pid:  # first call in this (possibly forked) process
            _counts.clear()
            _state["pid"] = pid
            threading.Thread(target=_flusher, args=(pid,), daemon=True).start()
        _counts.update(amounts)
        _state["dirty"] = True


def _field(request: Any, name: str) -> Any:
    if isinstance(request, dict):
        return request.get(name)
    return getattr(request, name, None)


def _install() -> None:
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

    commit = FirestoreClient.commit
    batch_get = FirestoreClient.batch_get_documents
    run_query = FirestoreClient.run_query
    begin = FirestoreClient.begin_transaction
    rollback = FirestoreClient.rollback

    def counted_commit(self: Any, request: Any = None, **kwargs: Any) -> Any:
        writes = list(_field(request, "writes") or ())
        deletes = sum(1 for write in writes if _field(write, "delete"))
        _add(rpc_commit=1, writes=len(writes) - deletes, deletes=deletes)
        return commit(self, request=request, **kwargs)

    def counted_batch_get(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_batch_get=1, reads=len(_field(request, "documents") or ()))
        return batch_get(self, request=request, **kwargs)

    def counted_run_query(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_run_query=1)
        found = 0
        for response in run_query(self, request=request, **kwargs):
            if "document" in response:  # proto-plus: the field is set
                found += 1
                _add(query_reads=1)
            yield response
        if not found:
            _add(query_empty=1)

    def counted_begin(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_begin_transaction=1)
        return begin(self, request=request, **kwargs)

    def counted_rollback(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_rollback=1)
        return rollback(self, request=request, **kwargs)

    _install_publish()
    _install_requests()
    FirestoreClient.commit = counted_commit  # type: ignore[method-assign]
    FirestoreClient.batch_get_documents = counted_batch_get  # type: ignore[method-assign]
    FirestoreClient.run_query = counted_run_query  # type: ignore[method-assign,assignment]
    FirestoreClient.begin_transaction = counted_begin  # type: ignore[method-assign]
    FirestoreClient.rollback = counted_rollback  # type: ignore[method-assign]


def _install_publish() -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    publish = PublisherClient.publish

    def counted_publish(self: Any, topic: str, data: bytes, *args: Any, **attrs: Any) -> Any:
        size = len(data) + sum(len(str(k)) + len(str(v)) for k, v in attrs.items())
        _add(published=1, published_bytes=size, published_billed_bytes=max(_MIN_BYTES, size))
        return publish(self, topic, data, *args, **attrs)

    PublisherClient.publish = counted_publish  # type: ignore[method-assign]


def _install_requests() -> None:
    try:
        import flask
    except ImportError:  # not a function process
        return
    dispatch = flask.Flask.full_dispatch_request

    def counted_dispatch(self: Any) -> Any:
        started = time.perf_counter()
        try:
            return dispatch(self)
        finally:
            _add(invocations=1, request_ms=round((time.perf_counter() - started) * 1000))

    flask.Flask.full_dispatch_request = counted_dispatch  # type: ignore[method-assign]


if _DIR:
    _install()
