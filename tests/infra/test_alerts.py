"""The alerts' log-based metrics (infra/modules/leadrun/monitoring.tf) against the real log lines.

Each scenario runs the code that writes a line an alert relies on (the handlers on the fakes of
tests/unit/world.py), captures what it printed, and turns every JSON line into the entry Cloud
Logging makes of it. Every metric's filter is then evaluated, with the small evaluator below, on
every captured entry: it must match exactly the lines it is meant to count. A renamed field or a
reworded message breaks this test rather than silently stopping an alert.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common import topology
from common.handlers import sweep
from common.handlers.dead_letter import handle_dead_letter
from common.handlers.delivery import Delivery, Work, handle_delivery
from common.limits import Limit
from tests.fakes import http_error, rate_limited
from tests.infra.terraform_model import Module
from tests.support import free_leads, request, unique
from tests.unit.world import World

MODULE_DIR = Path(__file__).resolve().parents[2] / "infra" / "modules" / "leadrun"

# -- the subset of the Logging query language the metrics use ---------------------------------
# A filter is comparisons joined by AND, each optionally preceded by NOT. A comparison is a field
# path, an operator and a value: `=` (equal), `:` (has: a case-insensitive substring, or `*`:
# the field is present) and `>=` (on `severity` only, in its order). Values are quoted strings,
# or a severity name. Anything else (OR, parentheses, regular expressions) is refused, so a
# filter this evaluator cannot judge fails the test instead of being misread.

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT")
SEVERITIES += ("EMERGENCY",)
_COMPARISON = re.compile(
    r'(?P<not>NOT\s+)?(?P<path>[A-Za-z_][\w.]*)(?P<op>>=|=|:)(?P<value>"(?:[^"\\]|\\.)*"|\*|[A-Z]+)'
)
_MISSING = object()


def _terms(query: str) -> Iterator[re.Match[str]]:
    for term in re.split(r"\s+AND\s+", query.strip()):
        match = _COMPARISON.fullmatch(term)
        if match is None:
            raise ValueError(f"outside the evaluated subset: {term!r} in {query!r}")
        yield match


def field(entry: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of an entry (`jsonPayload.waiting.api`), or _MISSING."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(entry: dict[str, Any], path: str, op: str, literal: str) -> bool:
    value = field(entry, path)
    if value is _MISSING or value is None:
        return False
    if literal == "*":
        if op != ":":
            raise ValueError(f"{path}{op}*: only `:` tests presence")
        return True
    if literal.startswith('"'):
        text = json.loads(literal)
    elif path == "severity":
        text = literal
    else:
        raise ValueError(f"unquoted value {literal!r} on {path}")
    if op == ">=":
        if path != "severity":
            raise ValueError(f">= on {path}: only severity is ordered here")
        return SEVERITIES.index(value) >= SEVERITIES.index(text)
    if not isinstance(value, str):
        raise ValueError(f"{path} is {value!r}, not a string: not compared here")
    if op == "=":
        return value == text
    return text.lower() in value.lower()


def matches(query: str, entry: dict[str, Any]) -> bool:
    """Whether the Cloud Logging query (the subset above) matches the entry."""
    verdicts = []
    for term in _terms(query):
        found = _compare(entry, term["path"], term["op"], term["value"])
        verdicts.append(not found if term["not"] else found)
    return all(verdicts)


def extract(extractor: str, entry: dict[str, Any]) -> Any:
    """What a metric's `EXTRACT(path)` takes from an entry."""
    match = re.fullmatch(r"EXTRACT\(([\w.]+)\)", extractor)
    assert match, f"only EXTRACT(field) is used: {extractor}"
    return field(entry, match.group(1))


def log_entry(line: str, service: str) -> dict[str, Any]:
    """The LogEntry Cloud Logging makes of a JSON line a function printed on stdout: its special
    fields become the entry's severity, labels and trace, the rest its jsonPayload."""
    payload = json.loads(line)
    entry: dict[str, Any] = {
        "severity": payload.pop("severity", "DEFAULT"),
        "labels": payload.pop("logging.googleapis.com/labels", {}),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
    }
    trace = payload.pop("logging.googleapis.com/trace", None)
    if trace:
        entry["trace"] = trace
    entry["jsonPayload"] = payload
    return entry


def test_the_evaluator_reads_the_subset_and_refuses_the_rest() -> None:
    entry = log_entry(
        '{"severity":"ERROR","message":"drive failed","logging.googleapis.com/labels":'
        '{"action":"drive"},"status":"failed","elapsedMs":12.5}',
        "drive",
    )
    assert matches('jsonPayload.status="failed" AND labels.action="drive"', entry)
    assert matches("severity>=WARNING AND jsonPayload.elapsedMs:*", entry)
    assert not matches("severity>=CRITICAL", entry)
    assert matches('jsonPayload.message:"FAILED"', entry)  # has: case-insensitive
    assert not matches('jsonPayload.message="drive"', entry)  # equal: the whole value
    assert not matches("jsonPayload.outcome:*", entry)
    assert matches('NOT jsonPayload.outcome="dead_lettered"', entry)  # missing: not equal
    assert not matches('NOT jsonPayload.status="failed"', entry)
    for outside in ('a="b" OR c="d"', '(a="b")', 'a=~"b"', "jsonPayload.status=failed"):
        with pytest.raises(ValueError):
            matches(outside, entry)


# -- the lines, as the code writes them ---------------------------------------------------------


@dataclass
class Lines:
    """Everything the scenarios printed, as entries, by scenario."""

    by_scenario: dict[str, list[dict[str, Any]]]

    @property
    def all(self) -> list[dict[str, Any]]:
        return [entry for entries in self.by_scenario.values() for entry in entries]


def _broken(_work: Work) -> Any:
    raise ValueError("a defect")


@pytest.fixture(scope="module")
def lines() -> Iterator[Lines]:
    """Run every scenario once; module-scoped, so it captures stdout by itself."""
    capture = pytest.MonkeyPatch()
    scenarios: dict[str, list[dict[str, Any]]] = {}

    def run(name: str, service: str, body: Callable[[], None]) -> None:
        buffer = io.StringIO()
        capture.setattr(sys, "stdout", buffer)
        try:
            body()
        finally:
            capture.undo()
        text = buffer.getvalue()
        scenarios[name] = [log_entry(line, service) for line in text.splitlines() if line]

    world = World()

    def done() -> None:
        world.schedule(request(unique("done"), free_leads(1), actions=["drive"]))
        world.pump()

    def failed() -> None:
        world.calls.fail("files.create", http_error(400, "invalidParameter", "bad parent"))
        world.schedule(request(unique("failed"), free_leads(1), actions=["drive"]))
        world.pump()

    def refused() -> None:
        # A lead meets Google's 429: its lane slows down. A call that was already on its way
        # meets the same refusal while the gate is closed: a refusal, but no slowdown.
        host = f"{unique('h')}@example.com"
        until = world.clock() + timedelta(seconds=30)
        world.calls.fail("files.create", rate_limited(until))
        world.schedule(request(unique("refused"), free_leads(1), host=host, actions=["drive"]))
        world.pump()
        world.lanes.close(host, Limit("rate_limit", "drive", until), world.clock())

    def dead_letter() -> None:
        run_id = unique("dead")
        world.schedule(request(run_id, free_leads(1), actions=["drive"]))
        world.bus.published.clear()
        message = Delivery(run_id, "lead-000", "drive", "m-dead", None)
        handle_dead_letter(world.store, message, "10", world.clock())
        handle_dead_letter(
            world.store, message, "10", world.clock()
        )  # again: a settled receipt, INFO
        handle_dead_letter(
            world.store, Delivery(run_id, "nobody", "drive", "m-x", None), "10", world.clock()
        )

    def broken() -> None:
        run_id = unique("broken")
        world.schedule(request(run_id, free_leads(1), actions=["drive"]))
        world.bus.published.clear()
        with pytest.raises(ValueError):
            handle_delivery(world.deps, Delivery(run_id, "lead-000", "drive", "m-b", None), _broken)

    def sweeps() -> None:
        # One run's message was lost 31 minutes ago, another's 15: both are published again,
        # only the first is late.
        late, recent = World(), World()
        for each, minutes in ((late, 31), (recent, 15)):
            each.schedule(request(unique("lost"), free_leads(1), actions=["drive"]))
            each.bus.published.clear()
            each.later += timedelta(minutes=minutes)
            sweep.sweep(
                each.store,
                each.bus,
                each.pace,
                stale_after=timedelta(seconds=topology.SWEEP_STALE_S),
                loop_s=0,
                clock=each.clock,
                sleep=each.wait,
            )
            assert len(each.bus.published) == 1

    for name, service, body in (
        ("done", "drive", done),
        ("failed", "drive", failed),
        ("refused", "drive", refused),
        ("dead_letter", "dead-letter", dead_letter),
        ("broken", "drive", broken),
        ("sweeps", "sweep", sweeps),
    ):
        run(name, service, body)
    yield Lines(scenarios)


# -- what each metric must count ----------------------------------------------------------------


def _message(entry: dict[str, Any]) -> str:
    return str(entry["jsonPayload"].get("message"))


# Metric name => the lines (among everything the scenarios printed) it is meant to count.
INTENDED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "dead_letters": lambda e: _message(e) == "dead-lettered message recorded",
    "failed_receipts": lambda e: _message(e) == "drive failed",
    "late_runs": lambda e: _message(e) == "run pending past its eta",
    "sweeps": lambda e: _message(e) == "sweep",
    "refusals": lambda e: _message(e) == "google refused a call",
    "lane_slowdowns": lambda e: (
        _message(e) == "google refused a call" and e["jsonPayload"].get("factor") is not None
    ),
    "function_errors": lambda e: (
        _message(e).startswith("unexpected error, retrying")
        or _message(e) == "dead letter for an unknown receipt"
    ),
    "actions_done": lambda e: _message(e) == "drive done",
    "waiting": lambda e: _message(e).startswith("drive waiting for Google's drive rate_limit"),
    # Every delivery's last line: how its receipt ended, or its wait.
    "delivery_ms": lambda e: (
        _message(e) in ("drive done", "drive failed") or _message(e).startswith("drive waiting for")
    ),
}


@pytest.fixture(scope="module")
def module() -> Module:
    return Module.load(MODULE_DIR)


def metric_filters(module: Module) -> dict[str, dict[str, Any]]:
    """Metric name (without its leadrun_ prefix) => its filter, extractors and descriptor."""
    found = {}
    for instance in module.instances("google_logging_metric"):
        body = instance.body
        name = body["name"]
        assert name.startswith("leadrun_"), name
        found[name.removeprefix("leadrun_")] = body
    return found


def test_every_metric_has_its_intended_lines(module: Module) -> None:
    assert set(metric_filters(module)) == set(INTENDED)


@pytest.mark.parametrize("metric", sorted(INTENDED))
def test_metric_counts_exactly_its_lines(module: Module, lines: Lines, metric: str) -> None:
    body = metric_filters(module)[metric]
    intended = [entry for entry in lines.all if INTENDED[metric](entry)]
    counted = [entry for entry in lines.all if matches(body["filter"], entry)]
    assert intended, f"no scenario wrote a line {metric} should count"
    assert counted == intended, (
        f"{metric}: {body['filter']!r} counts {[_message(e) for e in counted]}, "
        f"meant {[_message(e) for e in intended]}"
    )
    others = [entry for entry in lines.all if entry not in intended]
    assert others, "no line of another event to tell it from"
    for entry in intended:  # every label it extracts is there, and the value it measures
        for label, extractor in (body.get("label_extractors") or {}).items():
            value = extract(extractor, entry)
            assert isinstance(value, str) and value, f"{metric}.{label}: {extractor} on {entry}"
        if "value_extractor" in body:
            assert isinstance(extract(body["value_extractor"], entry), int | float)


def test_refusals_tell_a_slowdown_from_a_call_already_on_its_way(lines: Lines) -> None:
    refusals = [e for e in lines.by_scenario["refused"] if _message(e) == "google refused a call"]
    assert [e["jsonPayload"]["lane"] for e in refusals] == ["slowed", "held"]
    assert {e["labels"]["api"] for e in refusals} == {"drive"}
    assert all(e["severity"] == "WARNING" for e in refusals)


def test_only_the_late_run_is_reported_late(lines: Lines) -> None:
    late = [e for e in lines.by_scenario["sweeps"] if _message(e) == "run pending past its eta"]
    assert len(late) == 1
    assert late[0]["labels"]["runId"].startswith("lost-")
    assert late[0]["jsonPayload"]["late"] == 1
    sweeps = [e for e in lines.by_scenario["sweeps"] if _message(e) == "sweep"]
    assert [e["jsonPayload"]["republished"] for e in sweeps] == [1, 1]


# -- the alert policies and the dashboard -------------------------------------------------------


def _metric_types(text: str) -> set[str]:
    return set(re.findall(r'metric\.type="((?:[^"$]|\$\{[^}]*\})+)"', text))


def test_alerts_watch_defined_metrics_and_notify_the_channels(module: Module) -> None:
    policies = module.instances("google_monitoring_alert_policy")
    titles = {p.body["display_name"] for p in policies}
    assert len(titles) == len(policies) == 6, titles
    counter = 'google_logging_metric.counter["{}"].name'
    watched = set()
    for policy in policies:
        assert policy.body["notification_channels"] == "${var.notification_channels}"
        assert policy.body["documentation"][0]["content"], policy.address
        for condition in policy.body["conditions"]:
            (kind,) = [k for k in condition if k.startswith("condition_")]
            text = condition[kind][0]["filter"]
            assert 'resource.type="cloud_run_revision"' in text
            watched |= _metric_types(text)
    assert watched == {
        *(
            f"logging.googleapis.com/user/${{{counter.format(name)}}}"
            for name in ("dead_letters", "failed_receipts", "late_runs", "lane_slowdowns")
        ),
        f"logging.googleapis.com/user/${{{counter.format('sweeps')}}}",
        f"logging.googleapis.com/user/${{{counter.format('function_errors')}}}",
        "run.googleapis.com/request_count",
    }
    (silent,) = [p for p in policies if p.key is None and "condition_absent" in str(p.body)]
    assert silent.body["conditions"][0]["condition_absent"][0]["duration"] == "300s"
    assert module.variables["notification_channels"]["default"] == []
    assert "monitoring.googleapis.com" in module.local("apis")
    assert "logging.googleapis.com" in module.local("apis")


def test_dashboard_charts_only_metrics_that_exist(module: Module) -> None:
    (dashboard,) = module.instances("google_monitoring_dashboard")
    assert dashboard.body["dashboard_json"] == '${file("${path.module}/dashboard.json")}'
    document = json.loads((MODULE_DIR / "dashboard.json").read_text())
    tiles = document["mosaicLayout"]["tiles"]
    defined = {f"logging.googleapis.com/user/{body['name']}" for body in _bodies(module)}
    built_in = {"run.googleapis.com/request_count"}
    charted = set()
    for tile in tiles:
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]["timeSeriesFilter"]
            assert 'resource.type="cloud_run_revision"' in query["filter"]
            charted |= _metric_types(query["filter"])
    assert charted <= defined | built_in, charted - defined - built_in
    wanted = {"actions_done", "waiting", "refusals", "dead_letters", "delivery_ms"}
    assert {f"logging.googleapis.com/user/leadrun_{name}" for name in wanted} <= charted
    for tile in tiles:
        (data_set,) = tile["widget"]["xyChart"]["dataSets"]
        query = data_set["timeSeriesQuery"]["timeSeriesFilter"]
        if "request_count" in query["filter"]:  # only this deployment's functions
            names = {spec.name for spec in topology.FUNCTIONS}
            assert set(re.findall(r'"([\w-]+)"', query["filter"].split("one_of(")[1])) == names


def _bodies(module: Module) -> list[dict[str, Any]]:
    return [instance.body for instance in module.instances("google_logging_metric")]
