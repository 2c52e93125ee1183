"""Tests of the Workspace sandbox (docs/api.md, "Workspace sandbox") through googleapiclient."""

PROJECT = "demo-sandbox-tests"
USER = "host@example.com"  # the acting user of the default clients (the host of the tests)
AUTH = {"Authorization": f"Bearer sandbox-user:{USER}"}  # what those clients present
