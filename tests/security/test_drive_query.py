"""Drive query literals: a quote or a backslash in a value can never end the string early."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.google_apis import drive_quote
from sandbox.drive_api import tokenize


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("o'brien", "'o\\'brien'"),
        ("back\\slash", "'back\\\\slash'"),
        ("x' or name contains '", "'x\\' or name contains \\''"),
        ("\\'", "'\\\\\\''"),
    ],
)
def test_quote_and_backslash_are_escaped(value: str, literal: str) -> None:
    assert drive_quote(value) == literal


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab '\\\"=()"), max_size=30))
def test_a_quoted_value_is_one_string_token(value: str) -> None:
    """Read back by a Drive query tokenizer (the sandbox's), the literal is exactly the value."""
    query = f"appProperties has {{ key='leadrunTag' and value={drive_quote(value)} }}"
    strings = [token for kind, token in tokenize(query) if kind == "str"]
    assert strings == ["leadrunTag", value]
