"""Prometheus metrics of one gateway app, in its own registry (no process-wide globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """Requests, latency, rejections by reason, upstream errors, turn latency, Rasa replicas and the handoff desk."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tandem_gateway_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tandem_gateway_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.rejections = Counter(
            "tandem_gateway_rejections_total",
            "Requests refused by the gateway, by reason (validation code, rate limit, session, origin).",
            ["reason"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "tandem_gateway_upstream_errors_total",
            "Failed calls to Rasa, by kind (timeout, unavailable, bad_response).",
            ["kind"],
            registry=self.registry,
        )
        self.turn_latency = Histogram(
            "tandem_gateway_turn_seconds",
            "Time Rasa took to answer one turn.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
            registry=self.registry,
        )
        # Labelled by the replica's position in RASA_URL (0-based), never by its URL (it may hold credentials).
        self.rasa_replica_up = Gauge(
            "tandem_gateway_rasa_replica_up",
            "Whether the gateway counts a Rasa replica up (1: it gets its conversations) or down (0), "
            "by the replica's index in RASA_URL.",
            ["replica"],
            registry=self.registry,
        )
        self.sessions = Counter(
            "tandem_gateway_sessions_created_total", "Visitor sessions created.", registry=self.registry
        )
        self.handoff_transitions = Counter(
            "tandem_gateway_handoff_transitions_total",
            "Handoff transitions made by the desk, by the state reached (assigned, resolved, closed, expired, "
            "cancelled; approved and denied for refund approvals).",
            ["to"],
            registry=self.registry,
        )
        self.handoff_messages = Counter(
            "tandem_gateway_handoff_messages_total",
            "Messages of handed-over conversations, by who wrote them (customer, agent) and whether an agent's "
            "reached a platform customer (delivered, failed, stored: the website reads it from the gateway).",
            ["role", "delivery"],
            registry=self.registry,
        )
