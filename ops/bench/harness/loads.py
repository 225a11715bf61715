"""One run of a scenario against one server: the load generator (ops/bench/loadgen) or wrk
(ops/bench/token), inside the stack's network, with the CPU window the load marks."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from .cpu import CpuSnapshot, rss_bytes, steer_receive_work
from .scenarios import Target
from .stack import ROOT, Stack, stack_container


def events(proc: subprocess.Popen[str], label: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The JSON lines a load prints, each with its text; any other line is shown as it came."""
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            print(f"    {label}: {line.rstrip()}")
            continue
        yield event, line


def run_loadgen(stack: Stack, target: Target, config: dict[str, Any], name: str,
                timeout_s: float, steer: bool = False,
                core: str = "1") -> dict[str, Any]:  # fmt: skip
    """`steer`: each side's kernel receive work on its own core (--steer-rx; direct only).
    `core`: the load generator's."""
    services = stack.target_ids(target)
    rss_before = sum(rss_bytes(i) for svc in target.servers for i in services[svc])
    cfg = {**config, "url": target.url, "auth": target.auth}
    cmd = stack.argv("run", "--rm", "-T", "--name", name, "loadgen", "node", "/bench/loadgen.js",
                     json.dumps(cfg))  # fmt: skip
    env = stack.env | {"BENCH_LOADGEN_CORE": core}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    start: CpuSnapshot | None = None
    end: CpuSnapshot | None = None
    result: dict[str, Any] = {}
    rss_window = 0
    loadgen_id = ""  # its container, once the window opens
    deadline = time.monotonic() + timeout_s
    for event, line in events(proc, "loadgen"):
        kind = event.get("event")
        if kind == "window-start":
            rss_window = sum(rss_bytes(i) for svc in target.servers for i in services[svc])
            loadgen_id = stack_container(name)
            # The server process's packets, not Redis's (the chat, their reader, shares its core).
            for server_id in services[target.servers[0]] if steer else []:
                steer_receive_work(server_id, loadgen_id)
                steer_receive_work(loadgen_id, server_id)
            start = CpuSnapshot.take(services, loadgen_id)
        elif kind == "window-end":
            end = CpuSnapshot.take(services, loadgen_id)
        elif kind == "result":
            result = event
            if end is None and start is not None:  # timed out before its window closed
                end = CpuSnapshot.take(services, loadgen_id)
        elif kind in ("timeout", "error-frame"):
            print(f"    loadgen: {line.rstrip()}")
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=60)
    if not result or start is None or end is None:
        raise SystemExit(f"bench: the load generator gave no result for {target.name}")
    result |= end.since(start, target.servers)
    result["rss_before_mib"] = round(rss_before / 2**20, 1)
    result["rss_window_mib"] = round(rss_window / 2**20, 1)
    if result["open"]:
        result["mem_per_socket_kib"] = round((rss_window - rss_before) / 1024 / result["open"], 1)
    return result


def run_wrk(stack: Stack, target: Target, config: dict[str, Any], name: str) -> dict[str, Any]:
    """Scenario 6: ops/bench/token/token.sh in the load generator's container (wrk)."""
    services = stack.target_ids(target)
    cmd = stack.argv("run", "--rm", "-T", "--name", name, "loadgen", "bash",
                     "/bench/token/token.sh", target.url, str(config["seconds"]),
                     str(config["connections"]), str(config["threads"]),
                     str(config.get("rate", 0)))  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, text=True)
    start: CpuSnapshot | None = None
    end: CpuSnapshot | None = None
    t0 = window = 0.0
    result: dict[str, Any] = {}
    for event, _ in events(proc, "wrk"):
        if event.get("event") == "window-start":
            start, t0 = CpuSnapshot.take(services), time.monotonic()
        elif event.get("scenario") == "token":
            end, window = CpuSnapshot.take(services), time.monotonic() - t0
            result = event
    proc.wait(timeout=120)
    if not result or start is None or end is None:
        raise SystemExit(f"bench: the token run gave no result ({proc.returncode})")
    cpu = end.since(start, target.servers)
    requests = result.get("requests") or 0
    return {
        "mode": "token", "clients": config["connections"], "open": 0, "opened": requests,
        "received": 0, "failures": {} if result.get("ok") else {"non_2xx_or_socket":
            (result.get("non_2xx") or 0) + (result.get("socket_errors") or 0) or 1},
        "lost": 0, "duplicated": 0, "error_frames": 0, "complete_member_lists": 0,
        "window_seconds": round(window, 3), "handshakes_per_s": result.get("rps"),
        "handshake_ms": {"p50": result.get("p50_ms"), "p99": result.get("p99_ms"),
                         "max": result.get("max_ms")},
        **cpu, "wrk": result,
    }  # fmt: skip
