"""The Prometheus metrics of the manager, defined once on an injected registry.

Names follow the plan ("Observability Defaults") exactly; labels stay
low-cardinality (never a host id).  Tests build ``Metrics(CollectorRegistry())``.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

disable_created_metrics()

RTC_READY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)

#: Every plan metric name as it appears in ``/metrics``.  The plan's ``http_fallback_total``
#: is deliberately absent: the bus has no HTTP fallback (actions go over the host's one
#: WebRTC transport or wait for it), so that counter could never move (docs/migration.md).
PLAN_METRICS = (
    "transport_rtc_ready_seconds",
    "transport_reconnect_total",
    "actions_enqueued_total",
    "acks_pending",
    "actions_inflight",
    "extension_sent_bytes_total",
    "extension_dropped_total",
    "auth_failure_total",
    "assignment_rebalance_total",
    "attach_failure_total",
)


class Metrics:
    """Every metric the manager exposes.  Later parts only increment these."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.info = Info("beach_manager", "Build and identity of this manager instance", registry=r)
        self.transport_rtc_ready_seconds = Histogram(
            "transport_rtc_ready_seconds", "Attach start to secure data channel ready",
            buckets=RTC_READY_BUCKETS, registry=r)
        self.transport_reconnect_total = Counter(
            "transport_reconnect_total", "Transport re-attaches after a loss or failure", registry=r)
        self.attach_failure_total = Counter(
            "attach_failure_total", "Attach attempts that failed, by phase", ["phase"], registry=r)
        self.actions_enqueued_total = Counter(
            "actions_enqueued_total", "Controller actions accepted into a host queue", registry=r)
        self.acks_pending = Gauge(
            "acks_pending", "Delivered actions waiting for their ack", registry=r)
        self.actions_inflight = Gauge(
            "actions_inflight", "Actions queued or delivered and not yet finally acked", registry=r)
        self.actions_acked_total = Counter(
            "actions_acked_total", "Actions finished, by final status (ok, rejected, expired, "
            "preempted)", ["status"], registry=r)
        self.action_queue_depth_max = Gauge(
            "action_queue_depth_max", "Actions queued or delivered for the deepest host lane "
            "of this instance", registry=r)
        self.action_queue_bound = Gauge(
            "action_queue_bound", "The per-host action queue bound (429 beyond it)", registry=r)
        self.extension_sent_bytes_total = Counter(
            "extension_sent_bytes_total", "Extension payload bytes published, by topic",
            ["namespace", "topic"], registry=r)
        self.extension_received_bytes_total = Counter(
            "extension_received_bytes_total", "Extension payload bytes received, by topic",
            ["namespace", "topic"], registry=r)
        self.extension_dropped_total = Counter(
            "extension_dropped_total", "Extension frames dropped, by topic and reason",
            ["namespace", "topic", "reason"], registry=r)
        self.auth_failure_total = Counter(
            "auth_failure_total", "Rejected requests, by reason", ["reason"], registry=r)
        self.assignment_rebalance_total = Counter(
            "assignment_rebalance_total", "Hosts whose owning manager changed, by reason",
            ["reason"], registry=r)
        self.actions_refused_total = Counter(
            "actions_refused_total", "Actions refused before they were queued, by reason "
            "(overloaded: this instance's backlog was over its admission target)", ["reason"],
            registry=r)
        self.assignment_refused_total = Counter(
            "assignment_refused_total", "Hosts refused because every serving instance was full",
            registry=r)
        self.assigned_hosts = Gauge(
            "assigned_hosts", "Hosts this instance owns now", registry=r)
        self.failover_total = Counter(
            "failover_total", "Hosts this instance took over from a dead or departed owner, by "
            "how (promoted: a standby session became active; attached: from scratch)",
            ["reason"], registry=r)
        self.failover_seconds = Histogram(
            "failover_seconds", "From detecting an owner's failure (its lease expired, or its "
            "host reported it silent) to the first action delivered by this instance's new "
            "active session", buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30),
            registry=r)
        self.fenced_actions_total = Counter(
            "fenced_actions_total", "Actions a host refused because this instance's ownership "
            "epoch was stale (another instance owns the host)", registry=r)
        self.standby_ready_hosts = Gauge(
            "standby_ready_hosts", "Hosts owned elsewhere that this instance holds a ready "
            "standby session to (hot failover)", registry=r)
        self.agent_messages_total = Counter(
            "agent_messages_total", "Messages of controller agents on the bus, by outcome (ok, "
            "or the refusal's code)", ["outcome"], registry=r)
        self.association_total = Counter(
            "association_total", "Association messages sent to harnesses and renewal requests "
            "heard from them, by outcome (sent, renewed, or the refusal's code)", ["outcome"],
            registry=r)
        self.rate_limited_total = Counter(
            "rate_limited_total", "Requests refused with 429 by a token bucket, by limit (account, "
            "beach, address)", ["limit"], registry=r)
        self.action_latency_seconds = Histogram(
            "action_latency_seconds", "Action accepted to final ack stored",
            buckets=LATENCY_BUCKETS, registry=r)
        self.reactor_lag_seconds = Histogram(
            "reactor_lag_seconds", "How late the reactor ran a 1 s timer (event-loop lag)",
            buckets=LOOP_LAG_BUCKETS, registry=r)
        # A labelled metric only appears once a child exists; create the known ones up front
        # so that /metrics lists every plan metric from the first scrape.
        for reason in ("missing_token", "invalid_token", "missing_scope"):
            self.auth_failure_total.labels(reason=reason)
        for phase in ("attach", "offer", "answer", "ice", "dc_open", "handshake", "ready"):
            self.attach_failure_total.labels(phase=phase)
        for status in ("ok", "rejected", "expired", "preempted"):
            self.actions_acked_total.labels(status=status)
        self.extension_sent_bytes_total.labels(namespace="manager", topic="beach.manager.action")
        self.extension_dropped_total.labels(namespace="manager", topic="unknown", reason="unknown_topic")
        for how in ("promoted", "attached"):
            self.failover_total.labels(reason=how)
        self.assignment_rebalance_total.labels(reason="failover")
        self.assignment_rebalance_total.labels(reason="drain")

    def describe_instance(self, instance_id: str, impl: str, version: str) -> None:
        self.info.info({"instance_id": instance_id, "impl": impl, "version": version})
