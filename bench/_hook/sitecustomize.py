"""Counts Firestore RPCs and documents in a function process (bench only, via PYTHONPATH).

The benchmark puts this directory first on the functions' PYTHONPATH and sets
`BENCH_FIRESTORE_COUNT_DIR`. The GAPIC `FirestoreClient` methods every `google.cloud.firestore`
call goes through are wrapped to count, per process: RPCs by method, documents asked for by
`BatchGetDocuments` (a read each, found or not), documents returned by `RunQuery`, and writes
sent in `Commit` requests. A daemon thread writes the totals to
`<dir>/<K_SERVICE>-<pid>.json` every 0.2 s. Nothing here changes what the calls do.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any

_DIR = os.environ.get("BENCH_FIRESTORE_COUNT_DIR", "")
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
        _add(rpc_commit=1, writes=len(_field(request, "writes") or ()))
        return commit(self, request=request, **kwargs)

    def counted_batch_get(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_batch_get=1, reads=len(_field(request, "documents") or ()))
        return batch_get(self, request=request, **kwargs)

    def counted_run_query(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_run_query=1)
        for response in run_query(self, request=request, **kwargs):
            if "document" in response:  # proto-plus: the field is set
                _add(query_reads=1)
            yield response

    def counted_begin(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_begin_transaction=1)
        return begin(self, request=request, **kwargs)

    def counted_rollback(self: Any, request: Any = None, **kwargs: Any) -> Any:
        _add(rpc_rollback=1)
        return rollback(self, request=request, **kwargs)

    FirestoreClient.commit = counted_commit  # type: ignore[method-assign]
    FirestoreClient.batch_get_documents = counted_batch_get  # type: ignore[method-assign]
    FirestoreClient.run_query = counted_run_query  # type: ignore[method-assign,assignment]
    FirestoreClient.begin_transaction = counted_begin  # type: ignore[method-assign]
    FirestoreClient.rollback = counted_rollback  # type: ignore[method-assign]


if _DIR:
    _install()
