"""Use cases: one handler per entry point, each taking its adapters as arguments."""
