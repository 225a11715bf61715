"""The servers a scenario runs against (`Target`) and the scenarios, with their full and smoke
sizes (`ops/bench/run --list`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    key: str  # as --targets takes it
    name: str  # as in the tables
    url: str  # inside the stack's network
    auth: str  # token (Parley) or query (yardsticks)
    servers: tuple[str, ...]  # services whose CPU and memory count as the server's
    extra: tuple[str, ...] = ()  # services whose CPU is reported beside it (nginx)


PARLEY = Target("parley", "Parley", "ws://chat:8001", "token", ("chat", "redis"))
PARLEY_NGINX = Target("parley-nginx", "Parley via nginx", "ws://nginx", "token", ("chat", "redis"),
                      ("nginx",))  # fmt: skip
NODE = Target("node-ws", "Node ws", "ws://node-ws:8001", "query", ("node-ws",))
PYTHON = Target("python-ws", "python websockets", "ws://python-ws:8001", "query", ("python-ws",))
WEBSITE = Target("website", "Parley website via nginx", "http://nginx", "session", ("website",),
                 ("nginx", "db"))  # fmt: skip
TARGETS = (PARLEY, PARLEY_NGINX, NODE, PYTHON, WEBSITE)


@dataclass
class Scenario:
    key: str
    title: str
    targets: tuple[Target, ...]
    config: dict[str, Any]
    smoke: dict[str, Any]
    chat_replicas: int = 1
    per: str = "delivery"  # what CPU is divided by: delivery or handshake
    notes: list[str] = field(default_factory=list)
    # Restart the servers first: memory per socket is measured on a process that never held
    # sockets before (a process keeps the memory earlier sockets freed).
    fresh: bool = False
    loadgen_core: str = "1"  # "0": nginx gets core 1 to itself (compose.bench.yml)


# The token timetable (ops/bench/token/README.md): 4 % over the target's 500 tokens/s, so that
# a website that keeps up reaches the target whatever the run's first and last slots.
PACED_TOKENS_PER_S = 520

SCENARIOS = [
    Scenario("fanout", "1. Fan-out: 1,000 clients in one room, 100 msg/s from 20 senders",
             (PARLEY, NODE, PYTHON),
             {"mode": "fanout", "clients": 1000, "rooms": 1, "senders": 20, "rate": 100,
              "seconds": 20},
             {"mode": "fanout", "clients": 40, "rooms": 1, "senders": 4, "rate": 20,
              "seconds": 2}),
    Scenario("fanout-half", "1c. Fan-out at half the rate: 1,000 clients, 50 msg/s from 20 "
             "senders", (PARLEY, NODE, PYTHON),
             {"mode": "fanout", "clients": 1000, "rooms": 1, "senders": 20, "rate": 50,
              "seconds": 20},
             {"mode": "fanout", "clients": 20, "rooms": 1, "senders": 2, "rate": 10,
              "seconds": 2}),
    Scenario("fanout-nginx", "1b. Fan-out through nginx: 1,000 clients, 30 msg/s from 20 senders",
             (PARLEY_NGINX,),
             {"mode": "fanout", "clients": 1000, "rooms": 1, "senders": 20, "rate": 30,
              "seconds": 20},
             {"mode": "fanout", "clients": 20, "rooms": 1, "senders": 2, "rate": 4, "seconds": 2},
             loadgen_core="0",
             notes=["nginx on core 1 of its own, as the issue asks, so the load generator "
                    "runs on core 0 beside the chat (the chat's CPU is still its own cgroup's); "
                    "at 30 messages/s nginx takes about two thirds of its core, and core 0 is "
                    "85-95% busy: the rate this machine carries so"]),
    Scenario("rooms", "2. Many rooms: 5,000 clients in 500 rooms of 10, 1 msg/s per room",
             (PARLEY, NODE, PYTHON),
             {"mode": "fanout", "clients": 5000, "rooms": 500, "senders": 1, "rate": 1,
              "seconds": 20},
             {"mode": "fanout", "clients": 60, "rooms": 6, "senders": 1, "rate": 2, "seconds": 2}),
    Scenario("capacity", "3. Capacity: 20,000 sockets through nginx, 1 msg/s per room of 100",
             (PARLEY_NGINX,),
             {"mode": "fanout", "clients": 20000, "rooms": 200, "senders": 1, "rate": 1,
              "seconds": 20, "procs": 2, "connectRate": 500, "inflight": 500,
              "pauseSeconds": 10, "timeoutSeconds": 240},
             {"mode": "fanout", "clients": 100, "rooms": 10, "senders": 1, "rate": 1,
              "seconds": 2, "procs": 2},
             chat_replicas=2, fresh=True,
             notes=["two chat replicas: one process here holds at most 20,000 descriptors "
                    "(the Docker daemon's hard nofile limit), fewer than 20,000 sockets plus "
                    "its own files; the sockets connect at 500/s, 500 at a time (the connect "
                    "storm is scenario 4), and the messages start 10 s after the last one"]),
    Scenario("capacity-direct", "3b. Capacity, one process: 10,000 idle sockets, 1 msg/s per "
             "room of 100", (PARLEY, NODE, PYTHON),
             {"mode": "fanout", "clients": 10000, "rooms": 100, "senders": 1, "rate": 1,
              "seconds": 10, "connectRate": 2000, "inflight": 1000, "timeoutSeconds": 180},
             {"mode": "fanout", "clients": 50, "rooms": 5, "senders": 1, "rate": 1,
              "seconds": 2}, fresh=True),
    Scenario("connect", "4. Connect storm: 5,000 clients (rooms of 10) as fast as they come",
             (PARLEY_NGINX, PARLEY, NODE, PYTHON),
             {"mode": "connect", "clients": 5000, "rooms": 500, "inflight": 1000},
             {"mode": "connect", "clients": 50, "rooms": 5, "inflight": 20},
             per="handshake",
             notes=["the yardsticks have no authentication"]),
    Scenario("join", "5. Join storm: 2,000 clients joining one room within 5 s",
             (PARLEY, NODE, PYTHON),
             {"mode": "join", "clients": 2000, "rooms": 1, "connectRate": 400, "inflight": 500,
              "timeoutSeconds": 60, "handshakeTimeoutSeconds": 30},
             {"mode": "join", "clients": 30, "rooms": 1, "connectRate": 30, "inflight": 10},
             per="handshake",
             notes=["a handshake may take 30 s (15 s elsewhere): the yardsticks, sending each "
                    "join to everyone, answer the last ones after 12-19 s, and a run where "
                    "some took longer compared nothing"]),
    Scenario("token-paced", f"6. Token endpoint at {PACED_TOKENS_PER_S} tokens/s offered: POST "
             "/api/rooms/{room}/token through nginx (wrk, 32 connections on a timetable)",
             (WEBSITE,),
             {"mode": "token", "seconds": 15, "connections": 32, "threads": 2,
              "rate": PACED_TOKENS_PER_S},
             {"mode": "token", "seconds": 2, "connections": 2, "threads": 1, "rate": 20},
             per="token",
             notes=[f"requests follow a timetable of {PACED_TOKENS_PER_S} tokens/s, slots a "
                    "random 0.5-1.5x the mean gap apart (wrk's delay()); a website that falls "
                    "behind reaches less: the latency of a token at that load"]),
    Scenario("token-c8", "6c. Token endpoint, as fast as 8 connections ask (wrk)", (WEBSITE,),
             {"mode": "token", "seconds": 15, "connections": 8, "threads": 2},
             {"mode": "token", "seconds": 2, "connections": 2, "threads": 1},
             per="token"),
    Scenario("token", "6b. Token endpoint, as fast as 16 connections ask (wrk)",
             (WEBSITE,),
             {"mode": "token", "seconds": 15, "connections": 16, "threads": 2},
             {"mode": "token", "seconds": 2, "connections": 2, "threads": 1},
             per="token",
             notes=["wrk on core 1 with nginx; the website (one process) on core 0; PostgreSQL "
                    "unpinned; CPU per token is the website's"]),
]
