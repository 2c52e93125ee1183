"""Partial responses: the ``fields`` query parameter (``id,name,files(id,appProperties)``)."""

from __future__ import annotations

from typing import Any

from sandbox.errors import bad_request

FieldTree = dict[str, "FieldTree | None"]


def parse_fields(text: str) -> FieldTree | None:
    """Parse a fields mask into a tree; ``None`` means everything (empty mask or ``*``)."""
    text = text.replace(" ", "")
    if not text or text == "*":
        return None
    tree, pos = _parse_list(text, 0)
    if pos != len(text):
        raise bad_request(f"Invalid field selection {text}", "invalidParameter", "fields")
    return tree


def _parse_list(text: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    while True:
        start = pos
        while pos < len(text) and text[pos] not in ",()":
            pos += 1
        path = text[start:pos].split("/")
        if not all(path):
            raise bad_request(f"Invalid field selection {text}", "invalidParameter", "fields")
        sub: FieldTree | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise bad_request(f"Invalid field selection {text}", "invalidParameter", "fields")
            pos += 1
        _insert(tree, path, sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return tree, pos


def _insert(tree: FieldTree, path: list[str], sub: FieldTree | None) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if sub is None or tree.get(head, {}) is None:
            tree[head] = None
        else:
            existing = tree.get(head) or {}
            existing.update(sub)
            tree[head] = existing
        return
    node = tree.get(head, {})
    if node is None:
        return
    tree[head] = node
    _insert(node, rest, sub)


def apply_fields(value: Any, tree: FieldTree | None) -> Any:
    """Keep only the selected fields of ``value`` (dicts filtered, lists element-wise)."""
    if tree is None:
        return value
    if isinstance(value, list):
        return [apply_fields(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in tree:
        return value
    return {k: apply_fields(value[k], sub) for k, sub in tree.items() if k in value}
