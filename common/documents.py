"""The one way the project changes its stored state: read, decide, write guarded by what was read.

Every change of a receipt, a lead, a run or a slot hold goes through `change`: read the documents
it depends on, let a pure `decide` function say what to write, and commit those writes atomically,
each guarded by the version (update time) it was read at, or by "must not exist". If any of them
changed in between, the commit fails as a whole and `change` reads again and decides again.
Counters move in the same commit (`Commit.counts`), so a transition is counted exactly once.

What a process's own last change of some documents read and left (`Known`) may stand in for the
read of its next change of them (a delivery's checkpoints and finish, after its claim): the
commit's guards prove it still holds, and on anything but a commit, `change` reads after all
(decision 0012).

No transactions: a transaction's read locks outlive a crashed instance on the emulator, and a
guarded write needs no lock at all (decisions 0001 and 0007). `Documents` is the port; the
Firestore adapter is `common.firestore_documents`, the in-memory fake is in `tests/fakes.py`, and
one contract test runs against both.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from common.errors import Transient

ROUNDS = 12

T = TypeVar("T")

SERVER_TIME = object()  # a field value: the commit's own time (Firestore's SERVER_TIMESTAMP)


class Changed(Exception):
    """A guarded write met a document that changed since it was read."""


class Contended(Transient):
    """Documents kept changing under a change for every round: try again later."""


@dataclass(frozen=True)
class Stored:
    """A document as read: its fields and the version to guard a write with."""

    data: dict[str, Any]
    version: Any


@dataclass(frozen=True)
class Write:
    """One write of a commit.

    `guard`: the version the document was read at (write only if unchanged), `ABSENT` (must not
    exist), or None (unguarded: only for content-addressed documents and last-write-wins
    stages). `data` None deletes; `merge` keeps fields not named (else fields given replace, and
    an update of dotted keys such as `checkpoint.draftId` sets nested fields).
    """

    path: str
    data: Mapping[str, Any] | None
    guard: Any = None
    merge: bool = False


ABSENT = object()


@dataclass
class Commit:
    """Writes that must happen together, and the counter changes they carry."""

    writes: list[Write] = field(default_factory=list)
    run_id: str | None = None  # whose counters `counts` moves
    counts: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.writes) + (1 if any(self.counts.values()) else 0)


@dataclass
class Decision(Generic[T]):
    """What `decide` answers: the result, and the commit to make (None: nothing to write)."""

    result: T
    commit: Commit | None = None


class Known:
    """Documents as this process's own last change of them read or left them (at most `size`,
    the least recently seen forgotten first).

    Only a trial: another writer may have changed them since. `change` decides on them instead of
    reading, and trusts the decision only through a commit whose guards prove that what it writes
    was unchanged; any other outcome is decided again on a read.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._docs: OrderedDict[str, Stored] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, paths: Sequence[str]) -> dict[str, Stored | None] | None:
        """All of `paths` as last left here, or None unless every one of them is known."""
        with self._lock:
            if not all(path in self._docs for path in paths):
                return None
            return {path: _copy(self._docs[path]) for path in paths}

    def keep(
        self, found: Mapping[str, Stored | None], commit: Commit, versions: Mapping[str, Any]
    ) -> None:
        """Remember `found` (as read or recalled) and what `commit` left of it (`versions`: as
        the commit gave them). A written document is kept only where the result is plain to see
        (a guarded create, or a guarded update of whole fields), without the fields set to the
        server's time (only Firestore knows it); any other write forgets it."""
        with self._lock:
            for path, doc in found.items():
                self._docs.pop(path, None)  # (re)inserted last: the most recently seen
                if doc is not None:
                    self._docs[path] = _copy(doc)
            for write in commit.writes:
                self._docs.pop(write.path, None)
                version = versions.get(write.path)
                if write.guard is None or write.data is None or version is None:
                    continue
                if write.merge or any("." in key for key in write.data):
                    continue
                before = found.get(write.path)
                values = {k: v for k, v in write.data.items() if v is not SERVER_TIME}
                base = before.data if before is not None and write.guard is not ABSENT else {}
                self._docs[write.path] = _copy(Stored({**base, **values}, version))
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)


def _copy(doc: Stored) -> Stored:
    return Stored(copy.deepcopy(doc.data), doc.version)


class Part(Protocol):
    """Writes that ride in another change's commit: the documents they depend on, and what
    they write given those documents as read (guarded like the rest of the commit)."""

    @property
    def paths(self) -> Sequence[str]: ...

    def writes(self, found: Mapping[str, Stored | None]) -> list[Write]: ...


class Documents(Protocol):
    """Stored documents by path (the port every store is built on)."""

    def read(self, paths: Sequence[str]) -> dict[str, Stored | None]:
        """The documents at `paths` (None where there is none)."""
        ...

    def commit(self, commits: Sequence[Commit]) -> dict[str, Any]:
        """Commit all of `commits` atomically, in one round trip; `Changed` (and nothing
        written) if a guard fails. Returns the version each document written (and not deleted)
        has now."""
        ...

    def children(self, collection: str) -> list[tuple[str, Stored]]:
        """Every document of a collection: (id, document)."""
        ...

    def page(
        self,
        collection: str,
        equal: Mapping[tuple[str, ...], Any],
        after: str | None,
        limit: int,
    ) -> list[tuple[str, Stored]]:
        """At most `limit` documents of a collection in document-id order, after the id `after`
        (None: from the first), whose fields (each named by its path segments, so any map key
        may be one) equal the values of `equal`: (id, document)."""
        ...

    def latest(self, collection: str, field_name: str) -> Any:
        """The greatest non-null text value of `field_name` among a collection's documents."""
        ...

    def counters(self, run_id: str) -> Counter[str]:
        """A run's counters, summed."""
        ...

    def stale_receipts(
        self, older_than: datetime, limit: int
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Receipts of any run with work left and no time to wait for (`watched`) untouched
        since `older_than`:
        (run, lead, action, data)."""
        ...

    def due_receipts(
        self, now_stamp: str, after_stamp: str | None = None
    ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Receipts of any run with work left whose `waiting.until` (RFC 3339, UTC) is at or before
        `now_stamp` (and after `after_stamp`), soonest first, read as they are iterated:
        (run, lead, action, data)."""
        ...

    def next_wait(self, after_stamp: str | None = None) -> str | None:
        """The soonest `waiting.until` of a receipt with work left (after `after_stamp`)."""
        ...


def guard_of(found: Stored | None) -> Any:
    """The guard of a write to a document read as `found`."""
    return ABSENT if found is None else found.version


def change(
    docs: Documents,
    paths: Sequence[str],
    decide: Callable[[dict[str, Stored | None]], Decision[T]],
    rounds: int = ROUNDS,
    known: Known | None = None,
    recall: bool = True,
) -> T:
    """Read `paths`, decide, commit guarded by the read; again while another writer got in first.

    With `known` (and `recall`), the first round decides on what this process's last change of
    `paths` read and left, if it knows all of them, instead of reading. The commit's guards prove
    every document it writes unchanged since; a document the decision reads but does not write may
    be older than a read would give. So pass `known` only where a decision does not depend on a
    document it leaves unwritten (a receipt's lead matters to its transition only when written),
    or `recall=False` to read and only remember. Unless the decision commits, the round is made
    again on a read."""
    trial = known.recall(paths) if known is not None and recall else None
    for _ in range(rounds):
        found = trial if trial is not None else docs.read(paths)
        try:
            decision = decide(found)
        except Exception:
            if trial is None:
                raise
            trial = None  # decided on what may be stale: decide on a read instead
            continue
        commit = decision.commit
        if commit is None or len(commit) == 0:
            if trial is None:
                return decision.result
            trial = None  # nothing written, so nothing proved the trial: read
            continue
        trial = None
        try:
            versions = docs.commit([commit])
        except Changed:
            continue
        if known is not None:
            known.keep(found, commit, versions)
        return decision.result
    raise Contended(f"{', '.join(paths)}: changing too often")


def guarded(path: str, found: Stored | None, data: Mapping[str, Any] | None) -> Write:
    """A write of `data` to `path`, guarded by how it was read (`found`)."""
    return Write(path, data, guard_of(found))


def batches(commits: Iterable[Commit], limit: int) -> list[list[Commit]]:
    """Commits grouped into round trips of at most `limit` writes (a commit is never split)."""
    out: list[list[Commit]] = []
    size = limit
    for commit in commits:
        if size + len(commit) > limit:
            out.append([])
            size = 0
        out[-1].append(commit)
        size += len(commit)
    return out
