"""The Grafana dashboard and the Prometheus alerts of the chart use only metrics and labels
a live daemon exports: every PromQL expression is parsed (promql-parser), and each metric
name and label name it uses (selector matchers, `by`/`without`, `on`/`ignoring`,
`group_left`/`group_right`, and the dashboard variables' `label_values`) is looked up in a
real `/metrics` scrape, taken after Mounts that succeed, fail and serve stale content, so
that every labelled series exists. Renaming a metric or a label breaks this test."""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import promql_parser
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from csiprovider import fetchcache
from csiprovider.server import ServeConfig
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "charts" / "csiprovider" / "files" / "dashboard.json"
ALERTS = ROOT / "charts" / "csiprovider" / "files" / "alerts.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Labels Prometheus attaches to every series of a target, so never in the exposition: job
# and instance always, node from the chart's ServiceMonitor/PodMonitor relabeling.
TARGET_LABELS = frozenset({"job", "instance", "node"})
# Series Prometheus makes itself for every target (they carry only target labels).
SYNTHETIC_METRICS = frozenset({"up"})
# Grafana's interval variables, which stand where PromQL wants a duration.
GRAFANA_DURATIONS = ("$__rate_interval", "$__interval", "$__range")
RUNBOOK_ANCHORS = frozenset(
    {"pod-stuck-in-containercreating", "stale-content", "rotation-not-happening", "grpc-codes"}
)
SEVERITIES = frozenset({"critical", "warning", "info"})

GUARD = 60.0  # seconds: only against a hang, never the thing asserted

OBJECTS = [{"objectName": "db-password-object", "backend": "file", "path": "db/password"}]
MISSING = [{"objectName": "missing-object", "backend": "file", "path": "db/missing"}]


# -- what an expression uses --------------------------------------------------------------


@dataclass
class Uses:
    """What one PromQL expression needs from the scrape."""

    # (metric name, label names of its matchers, (label, op, value) of its matchers)
    selectors: list[tuple[str, frozenset[str], list[tuple[str, str, str]]]] = field(
        default_factory=list
    )
    # (label names of a by/without/on/ignoring/group_x clause, metrics below that node)
    groupings: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)


def promql(expr: str) -> str:
    """A Grafana query as PromQL: its interval variables become a duration. (`$var` in
    label values are plain strings to PromQL; anywhere else the parser rejects them.)"""
    for variable in GRAFANA_DURATIONS:
        expr = expr.replace(variable, "5m")
    return expr


def uses_of(expr: str) -> Uses:
    uses = Uses()
    _visit(promql_parser.parse(promql(expr)), uses)
    return uses


def _visit(node: Any, uses: Uses) -> frozenset[str]:
    """The metric names below `node`, recording its selectors and grouping clauses."""
    if isinstance(node, promql_parser.VectorSelector):
        return _selector(node, uses)
    if isinstance(node, promql_parser.MatrixSelector):
        return _selector(node.vector_selector, uses)
    if isinstance(node, promql_parser.AggregateExpr):
        names = _visit(node.expr, uses)
        if isinstance(node.param, promql_parser.Expr):
            names |= _visit(node.param, uses)
        if node.modifier is not None and node.modifier.labels:
            uses.groupings.append((frozenset(node.modifier.labels), names))
        return names
    if isinstance(node, promql_parser.BinaryExpr):
        names = _visit(node.lhs, uses) | _visit(node.rhs, uses)
        modifier = node.modifier
        if modifier is not None:
            labels = set(modifier.matching.labels if modifier.matching is not None else [])
            labels |= set(modifier.group_labels or [])
            if labels:
                uses.groupings.append((frozenset(labels), names))
        return names
    if isinstance(node, promql_parser.Call):
        assert node.func.name not in ("label_replace", "label_join", "count_values"), (
            f"{node.func.name} makes labels: teach this checker about it"
        )
        names = frozenset[str]()
        for arg in node.args:
            if isinstance(arg, promql_parser.Expr):
                names |= _visit(arg, uses)
        return names
    if isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        return _visit(node.expr, uses)
    if isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return frozenset()
    raise AssertionError(f"unknown PromQL node {type(node).__name__}: {node}")


MATCH_OPS = {
    "Equal": promql_parser.MatchOp.Equal,
    "NotEqual": promql_parser.MatchOp.NotEqual,
    "Re": promql_parser.MatchOp.Re,
    "NotRe": promql_parser.MatchOp.NotRe,
}


def _op(op: promql_parser.MatchOp) -> str:
    return next(name for name, known in MATCH_OPS.items() if op == known)


def _selector(node: promql_parser.VectorSelector, uses: Uses) -> frozenset[str]:
    matchers = [(m.name, _op(m.op), m.value) for m in node.matchers.matchers]
    for alternative in node.matchers.or_matchers:
        matchers += [(m.name, _op(m.op), m.value) for m in alternative]
    name = node.name
    for label, op, value in matchers:
        if label == "__name__":
            assert op == "Equal", f"{node}: select metrics by name, not by a pattern"
            name = value
    assert name, f"{node}: a selector without a metric name"
    labels = frozenset(label for label, _, _ in matchers if label != "__name__")
    uses.selectors.append((name, labels, [m for m in matchers if m[0] != "__name__"]))
    return frozenset({name})


# -- the scrape -----------------------------------------------------------------------------


@dataclass
class Scrape:
    """Sample names as exposed (with their _total/_bucket/_count/_sum suffixes), each with
    its label names and the values seen per label."""

    labels: dict[str, set[str]]
    values: dict[tuple[str, str], set[str]]
    families: dict[str, str]  # family name: type

    @classmethod
    def parse(cls, text: str) -> Scrape:
        labels: dict[str, set[str]] = {}
        values: dict[tuple[str, str], set[str]] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    values.setdefault((sample.name, label), set()).add(value)
        return cls(labels, values, families)


def known_values(scrape: Scrape, metric: str, label: str) -> set[str]:
    """Values a matcher on `metric`'s `label` may name: those in the scrape, plus the
    vocabularies the scrape cannot show all of (every gRPC code for `result`, the cache
    outcomes the fetch cache counts)."""
    values = set(scrape.values.get((metric, label), set()))
    if label == "result":
        values |= {code.name for code in grpc.StatusCode}
    if label == "outcome":
        values |= set(re.findall(r'CACHE\.labels\("(\w+)"\)', inspect.getsource(fetchcache)))
    return values


def problems(expressions: dict[str, str], scrape: Scrape) -> list[str]:
    """Every metric or label that `expressions` (where: PromQL) use and the scrape lacks."""
    found = []
    for where, expr in expressions.items():
        try:
            uses = uses_of(expr)
        except (ValueError, TypeError, RuntimeError) as exc:
            found.append(f"{where}: does not parse ({exc}): {expr}")
            continue
        for name, labels, matchers in uses.selectors:
            if name in SYNTHETIC_METRICS:
                exported: set[str] = set()
            elif name in scrape.labels:
                exported = scrape.labels[name]
            else:
                found.append(f"{where}: metric {name} is not exported")
                continue
            for label in sorted(labels - exported - TARGET_LABELS):
                found.append(f"{where}: {name} has no label {label!r}")
            for label, op, value in matchers:
                if label in TARGET_LABELS or "$" in value or label not in exported:
                    continue
                named = (
                    [value]
                    if op in ("Equal", "NotEqual")
                    else (value.split("|") if re.fullmatch(r"[\w|]+", value) else [])
                )
                for one in set(named) - known_values(scrape, name, label):
                    found.append(f"{where}: {name} never has {label}={one!r}")
        for labels, names in uses.groupings:
            available = set(TARGET_LABELS)
            for name in names:
                available |= scrape.labels.get(name, set())
            for label in sorted(labels - available):
                found.append(f"{where}: no metric of {sorted(names)} has label {label!r}")
    return found


# -- the two files --------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def load_alerts() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows (collapsed or not) included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def alert_rules(alerts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in alerts["groups"]:
        yield from group["rules"]


LABEL_VALUES = re.compile(r"\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\)\s*")


def dashboard_expressions(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every target's PromQL, and the selector of every `label_values(selector, label)`
    variable query (the label is added as a `label=~".*"` matcher, so it is checked too)."""
    found = {}
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.fullmatch(query)
        assert match, f"variable {variable['name']}: not a label_values() query: {query}"
        selector, label = match["selector"], match["label"]
        if "{" in selector:
            selector = selector.replace("}", f',{label}=~".*"}}', 1)
        else:
            selector += f'{{{label}=~".*"}}'
        found[f"variable {variable['name']}"] = selector
    return found


def alert_expressions(alerts: dict[str, Any]) -> dict[str, str]:
    return {f"alert {rule['alert']}": rule["expr"] for rule in alert_rules(alerts)}


# -- static checks ------------------------------------------------------------------------


def test_dashboard_loads_and_every_panel_queries_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "node"} <= set(variables)
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queried = [p for p in panels if p["type"] != "row"]
    assert len(queried) >= 20
    for panel in panels:
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for panel in queried:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel.get("description"), f"panel {panel['title']!r} has no description"


def test_alerts_have_severity_annotations_and_runbooks() -> None:
    rules = list(alert_rules(load_alerts()))
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert {
        "CSIProviderMountErrorsHigh",
        "CSIProviderServingStaleContent",
        "CSIProviderRotationErrors",
        "CSIProviderDown",
        "CSIProviderAbsent",
    } <= set(names)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        promql_parser.parse_duration(rule["for"])
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip()
        runbook = re.fullmatch(r"docs/troubleshooting\.md#([a-z0-9-]+)", annotations["runbook_url"])
        assert runbook and runbook[1] in RUNBOOK_ANCHORS, (
            rule["alert"],
            annotations["runbook_url"],
        )


def test_metrics_doc_explains_every_alert() -> None:
    doc = METRICS_DOC.read_text()
    for rule in alert_rules(load_alerts()):
        assert f"`{rule['alert']}`" in doc, rule["alert"]


def test_the_extractor_sees_every_name() -> None:
    uses = uses_of(
        'histogram_quantile(0.9, sum by (le, a) (rate(m_bucket{b="x",c=~"$v"}[$__rate_interval])))'
        ' / ignoring (d) group_left (e) sum without (f) ({__name__="n"}) and on (g) up'
        " or absent(o) + max_over_time(p[5m:1m]) * -q"
    )
    assert sorted(s[0] for s in uses.selectors) == ["m_bucket", "n", "o", "p", "q", "up"]
    assert uses.selectors[0][1] == {"b", "c"}
    assert sorted(sorted(g[0]) for g in uses.groupings) == [["a", "le"], ["d", "e"], ["f"], ["g"]]
    with pytest.raises(ValueError):
        uses_of('rate(m{a="$x"}[$x])')


# -- against a live daemon --------------------------------------------------------------


async def _scrape_after_mounts(config: ServeConfig, file_root: Path, base: str) -> str:
    """Mounts that succeed, fail (NOT_FOUND) and are answered with stale content (two
    republishes while the file blocks: one reads, the other joins the read in flight; both
    are answered after limits.STALE_WAIT_SECONDS); and a probe of an unreachable
    daemon-level Vault address."""
    loop = asyncio.get_running_loop()
    secret = file_root / "default" / "db" / "password"

    def scrape() -> requests.Response:
        return requests.get(f"{base}/metrics", timeout=GUARD)

    async with running(config) as stubs:
        stub = stubs["csiprovider"]
        await stub.Mount(mount_request(OBJECTS))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Mount(mount_request(MISSING))
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        secret.unlink()
        os.mkfifo(secret)  # opening it blocks: the backend hangs
        try:
            await asyncio.gather(
                stub.Mount(mount_request(OBJECTS)), stub.Mount(mount_request(OBJECTS))
            )
        finally:
            await _unblock(secret)
        guard = loop.time() + GUARD
        response = await loop.run_in_executor(None, scrape)
        while "csiprovider_backend_reachable{" not in response.text:  # the probe's first answer
            assert loop.time() < guard, "the background probe did not answer in time"
            await asyncio.sleep(0.05)
            response = await loop.run_in_executor(None, scrape)
    assert response.status_code == 200
    return response.text


async def _unblock(fifo: Path) -> None:
    """Open the FIFO's other end, so the read blocked in open() ends (at EOF). The
    read was started before the Mounts were answered; it may still be on its way to
    open() on a busy machine: wait for it (GUARD only against a hang)."""
    guard = asyncio.get_running_loop().time() + GUARD
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            assert asyncio.get_running_loop().time() < guard, "no read of the FIFO began"
            await asyncio.sleep(0.01)
            continue
        os.close(fd)
        return


async def test_dashboard_and_alerts_use_only_exported_metrics_and_labels(
    serve_config: Callable[..., ServeConfig], file_root: Path
) -> None:
    port, dead = free_port(), free_port()
    config = serve_config(
        metrics_addr=f"127.0.0.1:{port}", vault_flag_address=f"http://127.0.0.1:{dead}"
    )
    text = await _scrape_after_mounts(config, file_root, f"http://127.0.0.1:{port}")
    scrape = Scrape.parse(text)
    for series in (
        'csiprovider_mounts_total{dialect="native",provider="csiprovider",result="NOT_FOUND"}',
        'csiprovider_stale_served_total{backend="file"}',
        'csiprovider_cache_total{outcome="coalesced"}',
        'csiprovider_backend_reachable{backend="vault"} 0.0',
    ):
        assert series in text, f"the scenario did not produce {series}"

    dashboard, alerts = load_dashboard(), load_alerts()
    expressions = {**dashboard_expressions(dashboard), **alert_expressions(alerts)}
    assert problems(expressions, scrape) == []

    used = {name for expr in expressions.values() for name, _, _ in uses_of(expr).selectors}
    ours = {
        name
        for name in scrape.families
        if name.startswith("csiprovider_") and not name.endswith("_created")
    }
    doc = METRICS_DOC.read_text()
    for family in sorted(ours):
        exposed = {s for s in scrape.labels if s == family or s.startswith(family + "_")}
        assert exposed & used, f"{family} is on no panel and in no alert"
        assert any(name in doc for name in exposed | {family}), (
            f"{family} is not documented in docs/metrics.md"
        )

    # The checker itself: a renamed metric, label or value is caught.
    renamed = {
        "metric": "sum(rate(csiprovider_mount_total[5m]))",
        "suffix": "histogram_quantile(0.9, sum by (le) (rate(csiprovider_mount_duration_seconds[5m])))",
        "label": 'sum(rate(csiprovider_mounts_total{code="OK"}[5m]))',
        "by": "sum by (status) (rate(csiprovider_backend_requests_total[5m]))",
        "on": "process_open_fds and on (pod) csiprovider_tracked_volumes",
        "value": 'sum(rate(csiprovider_cache_total{outcome="hits"}[5m]))',
        "code": 'sum(rate(csiprovider_mounts_total{result=~"OK|UNAVAILABLE|TIMEOUT"}[5m]))',
        "syntax": "sum(rate(csiprovider_mounts_total[$interval]))",
    }
    caught = problems(renamed, scrape)
    assert {line.split(":")[0] for line in caught} == set(renamed), caught
