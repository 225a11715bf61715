"""What a run's figures mean: the per-unit figures, what must hold in every run (nothing lost,
duplicated or refused), and the warnings the servers logged meanwhile."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .scenarios import Scenario, Target
from .stack import Stack

SEVERE_LEVELS = frozenset({"warning", "error", "critical"})


def server_warnings(stack: Stack, target: Target, since: str) -> dict[str, int]:
    """The warnings and errors the target's services logged since `since`, counted by event
    (and reason, where a line gives one): why a run failed, in the server's own words, such as
    a slow consumer cut (4008). Lines that are not JSON (Redis's own) are not ours to read."""
    counts: Counter[str] = Counter()
    for service in target.servers:
        logs = stack.compose("logs", "--no-log-prefix", "--since", since, service,
                             capture=True, check=False)  # fmt: skip
        for line in logs.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in SEVERE_LEVELS:
                reason = f" ({entry['reason']})" if "reason" in entry else ""
                counts[f"{service}: {entry.get('event')}{reason}"] += 1
    return dict(counts)


def derive(scenario: Scenario, result: dict[str, Any]) -> None:
    """The per-unit figures: CPU per delivery (or handshake), utilisation of the cores."""
    window = result["window_seconds"] or 1
    units = result["received"] if scenario.per == "delivery" else result["opened"]
    # (per token: requests answered, in "opened")
    result["per"] = scenario.per
    result["cpu_us_per_unit"] = round(result["server_cpu_s"] * 1e6 / units, 2) if units else None
    result["server_cpu_pct"] = round(100 * result["server_cpu_s"] / window, 1)
    loadgen_s = result["cpu_s"].get("loadgen", 0.0)  # wrk's own CPU is not measured
    result["loadgen_cpu_pct"] = round(100 * loadgen_s / window, 1) or None
    result["core_busy_pct"] = {core: round(100 * busy / window, 1)
                               for core, busy in result["core_busy_s"].items()}  # fmt: skip


def problems(scenario: Scenario, r: dict[str, Any]) -> list[str]:
    """What must hold in every run, smoke or not: nothing lost, duplicated or refused."""
    where = f"{scenario.key} / {r['target']}"
    found = []
    if r.get("timed_out"):
        found.append(f"{where}: timed out (figures are what it reached)")
    if r["failures"]:
        found.append(f"{where}: failed handshakes {r['failures']}")
    if r["lost"] or r["duplicated"]:
        found.append(f"{where}: lost {r['lost']}, duplicated {r['duplicated']}")
    if r["error_frames"]:
        found.append(f"{where}: {r['error_frames']} error frames")
    if scenario.per == "delivery" and not r["received"]:
        found.append(f"{where}: nothing delivered")
    if r["mode"] == "join" and r["complete_member_lists"] != r["clients"]:
        found.append(f"{where}: {r['complete_member_lists']} of {r['clients']} member lists right")
    return found
