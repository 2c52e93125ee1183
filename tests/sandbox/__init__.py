"""Tests of the Workspace sandbox (CONTRACT §7) through the real googleapiclient."""

PROJECT = "demo-sandbox-tests"
