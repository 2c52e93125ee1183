"""Wiring: builds each adapter once per process, lazily (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from google.cloud import firestore

from common.auth import CertificateCache, FirebaseVerifier
from common.bus import PubSubBus
from common.config import Settings, settings
from common.google_apis import (
    CalendarFreeBusy,
    DriveFolders,
    GmailMailer,
    GoogleCalendar,
    ServiceCache,
)
from common.store import FirestoreStore


@dataclass
class App:
    """The adapters of one process."""

    settings: Settings

    @cached_property
    def store(self) -> FirestoreStore:
        """Firestore (the emulator when FIRESTORE_EMULATOR_HOST is set)."""
        client = firestore.Client(project=self.settings.project)
        return FirestoreStore(
            client, shards=self.settings.counter_shards, lease_s=self.settings.lease_s
        )

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

    def calendar_for(self, dry_run: bool) -> CalendarFreeBusy:
        """A dry run gets a calendar that can only read busy times."""
        return CalendarFreeBusy(self.services) if dry_run else GoogleCalendar(self.services)

    def gmail_for(self, dry_run: bool) -> GmailMailer | None:
        """A dry run gets no mailbox at all."""
        return None if dry_run else GmailMailer(self.services)

    def drive_for(self, dry_run: bool) -> DriveFolders | None:
        """A dry run gets no Drive at all."""
        return None if dry_run else DriveFolders(self.services)


@lru_cache(maxsize=1)
def app() -> App:
    """This process's adapters."""
    return App(settings())
