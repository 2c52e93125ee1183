"""Just enough Terraform evaluation to compare infra/ with common/topology.py offline.

Parses a module's .tf files with python-hcl2, then expands `for_each` resources and `dynamic`
blocks over the module's locals. It understands the expression forms the module uses for names
and policies (references to `local.*`, `each.*`, `var.*` and dynamic iterators, `toset`,
`{for k, v in ... : k => v if ...}`, `cond ? a : b`, `merge`, `lookup`, `tostring`, object, list
and scalar literals). Any other
expression stays a string with the references it contains substituted, e.g.
`${google_pubsub_topic.topic["lead-calendar"].id}`, so tests can still see what it points at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)


class Unresolved(Exception):
    """An expression outside the subset this model evaluates."""


def parse_file(path: Path) -> dict[str, Any]:
    """A .tf file as python-hcl2 reads it (string literals unquoted)."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=OPTIONS)


@dataclass
class Instance:
    """One expanded resource instance: its address and evaluated body."""

    type: str
    name: str
    key: str | None
    body: dict[str, Any]

    @property
    def address(self) -> str:
        """Terraform's address, e.g. google_pubsub_topic.topic["lead-drive"]."""
        suffix = "" if self.key is None else f"[{json.dumps(self.key)}]"
        return f"{self.type}.{self.name}{suffix}"


@dataclass
class Module:
    """The .tf files of one directory."""

    path: Path
    variables: dict[str, Any] = field(default_factory=dict)
    raw_locals: dict[str, Any] = field(default_factory=dict)
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    _locals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Module:
        """Parse every .tf file in `path` (not below it)."""
        module = cls(path)
        for tf in sorted(path.glob("*.tf")):
            document = parse_file(tf)
            for block in document.get("locals", []):
                module.raw_locals.update(block)
            for block in document.get("variable", []):
                for name, body in block.items():
                    module.variables[name] = body
            for block in document.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        module.resources.append((rtype, name, body))
            for block in document.get("module", []):
                module.modules.update(block)
        return module

    def local(self, name: str) -> Any:
        """The evaluated value of `local.<name>`."""
        if name not in self._locals:
            if name not in self.raw_locals:
                raise Unresolved(f"local.{name}")
            self._locals[name] = self.resolve(self.raw_locals[name], {}, strict=True)
        return self._locals[name]

    def instances(self, rtype: str, name: str | None = None) -> list[Instance]:
        """Every instance of the resources of type `rtype` (and `name`), expanded."""
        found = []
        for block_type, block_name, body in self.resources:
            if block_type != rtype or (name is not None and block_name != name):
                continue
            for key, scope in self._for_each(body):
                evaluated = self.resolve({k: v for k, v in body.items() if k != "for_each"}, scope)
                found.append(Instance(rtype, block_name, key, evaluated))
        return found

    def _for_each(self, body: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
        if "for_each" not in body:
            yield None, {}
            return
        collection = self.evaluate(strip_interpolation(body["for_each"]), {})
        items = collection.items() if isinstance(collection, dict) else ((v, v) for v in collection)
        for key, value in items:
            yield key, {"each": {"key": key, "value": value}}

    # -- evaluation -------------------------------------------------------------------------

    def resolve(self, value: Any, scope: dict[str, Any], strict: bool = False) -> Any:
        """Evaluate every expression inside a parsed value."""
        if isinstance(value, dict):
            resolved = {
                k: self.resolve(v, scope, strict) for k, v in value.items() if k != "dynamic"
            }
            for dynamic in value.get("dynamic", []):
                self._expand_dynamic(dynamic, scope, resolved)
            return resolved
        if isinstance(value, list):
            return [self.resolve(v, scope, strict) for v in value]
        if isinstance(value, str):
            return self._resolve_string(value, scope, strict)
        return value

    def _expand_dynamic(
        self, dynamic: dict[str, Any], scope: dict[str, Any], into: dict[str, Any]
    ) -> None:
        for label, spec in dynamic.items():
            try:
                collection = self.evaluate(strip_interpolation(spec["for_each"]), scope)
            except Unresolved:
                into.setdefault("dynamic", []).append({label: spec})
                continue
            items = collection.items() if isinstance(collection, dict) else enumerate(collection)
            for key, item in items:  # no items, no block, as in Terraform
                inner = {**scope, label: {"key": key, "value": item}}
                into.setdefault(label, []).append(self.resolve(spec["content"][0], inner))

    def _resolve_string(self, text: str, scope: dict[str, Any], strict: bool) -> Any:
        whole = strip_interpolation(text) if is_single_interpolation(text) else None
        if whole is not None:
            try:
                return self.evaluate(whole, scope)
            except Unresolved:
                if strict:
                    return text
                return "${" + self.substitute(whole, scope) + "}"
        pieces = []
        for literal, expression in split_template(text):
            pieces.append(literal)
            if expression is None:
                continue
            try:
                value = self.evaluate(expression, scope)
            except Unresolved:
                pieces.append("${" + self.substitute(expression, scope) + "}")
                continue
            pieces.append(json.dumps(value) if isinstance(value, bool) else str(value))
        return "".join(pieces)

    def substitute(self, expression: str, scope: dict[str, Any]) -> str:
        """Replace the references we can resolve to scalars by their HCL literals."""

        def literal(match: re.Match[str]) -> str:
            try:
                value = self.lookup(match.group(0), scope)
            except Unresolved:
                return match.group(0)
            if isinstance(value, str | int | float | bool) or value is None:
                return json.dumps(value)
            return match.group(0)

        return reference_pattern(scope).sub(literal, expression)

    def lookup(self, reference: str, scope: dict[str, Any]) -> Any:
        """The value of `local.a.b`, `each.value.x`, `var.y` or an iterator reference."""
        root, *path = reference.split(".")
        if root == "local":
            if not path:
                raise Unresolved(reference)
            value = self.local(path[0])
            path = path[1:]
        elif root in scope:
            value = scope[root]
        else:
            raise Unresolved(reference)
        for part in path:
            if not isinstance(value, dict) or part not in value:
                raise Unresolved(reference)
            value = value[part]
        return value

    def evaluate(self, expression: str, scope: dict[str, Any]) -> Any:
        """Evaluate an expression of the supported subset, or raise Unresolved."""
        expression = expression.strip()
        if reference_pattern(scope).fullmatch(expression):
            return self.lookup(expression, scope)
        literal = parse_literal(expression)
        if literal is not NO_LITERAL:
            return literal
        if match := re.fullmatch(r"toset\((.+)\)", expression, re.S):
            values = self.evaluate(match.group(1), scope)
            return list(dict.fromkeys(values))
        if match := re.fullmatch(r"tostring\((.+)\)", expression, re.S):
            value = self.evaluate(match.group(1), scope)
            if isinstance(value, dict | list):
                raise Unresolved(expression)
            return json.dumps(value) if isinstance(value, bool) or value is None else str(value)
        if match := re.fullmatch(r"merge\((.*)\)", expression, re.S):
            merged: dict[str, Any] = {}
            for argument in split_arguments(match.group(1)):
                value = self.evaluate(argument, scope)
                if not isinstance(value, dict):
                    raise Unresolved(expression)
                merged.update(value)
            return merged
        if match := re.fullmatch(r"lookup\((.*)\)", expression, re.S):
            arguments = split_arguments(match.group(1))
            if len(arguments) != 3:
                raise Unresolved(expression)
            collection, key = (self.evaluate(a, scope) for a in arguments[:2])
            if not isinstance(collection, dict):
                raise Unresolved(expression)
            if key in collection:
                return collection[key]
            return self.evaluate(arguments[2], scope)
        if re.fullmatch(r"\{(?!\s*for\s).*\}", expression, re.S):
            try:
                parsed = hcl2.loads(f"value = {expression}\n", serialization_options=OPTIONS)
            except Exception as error:  # python-hcl2 raises lark's errors
                raise Unresolved(expression) from error
            return self.resolve(parsed["value"], scope)
        if match := re.fullmatch(
            r"\{\s*for\s+(\w+)\s*,\s*(\w+)\s+in\s+(.+?)\s*:\s*\1\s*=>\s*\2\s*(?:if\s+(.+?))?\s*\}",
            expression,
            re.S,
        ):
            key_name, value_name, source, condition = match.groups()
            collection = self.evaluate(source, scope)
            return {
                k: v
                for k, v in collection.items()
                if condition is None
                or self.condition(condition, {**scope, key_name: k, value_name: v})
            }
        if match := re.fullmatch(r"\[(.*)\]", expression, re.S):
            inner = match.group(1).strip()
            return [self.evaluate(item, scope) for item in inner.split(",")] if inner else []
        if match := re.fullmatch(r"(.+?)\s+\?\s+(.+?)\s+:\s+(.+)", expression, re.S):
            branch = match.group(2) if self.condition(match.group(1), scope) else match.group(3)
            return self.evaluate(branch, scope)
        raise Unresolved(expression)

    def condition(self, expression: str, scope: dict[str, Any]) -> bool:
        """Evaluate `a == b`, `a != b` or a boolean reference."""
        if match := re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", expression.strip(), re.S):
            left = self.evaluate(match.group(1), scope)
            right = self.evaluate(match.group(3), scope)
            return (left == right) if match.group(2) == "==" else (left != right)
        return bool(self.evaluate(expression, scope))


NO_LITERAL = object()


def parse_literal(expression: str) -> Any:
    """A scalar HCL literal, or NO_LITERAL."""
    if expression in ("true", "false"):
        return expression == "true"
    if expression == "null":
        return None
    if re.fullmatch(r'"[^"\\$]*"', expression):
        return expression[1:-1]
    if re.fullmatch(r"-?\d+", expression):
        return int(expression)
    return NO_LITERAL


def reference_pattern(scope: dict[str, Any]) -> re.Pattern[str]:
    """References into locals or the scope's roots (each, var, dynamic iterators, for variables)."""
    roots = "|".join(re.escape(root) for root in sorted({"local", *scope}, key=len, reverse=True))
    return re.compile(rf"(?<![\w.\"])(?:{roots})(?:\.[A-Za-z_][\w-]*)+(?![\w(])")


def split_arguments(text: str) -> list[str]:
    """A call's comma-separated arguments, splitting only outside brackets and strings."""
    arguments, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append(text[start:index].strip())
            start = index + 1
    if text[start:].strip():
        arguments.append(text[start:].strip())
    return arguments


def is_single_interpolation(text: str) -> bool:
    """Whether the whole string is one `${...}`."""
    pieces = split_template(text)
    return len(pieces) == 1 and pieces[0][0] == "" and pieces[0][1] is not None


def strip_interpolation(text: str) -> str:
    """`${expr}` -> `expr`."""
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def split_template(text: str) -> list[tuple[str, str | None]]:
    """Split a template into (literal, expression-or-None) pairs, matching nested braces."""
    pieces: list[tuple[str, str | None]] = []
    literal_start = index = 0
    while (start := text.find("${", index)) != -1:
        depth, cursor, quoted = 0, start + 2, False
        while cursor < len(text):
            char = text[cursor]
            if char == '"' and text[cursor - 1] != "\\":
                quoted = not quoted
            elif not quoted and char == "{":
                depth += 1
            elif not quoted and char == "}":
                if depth == 0:
                    break
                depth -= 1
            cursor += 1
        pieces.append((text[literal_start:start], text[start + 2 : cursor]))
        literal_start = index = cursor + 1
    if literal_start < len(text) or not pieces:
        pieces.append((text[literal_start:], None))
    return pieces
