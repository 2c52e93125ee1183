"""Wiring: builds each adapter once per process, lazily (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, lru_cache

from google.cloud import firestore

from common.auth import CertificateCache, FirebaseVerifier
from common.bus import PubSubBus
from common.clock import SYSTEM, Clock
from common.config import Settings, settings
from common.firestore_documents import FirestoreDocuments
from common.google_apis import (
    CalendarFreeBusy,
    DriveFolders,
    GmailMailer,
    GoogleCalendar,
    ServiceCache,
)
from common.handlers.delivery import Deps
from common.handlers.intake import Pace
from common.holds import SlotHolds
from common.lanes import Lanes
from common.ports import Tools
from common.store import Store


@dataclass
class App:
    """The adapters of one process."""

    settings: Settings
    clock: Clock = SYSTEM  # the one wall clock every handler reads, through this wiring

    @cached_property
    def documents(self) -> FirestoreDocuments:
        """Firestore (the emulator when FIRESTORE_EMULATOR_HOST is set)."""
        client = firestore.Client(project=self.settings.project)
        return FirestoreDocuments(client, shards=self.settings.counter_shards)

    @cached_property
    def store(self) -> Store:
        """Runs, leads and receipts."""
        return Store(self.documents, lease_s=self.settings.lease_s)

    @cached_property
    def holds(self) -> SlotHolds:
        """Slot holds against double booking."""
        return SlotHolds(self.documents, self.store.known)

    @cached_property
    def lanes(self) -> Lanes:
        """The hosts' lanes: pacing and Google's gates."""
        return Lanes(self.documents, self.settings.google_limits, self.clock)

    @cached_property
    def pace(self) -> Pace:
        """What intake and the sweeper pace to."""
        return Pace(self.lanes, self.settings.google_limits, self.clock.now)

    @cached_property
    def bus(self) -> PubSubBus:
        """Pub/Sub (the emulator when PUBSUB_EMULATOR_HOST is set)."""
        return PubSubBus(self.settings.project)

    @cached_property
    def verifier(self) -> FirebaseVerifier:
        """Firebase ID token verification with cached certificates."""
        return FirebaseVerifier(self.settings.project, CertificateCache(self.settings.certs_url))

    @cached_property
    def services(self) -> ServiceCache:
        """googleapiclient collections per thread; HTTP clients per thread and impersonated user."""
        return ServiceCache(self.settings)

    @cached_property
    def live_tools(self) -> Tools:
        """Everything a live run may use of Google."""
        calendar = GoogleCalendar(self.services)
        settle = timedelta(seconds=self.settings.search_settle_s)
        mailer = GmailMailer(self.services, settle)
        return Tools(calendar, calendar, mailer, DriveFolders(self.services))

    @cached_property
    def dry_tools(self) -> Tools:
        """A dry run gets a calendar that can only read busy times, and no writer at all."""
        return Tools(CalendarFreeBusy(self.services))

    def tools_for(self, dry_run: bool) -> Tools:
        """What a run in this mode may use of Google."""
        return self.dry_tools if dry_run else self.live_tools

    @cached_property
    def deps(self) -> Deps:
        """What every subscriber's delivery handling needs."""
        return Deps(
            self.store,
            self.holds,
            self.lanes,
            self.bus,
            self.tools_for,
            self.clock.now,
            self.clock.sleep,
            timedelta(seconds=self.settings.max_message_age_s),
        )


@lru_cache(maxsize=1)
def app() -> App:
    """This process's adapters."""
    return App(settings())
