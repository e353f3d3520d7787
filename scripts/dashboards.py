#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/*.json from the panel lists below.

Edit here, run `python3 scripts/dashboards.py`, commit both. tests/dashboards.rs checks
that every metric a dashboard expression names is exported by the binary.
"""
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
RI = "$__rate_interval"


def q(expr, legend="", fmt=None, instant=False):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ""}
    if fmt:
        t["format"] = fmt
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(kind, title, targets, w=12, h=8, unit=None, desc="", **extra):
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value", "graphMode": "area"}
    p.update(extra)
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def quantiles(metric, by="", qs=(0.5, 0.99)):
    grp = f"le{', ' + by if by else ''}"
    lbl = "{{" + by + "}} " if by else ""
    return [
        q(f"histogram_quantile({x}, sum by ({grp}) (rate({metric}_bucket{{{SEL}}}[{RI}])))", f"{lbl}p{int(x * 100)}")
        for x in qs
    ]


def layout(panels):
    x = y = 0
    rowh = 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        for t, ref in zip(p.get("targets", []), "ABCDEFGH"):
            t["refId"] = ref
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y = 0, y + rowh
            rowh = 0
        p["gridPos"].update({"x": x, "y": y})
        x += w
        rowh = max(rowh, h)
        if p["type"] == "row":
            x, y, rowh = 0, y + 1, 0
    return panels


def dashboard(uid, title, desc, panels):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["auditwatch"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(auditwatch_kafka_connected, instance)", "refId": "instance"},
                    "definition": "label_values(auditwatch_kafka_connected, instance)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "links": [{"title": "auditwatch", "type": "dashboards", "tags": ["auditwatch"], "asDropdown": True}],
        "panels": layout(panels),
    }


pipeline = [
    row("Kafka consumption"),
    panel("stat", "Kafka connected", [q(f"min(auditwatch_kafka_connected{{{SEL}}})", "connected")], w=4, h=6,
          desc="1 while every instance has a working broker connection",
          fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}, "overrides": []}),
    panel("stat", "Events/s", [q(f"sum(rate(auditwatch_events_total{{{SEL}}}[{RI}]))", "events/s")], w=4, h=6, unit="short"),
    panel("stat", "Max lag", [q(f"max(auditwatch_consumer_lag_messages{{{SEL}}})", "messages")], w=4, h=6, unit="short"),
    panel("stat", "Dead letters (range)", [q(f"sum(increase(auditwatch_dead_letters_total{{{SEL}}}[$__range]))", "dead letters")], w=4, h=6, unit="short"),
    panel("stat", "Commit failures (range)", [q(f"sum(increase(auditwatch_commit_failures_total{{{SEL}}}[$__range]))", "failures")], w=4, h=6, unit="short"),
    panel("stat", "Quarantined (range)", [q(f"sum(increase(auditwatch_quarantined_total{{{SEL}}}[$__range]))", "records")], w=4, h=6, unit="short"),
    panel("timeseries", "Consumption rate by topic", [q(f"sum by (topic) (rate(auditwatch_consumed_messages_total{{{SEL}}}[{RI}]))", "{{topic}}")], unit="short",
          desc="Kafka messages consumed per second"),
    panel("timeseries", "Consumed bytes by topic", [q(f"sum by (topic) (rate(auditwatch_consumed_bytes_total{{{SEL}}}[{RI}]))", "{{topic}}")], unit="Bps"),
    panel("timeseries", "Consumer lag per partition", [q(f"sum by (topic, partition) (auditwatch_consumer_lag_messages{{{SEL}}})", "{{topic}}/{{partition}}")], unit="short",
          desc="Messages between the committed offset and the end of each partition"),
    panel("timeseries", "Normalized events by source and outcome", [q(f"sum by (source, outcome) (rate(auditwatch_events_total{{{SEL}}}[{RI}]))", "{{source}} {{outcome}}")], unit="short"),
    row("Batches and store"),
    panel("timeseries", "Batch size (rows)", quantiles("auditwatch_batch_rows", "table") + [
        q(f"sum by (table) (rate(auditwatch_batch_rows_sum{{{SEL}}}[{RI}])) / sum by (table) (rate(auditwatch_batch_rows_count{{{SEL}}}[{RI}]))", "{{table}} mean")], unit="short"),
    panel("timeseries", "Store write latency", quantiles("auditwatch_store_write_seconds", "table"), unit="s",
          desc="Writing one batch to the store (Parquet encode + put)"),
    panel("timeseries", "Queue depths", [q(f"sum by (queue) (auditwatch_queue_depth{{{SEL}}})", "{{queue}}")], unit="short",
          desc="Items waiting in each bounded pipeline queue; a full queue means the stage after it is the bottleneck"),
    panel("timeseries", "Vault requests waiting for their response", [q(f"sum(auditwatch_vault_pending_requests{{{SEL}}})", "pending")], unit="short"),
    panel("timeseries", "Duplicates dropped (replays)", [q(f"sum(rate(auditwatch_duplicates_total{{{SEL}}}[{RI}]))", "rows/s")], unit="short"),
    panel("timeseries", "Dead letters, quarantine, commit failures", [
        q(f"sum(rate(auditwatch_dead_letters_total{{{SEL}}}[{RI}]))", "dead letters/s"),
        q(f"sum by (format) (rate(auditwatch_quarantined_total{{{SEL}}}[{RI}]))", "quarantined {{format}}/s"),
        q(f"sum(rate(auditwatch_commit_failures_total{{{SEL}}}[{RI}]))", "commit failures/s")], unit="short"),
    row("End to end"),
    panel("heatmap", "End-to-end latency (Kafka timestamp → stored and alerted)", [
        q(f"sum by (le) (increase(auditwatch_end_to_end_seconds_bucket{{{SEL}}}[{RI}]))", "{{le}}", fmt="heatmap")],
          options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges"}}),
    panel("timeseries", "End-to-end latency quantiles", quantiles("auditwatch_end_to_end_seconds", qs=(0.5, 0.9, 0.99)), unit="s"),
]

detections = [
    row("Alerts"),
    panel("stat", "Alerts (range)", [q(f"sum(increase(auditwatch_alerts_total{{{SEL}}}[$__range]))", "alerts")], w=6, h=6, unit="short"),
    panel("stat", "Suppressed (range)", [q(f"sum(increase(auditwatch_alerts_suppressed_total{{{SEL}}}[$__range]))", "suppressed")], w=6, h=6, unit="short"),
    panel("stat", "Rules loaded", [q(f"max(auditwatch_rules_loaded{{{SEL}}})", "rules")], w=6, h=6, unit="short"),
    panel("stat", "Rule reload failures (range)", [q(f"sum(increase(auditwatch_rules_reloads_total{{{SEL}, result=\"failed\"}}[$__range]))", "failed reloads")], w=6, h=6, unit="short",
          desc="A failed reload keeps the previous rules active; fix the rule files"),
    panel("timeseries", "Alerts by severity", [q(f"sum by (severity) (rate(auditwatch_alerts_total{{{SEL}}}[{RI}]))", "{{severity}}")], unit="short"),
    panel("timeseries", "Alerts by rule (top 10)", [q(f"topk(10, sum by (rule_id) (rate(auditwatch_alerts_total{{{SEL}}}[{RI}])))", "{{rule_id}}")], unit="short"),
    panel("table", "Alerts by rule and severity (range)", [
        q(f"sort_desc(sum by (rule_id, severity) (increase(auditwatch_alerts_total{{{SEL}}}[$__range])))", fmt="table", instant=True)],
          w=24, transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "alerts"}}}]),
    panel("timeseries", "Suppressed alerts", [q(f"sum(rate(auditwatch_alerts_suppressed_total{{{SEL}}}[{RI}]))", "suppressed/s")], unit="short"),
    panel("timeseries", "Rule reloads", [q(f"sum by (result) (increase(auditwatch_rules_reloads_total{{{SEL}}}[{RI}]))", "{{result}}")], unit="short"),
    row("Engine"),
    panel("timeseries", "Detect time per batch", quantiles("auditwatch_detect_seconds", qs=(0.5, 0.99)), unit="s"),
    panel("timeseries", "Rules loaded and open correlation windows", [
        q(f"max(auditwatch_rules_loaded{{{SEL}}})", "rules"),
        q(f"sum(auditwatch_correlation_groups{{{SEL}}})", "correlation groups")], unit="short"),
    panel("timeseries", "Baseline identities", [q(f"sum(auditwatch_baseline_identities{{{SEL}}})", "identities")], unit="short",
          desc="Identities whose behaviour the baseline detectors hold in memory"),
    panel("timeseries", "Baseline snapshot size", [q(f"max(auditwatch_baseline_snapshot_bytes{{{SEL}}})", "bytes")], unit="bytes",
          desc="Size of the last baseline state snapshot (written with the offsets it reflects)"),
    row("Delivery to the SIEM"),
    panel("timeseries", "Sink backlog", [q(f"sum by (sink) (auditwatch_sink_backlog_alerts{{{SEL}}})", "{{sink}}")], w=8, unit="short",
          desc="Alerts in the outbox not yet acknowledged by the sink's destination"),
    panel("timeseries", "Delivered", [q(f"sum by (sink) (rate(auditwatch_sink_delivered_total{{{SEL}}}[{RI}]))", "{{sink}}")], w=8, unit="short"),
    panel("timeseries", "Delivery failures", [q(f"sum by (sink) (rate(auditwatch_sink_failures_total{{{SEL}}}[{RI}]))", "{{sink}}")], w=8, unit="short"),
]

investigations = [
    row("Investigation API"),
    panel("stat", "Requests/s", [q(f"sum(rate(auditwatch_api_requests_total{{{SEL}}}[{RI}]))", "req/s")], w=6, h=6, unit="reqps"),
    panel("stat", "Errors (5xx share)", [
        q(f"sum(rate(auditwatch_api_requests_total{{{SEL}, status=~\"5..\"}}[{RI}])) / sum(rate(auditwatch_api_requests_total{{{SEL}}}[{RI}]))", "5xx")], w=6, h=6, unit="percentunit"),
    panel("stat", "Denied (401/403, range)", [
        q(f"sum(increase(auditwatch_api_requests_total{{{SEL}, status=~\"401|403\"}}[$__range]))", "denied")], w=6, h=6, unit="short"),
    panel("stat", "p99 latency", [
        q(f"histogram_quantile(0.99, sum by (le) (rate(auditwatch_api_request_seconds_bucket{{{SEL}}}[{RI}])))", "p99")], w=6, h=6, unit="s"),
    panel("timeseries", "Requests by route", [q(f"sum by (route) (rate(auditwatch_api_requests_total{{{SEL}}}[{RI}]))", "{{route}}")], unit="reqps"),
    panel("timeseries", "Requests by status", [q(f"sum by (status) (rate(auditwatch_api_requests_total{{{SEL}}}[{RI}]))", "{{status}}")], unit="reqps"),
    panel("timeseries", "Latency p50 by route", quantiles("auditwatch_api_request_seconds", "route", qs=(0.5,)), unit="s"),
    panel("timeseries", "Latency p99 by route", quantiles("auditwatch_api_request_seconds", "route", qs=(0.99,)), unit="s"),
    panel("table", "Routes (range): requests, mean and p99 latency", [
        q(f"sum by (route) (increase(auditwatch_api_requests_total{{{SEL}}}[$__range]))", fmt="table", instant=True),
        q(f"sum by (route) (increase(auditwatch_api_request_seconds_sum{{{SEL}}}[$__range])) / sum by (route) (increase(auditwatch_api_request_seconds_count{{{SEL}}}[$__range]))", fmt="table", instant=True),
        q(f"histogram_quantile(0.99, sum by (le, route) (increase(auditwatch_api_request_seconds_bucket{{{SEL}}}[$__range])))", fmt="table", instant=True)],
          w=24, transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value #A": "requests", "Value #B": "mean (s)", "Value #C": "p99 (s)"}}}]),
]

DASHBOARDS = {
    "pipeline.json": dashboard("auditwatch-pipeline", "auditwatch / pipeline health",
                               "Kafka consumption, lag, batches, store writes, queues, dead letters, quarantine, end-to-end latency", pipeline),
    "detections.json": dashboard("auditwatch-detections", "auditwatch / detections",
                                 "Alerts by rule and severity, suppression, rule engine, correlation windows, SIEM delivery", detections),
    "investigations.json": dashboard("auditwatch-investigations", "auditwatch / investigations",
                                     "The investigation API: request rate, errors and latency by route", investigations),
}

if __name__ == "__main__":
    for name, d in DASHBOARDS.items():
        (OUT / name).write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote dashboards/{name}: {len(d['panels'])} panels")
