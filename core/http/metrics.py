"""The bot's Prometheus metrics, one registry per process (per :class:`Metrics` object).

Counted at the edges: the dispatcher chain (received, answered, rate limited, errors),
the generator wrapper (time to first token, tokens, queue depth, busy replies), the
scheduler (jobs due, claimed, delivered), the store (latency), features (moderation).
Each process serves its own ``/metrics``; Prometheus adds up the processes (no shared
multiprocess directory: processes may run on different machines).

Names follow Prometheus conventions: ``personabot_`` prefix, ``_total`` counters,
``_seconds`` histograms. docs/scaling.md lists them with what each means.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text format

# Seconds: a reply takes from a fraction of a second (scripted, cached) to a minute (CPU model).
REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric the bot exports, registered in a registry of its own.

    A fresh object per App keeps tests and several bots in one process apart
    (prometheus-client's default registry is process-global).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_received = Counter(
            "personabot_messages_received", "Events that reached the dispatcher", ["platform"], registry=r
        )
        self.messages_answered = Counter(
            "personabot_messages_answered", "User turns answered with a stored reply", ["platform"], registry=r
        )
        self.reply_latency = Histogram(
            "personabot_reply_latency_seconds",
            "From receiving a message to its stored reply",
            ["platform"],
            buckets=REPLY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "personabot_time_to_first_token_seconds",
            "From a generation request to its first non-empty chunk",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "personabot_generated_tokens", "Tokens of generated replies (the backend's tokenizer)", registry=r
        )
        self.generation_queue_depth = Gauge(
            "personabot_generation_queue_depth", "Generation requests waiting for their first token", registry=r
        )
        self.generation_in_flight = Gauge(
            "personabot_generation_in_flight", "Generation streams started and not finished", registry=r
        )
        self.busy_replies = Counter(
            "personabot_busy_replies", "Replies refused because generation was at capacity", registry=r
        )
        self.moderation_actions = Counter(
            "personabot_moderation_actions",
            "Moderation decisions other than allow",
            ["direction", "action"],
            registry=r,
        )
        self.rate_limited = Counter(
            "personabot_rate_limited_messages", "Messages refused by a rate limit or quota", registry=r
        )
        self.errors = Counter("personabot_errors", "Failures by kind (exception class)", ["kind"], registry=r)
        self.jobs_due = Counter("personabot_jobs_due", "Scheduled jobs found due", ["plugin"], registry=r)
        self.jobs_claimed = Counter(
            "personabot_jobs_claimed", "Due jobs this process claimed to run", ["plugin"], registry=r
        )
        self.jobs_delivered = Counter(
            "personabot_jobs_delivered", "Scheduled jobs run to completion", ["plugin"], registry=r
        )
        self.store_latency = Histogram(
            "personabot_store_latency_seconds",
            "Duration of store operations",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.adapter_connected = Gauge(
            "personabot_adapter_connected", "1 while the platform connection is up", ["platform"], registry=r
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
