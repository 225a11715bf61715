"""Prometheus metrics (default registry), served on METRICS_PORT.

Refused requests count apart: chat_handshake_rejections_total{reason} for the client port
(alerted on), chat_control_rejections_total{reason} for the control channel (the website's
notices; a rejection there means a misconfigured website or someone else on the bus).
chat_bus_* say whether this replica reaches the bus and what crossed it."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REJECTION_REASONS = (
    "missing_token",
    "invalid_token",
    "expired_token",
    "wrong_room",
    "bad_origin",
    "not_found",
    "keys_unavailable",
    "node_full",
    "revoked_token",
)
CONTROL_REJECTION_REASONS = (
    "missing_token",
    "invalid_token",
    "expired_token",
    "wrong_purpose",
    "keys_unavailable",
)

ROOMS_ACTIVE = Gauge("chat_rooms_active", "Rooms with at least one open connection")
CONNECTIONS_ACTIVE = Gauge("chat_connections_active", "Open WebSocket connections")
MESSAGES_RECEIVED = Counter(
    "chat_messages_received", "Chat messages accepted from clients (valid, within rate limit)"
)
MESSAGES_DELIVERED = Counter(
    "chat_messages_delivered",
    "Chat message frames written to recipients (one per connection; queued for its write at"
    " the connection's turn in the flush)",
)
BROADCAST_DURATION = Histogram(
    "chat_broadcast_duration_seconds",
    "From a message's arrival to its frame queued for the last recipient (each written at"
    " its turn in the flush, within one pass over the room)",
    buckets=(
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ),
)  # fmt: skip
HANDSHAKE_REJECTIONS = Counter(
    "chat_handshake_rejections", "Upgrade requests refused before the handshake", ["reason"]
)
CONTROL_REJECTIONS = Counter(
    "chat_control_rejections", "Control channel notices refused", ["reason"]
)
CONNECTION_DURATION = Histogram(
    "chat_connection_duration_seconds",
    "Lifetime of WebSocket connections",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 21600),
)

SLOW_CONSUMERS = Counter(
    "chat_slow_consumers",
    "Connections cut with 4008: unsent bytes over the bound, or a ping unanswered in time",
    ["reason"],
)
USER_CAP_CLOSES = Counter(
    "chat_user_cap_closes",
    "Sockets closed with 4429 because their user already had the maximum open",
)

BUS_UP = Gauge("chat_bus_up", "1 while this replica is connected and subscribed to the bus")
BUS_CONNECTS = Counter(
    "chat_bus_connects", "Bus sessions established (the first and each reconnection)"
)
BUS_PUBLISHED = Counter("chat_bus_published", "Envelopes published to room channels")
BUS_RECEIVED = Counter("chat_bus_received", "Envelopes from other replicas, by kind", ["kind"])
BUS_DROPPED = Counter(
    "chat_bus_dropped",
    "Bus writes given up (bus down, queue full, or lost with a failed connection)",
)
BUS_LATENCY = Histogram(
    "chat_bus_delivery_seconds",
    "From a message's publication on one replica to its write on another's members",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PRESENCE_FRAMES = Counter(
    "chat_presence_frames", "Presence frames written to local members (one per connection)"
)
PRESENCE_EXPIRED = Counter(
    "chat_presence_expired", "Remote users dropped because their replica stopped refreshing them"
)

# Export every reason at 0 so rate() works from the first rejection on.
for _reason in REJECTION_REASONS:
    HANDSHAKE_REJECTIONS.labels(_reason)
for _reason in CONTROL_REJECTION_REASONS:
    CONTROL_REJECTIONS.labels(_reason)
for _reason in ("buffer", "pong"):
    SLOW_CONSUMERS.labels(_reason)
for _kind in ("message", "join", "leave"):
    BUS_RECEIVED.labels(_kind)
