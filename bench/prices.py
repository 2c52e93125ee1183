"""Google's list prices the bench turns counts into dollars with: the one place they live.

List prices in US dollars, before any free tier or committed-use discount, as published on the
pricing pages named below; `AS_OF` is when they were last taken from those pages, not re-checked
since: check them before quoting a figure (docs/benchmarks.md, "Cost per 1,000 leads").
"""

from __future__ import annotations

from dataclasses import dataclass

AS_OF = "2025-06"
TIB = 2**40


@dataclass(frozen=True)
class Price:
    """One unit price and where it comes from."""

    dollars: float
    per: float  # how many units the price is for
    unit: str
    source: str

    def of(self, units: float) -> float:
        """What `units` units cost."""
        return self.dollars * units / self.per


FIRESTORE_PAGE = "Firestore pricing, https://cloud.google.com/firestore/pricing"
PUBSUB_PAGE = "Pub/Sub pricing, https://cloud.google.com/pubsub/pricing"
RUN_PAGE = "Cloud Run pricing, https://cloud.google.com/run/pricing"

# Firestore (Native mode, standard edition), a regional location such as us-central1 (the Terraform
# puts the database in the functions' region); a multi-region such as nam5 costs twice as much.
FIRESTORE_READ = Price(0.03, 100_000, "document reads", FIRESTORE_PAGE)
FIRESTORE_WRITE = Price(0.09, 100_000, "document writes", FIRESTORE_PAGE)
FIRESTORE_DELETE = Price(0.01, 100_000, "document deletes", FIRESTORE_PAGE)
# Pub/Sub throughput: publishing and each delivery to a subscription are both billed.
PUBSUB_THROUGHPUT = Price(40.0, TIB, "bytes published or delivered", PUBSUB_PAGE)
# Every publish, push or pull request is billed at least this much, whatever its size. The bench
# assumes one message a request (each push delivers one; a publish batch may hold several, so
# this is the upper bound for publishing).
PUBSUB_MIN_BYTES = 1000
# Cloud Run functions (2nd gen) are billed as Cloud Run services, request-based (tier 1 region):
# the instance's vCPU and memory for the time it serves requests, and each request.
RUN_VCPU_SECOND = Price(0.000024, 1, "vCPU-seconds", RUN_PAGE)
RUN_GIB_SECOND = Price(0.0000025, 1, "GiB-seconds", RUN_PAGE)
RUN_REQUESTS = Price(0.40, 1_000_000, "requests", RUN_PAGE)
# What the Terraform gives each function (infra/modules/leadrun/functions.tf): 512 MiB, which
# comes with a third of a vCPU, one request at a time.
FUNCTION_GIB = 0.5
FUNCTION_VCPU = 1 / 3

TABLE: tuple[tuple[str, Price], ...] = (
    ("Firestore read", FIRESTORE_READ),
    ("Firestore write", FIRESTORE_WRITE),
    ("Firestore delete", FIRESTORE_DELETE),
    ("Pub/Sub throughput", PUBSUB_THROUGHPUT),
    ("Cloud Run functions vCPU", RUN_VCPU_SECOND),
    ("Cloud Run functions memory", RUN_GIB_SECOND),
    ("Cloud Run functions requests", RUN_REQUESTS),
)
