"""The run's report: the machine and its versions, the console lines, the tables, the targets
met or missed, and RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .cpu import reference_loop_ns
from .scenarios import NODE, PARLEY, PARLEY_NGINX, PYTHON, WEBSITE, Scenario, Target
from .stack import Stack


def versions(stack: Stack) -> dict[str, str]:
    def out(*cmd: str) -> str:
        return stack.compose(*cmd, capture=True, check=False).strip()

    node = out("run", "--rm", "-T", "--no-deps", "loadgen", "node", "-p",
               "process.version + ' (the yardstick: ws ' + require('ws/package.json').version"
               " + ')'")  # fmt: skip
    py = out("run", "--rm", "-T", "--no-deps", "--entrypoint", "python", "python-ws", "-c",
             "import sys, websockets; print(sys.version.split()[0], 'websockets',"
             " websockets.__version__)")  # fmt: skip
    speed = reference_loop_ns(stack)
    nginx = out("exec", "-T", "nginx", "sh", "-c", "nginx -v 2>&1")
    redis = out("exec", "-T", "redis", "redis-server", "--version")
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    docker = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], text=True,
                            capture_output=True, check=False).stdout.strip()  # fmt: skip
    return {"cpu": f"{os.cpu_count()} x {cpu}", "kernel": platform.release(),
            "docker": docker, "node": node, "python": py, "nginx": nginx,
            "redis": redis.split(" sha=")[0], "reference_loop_ns": fmt(speed)}  # fmt: skip


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def find(results: list[dict[str, Any]], scenario: str, target: Target) -> dict[str, Any] | None:
    """This run's result for one scenario and one server, if it ran."""
    return next((r for r in results if r["scenario"] == scenario
                 and r["target"] == target.name), None)  # fmt: skip


def ratio_to_node(results: list[dict[str, Any]], r: dict[str, Any]) -> float | None:
    """CPU per unit of this result over Node ws's in the same scenario (lower is better)."""
    node = find(results, r["scenario"], NODE)
    if node and node.get("cpu_us_per_unit") and r.get("cpu_us_per_unit"):
        return float(r["cpu_us_per_unit"] / node["cpu_us_per_unit"])
    return None


def rate_and_latency(r: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """Units per second and their latency: deliveries, or handshakes (tokens)."""
    if r["per"] == "delivery":
        return r["deliveries_per_s"], r["latency_ms"]
    return r["handshakes_per_s"], r["handshake_ms"]


def lag_p99(r: dict[str, Any]) -> float | None:
    """The load generator's own loop lag, p99 ms (fan-out windows and the storms)."""
    lag: dict[str, float] | None = r.get("loadgen_lag_ms")
    return None if lag is None else lag["p99"]


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| scenario | server | rate | CPU µs per unit | vs Node ws | p50 ms | p99 ms | max ms"
            " | lost | dup | failed | mem/socket KiB | server CPU % | loadgen CPU % | loadgen lag"
            " p99 ms | core 0 busy % | core 1 busy % | ref loop ns |",
            "|---|---" + "|---:" * 16 + "|"]  # fmt: skip
    for r in results:
        per_s, lat = rate_and_latency(r)
        unit = "deliveries" if r["per"] == "delivery" else f"{r['per']}s"
        ratio = ratio_to_node(results, r)
        failed = sum(r["failures"].values())
        rows.append(
            f"| {r['scenario']} | {r['target']} | {fmt(per_s, 0)} {unit}/s"
            f" | {fmt(r['cpu_us_per_unit'], 2)} per {r['per']} | {fmt(ratio, 2)}"
            f" | {fmt(lat['p50'], 2)} | {fmt(lat['p99'], 2)}"
            f" | {fmt(lat['max'], 1)} | {fmt(r['lost'])} | {fmt(r['duplicated'])} | {fmt(failed)}"
            f" | {fmt(r.get('mem_per_socket_kib'))} | {fmt(r['server_cpu_pct'])}"
            f" | {fmt(r['loadgen_cpu_pct'])} | {fmt(lag_p99(r), 2)}"
            f" | {' | '.join(fmt(busy) for busy in r['core_busy_pct'].values())}"
            f" | {fmt(r.get('reference_loop_ns'))} |"
        )
    return "\n".join(rows)


def summary_cell(r: dict[str, Any]) -> str:
    per_s, lat = rate_and_latency(r)
    failed = sum(r["failures"].values())
    lost = f", lost {fmt(r['lost'])}" if r["lost"] else ""
    refused = f", {fmt(failed)} failed" if failed else ""
    return (f"{fmt(r['cpu_us_per_unit'], 1)} µs/{r['per']}, {fmt(per_s, 0)}/s,"
            f" p99 {fmt(lat['p99'], 0)} ms{lost}{refused}")  # fmt: skip


def summary_table(results: list[dict[str, Any]]) -> str:
    """One row per scenario, the servers side by side (the README's table)."""
    rows = ["| scenario | Parley | Node ws | python websockets | Parley / Node |",
            "|---|---|---|---|---:|"]  # fmt: skip
    for key in dict.fromkeys(r["scenario"] for r in results):
        cells = {r["target"]: summary_cell(r) for r in results if r["scenario"] == key}
        parley = "; via nginx ".join(cells[t.name] for t in (PARLEY, PARLEY_NGINX, WEBSITE)
                                     if t.name in cells)  # fmt: skip
        mine = find(results, key, PARLEY)
        ratio = ratio_to_node(results, mine) if mine else None
        rows.append(f"| {key} | {parley} | {cells.get(NODE.name, '-')}"
                    f" | {cells.get(PYTHON.name, '-')} | {fmt(ratio, 2)} |")  # fmt: skip
    return "\n".join(rows)


def results_md(report: dict[str, Any], chosen: list[Scenario]) -> str:
    m = report["machine"]
    # Where the load generator leaves core 1 to nginx (Scenario.loadgen_core).
    moved = ", ".join(s.key for s in chosen if s.loadgen_core != "1")
    loadgen_where = f" (to core 0 in {moved})" if moved else ""
    nginx_where = f" (alone in {moved})" if moved else ""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `ops/bench/run` on {report['date']}; reproduce with that one command from a"
        " clean clone (docs/design.md §10). Raw figures: `ops/bench/results/latest.json` in the"
        " checkout that ran it (not committed).",
        "",
        f"- machine: {m['cpu']}, Linux {m['kernel']}, Docker {m['docker']}; its speed in this"
        f" run: {m.get('reference_loop_ns', '-')} ns per iteration of a fixed CPython loop on"
        " core 0 (`REFERENCE_LOOP`; lower is faster: this VM's speed changes from day to day,"
        " and every figure with it)",
        f"- load generator: Node {m['node']} with its own minimal WebSocket client"
        " (`loadgen/wsclient.js`; one process per 10,000 sockets), pinned to core"
        f" 1{loadgen_where}",
        f"- servers pinned to core 0: Parley's chat (its Redis unpinned, its CPU counted as"
        f" Parley's), {m['python']};"
        f" nginx {m['nginx'].split('/')[-1]} on core 1 beside the load generator{nginx_where};"
        f" {m['redis'].split(' v=')[0]} {m['redis'].split(' v=')[-1].split()[0]}",
        "- CPU: the servers' cgroups (`cpuacct.usage`, or `cpu.stat` on cgroup v2) over the"
        " measured window, Redis included"
        " for Parley; per delivery = CPU / messages received by clients; per handshake = CPU /"
        " sockets opened. Memory per socket: growth of the servers' resident set / open sockets.",
        "- latency: from the sender's write to the receiver's read, in the load generator"
        " (one monotonic clock); handshakes: from connect to the 101. Loadgen lag: how late"
        " the load generator's own event loop ran a 1 ms timer during a fan-out window, or while"
        " a connect or join storm connected (`monitorEventLoopDelay`): latency that the server"
        " did not cause, and in a storm how long sockets went unread. Core busy: all"
        " of a pinned core's time over the window, whoever used it (the servers, nginx, the"
        " load generator, the kernel's interrupt and softirq work, Docker's daemons; from"
        " `/proc/stat`): near 100 %, messages queue. Ref loop: the machine's speed just before"
        " the window (`REFERENCE_LOOP` on core 0, as above).",
        "- Docker's health probes: none during a window, for any service (an exec wakes runc,"
        " containerd and dockerd on either core); the run execs each shipped probe itself"
        " before measuring.",
        "",
        "## Summary (the README's table)",
        "",
        "CPU per unit, rate reached and p99 latency; the ratio is Parley's CPU per unit to Node"
        " ws's (lower is better). Scenarios: `ops/bench/run --list`; every figure below.",
        "",
        summary_table(report["results"]),
        "",
        "## Every figure",
        "",
        table(report["results"]),
        "",
        "## Targets (issue 14)",
        "",
        *targets(report["results"]),
        "",
        "## Notes",
        "",
    ]
    for s in chosen:
        if s.notes:
            lines.append(f"- {s.title}: {'; '.join(s.notes)}.")
    for note in report["yardstick_notes"]:
        lines.append(f"- Yardstick shortfall, {note}.")
    return "\n".join(lines) + "\n"


def targets(results: list[dict[str, Any]]) -> list[str]:
    """Each target of issue 14 beside what this run measured: met or missed, never hidden."""

    def line(name: str, met: bool, measured: str) -> str:
        return f"- scenario {name}: **{'met' if met else 'missed'}** ({measured})"

    out = []
    if p := find(results, "fanout", PARLEY):
        n = find(results, "fanout", NODE)
        if n and (ratio := ratio_to_node(results, p)) is not None:
            out.append(line("1. CPU per delivery at most 0.8x Node ws", ratio <= 0.8,
                            f"{ratio:.2f}x: {p['cpu_us_per_unit']} vs {n['cpu_us_per_unit']} µs"))
        p99 = p["latency_ms"]["p99"]
        out.append(line("1. p99 under 25 ms direct", p99 < 25, f"p99 {p99} ms at "
                        f"{fmt(p['deliveries_per_s'], 0)} deliveries/s; server core "
                        f"{p['server_cpu_pct']}% in the chat's cgroup"))
        out.append(line("1. nothing lost", not p["lost"] and not p["duplicated"],
                        f"lost {p['lost']}, duplicated {p['duplicated']}"))
    if p := find(results, "capacity", PARLEY_NGINX):
        held = p["open"] == p["clients"] and not p["failures"]
        out.append(line("3. 20,000 sockets held through nginx", held,
                        f"{fmt(p['open'])} open, failures {p['failures'] or 0}"))
        kib = p.get("mem_per_socket_kib") or 0
        out.append(line("3. at most 16 KiB of chat memory per socket", kib <= 16, f"{kib} KiB"))
    for target in (PARLEY_NGINX, PARLEY):
        if p := find(results, "connect", target):
            rate = p["handshakes_per_s"]
            out.append(line(f"4. no failed handshake, >= 3,000/s ({target.name})",
                            not p["failures"] and rate >= 3000,
                            f"{fmt(rate, 0)}/s, failures {p['failures'] or 0}"))
    if p := find(results, "join", PARLEY):
        n = find(results, "join", NODE)
        frames = p["frames"].get("presence", 0)
        versus = f" vs {fmt(n['frames'].get('join', 0))} join frames for Node ws" if n else ""
        out.append(line("5. presence coalesced, every member list right",
                        p["complete_member_lists"] == p["clients"],
                        f"{p['complete_member_lists']} of {p['clients']} lists right,"
                        f" {fmt(frames)} presence frames{versus}"))
    if p := find(results, "token-paced", WEBSITE):
        rate, p99 = p["handshakes_per_s"] or 0, p["handshake_ms"]["p99"]
        out.append(line("6. at least 500 tokens/s with p99 under 50 ms", rate >= 500 and p99 < 50,
                        f"{fmt(rate, 0)} tokens/s, p99 {p99} ms"))
    return out


def summary(r: dict[str, Any]) -> str:
    return (f"{summary_figures(r)}, cores busy {r['core_busy_pct']}%,"
            f" ref loop {fmt(r.get('reference_loop_ns'))} ns")  # fmt: skip


def summary_figures(r: dict[str, Any]) -> str:
    if r["per"] == "delivery":
        return (f"{fmt(r['deliveries_per_s'], 0)} deliveries/s, {r['cpu_us_per_unit']} µs CPU each,"
                f" p50 {r['latency_ms']['p50']} p99 {r['latency_ms']['p99']} ms,"
                f" lost {r['lost']} dup {r['duplicated']}, open {r['open']},"
                f" mem/socket {r.get('mem_per_socket_kib')} KiB,"
                f" server {r['server_cpu_pct']}% loadgen {r['loadgen_cpu_pct']}%,"
                f" loadgen lag p99 {lag_p99(r)} ms")  # fmt: skip
    return (f"{fmt(r['handshakes_per_s'], 0)} {r['per']}s/s, {r['cpu_us_per_unit']} µs CPU each,"
            f" p50 {r['handshake_ms']['p50']} p99 {r['handshake_ms']['p99']} ms,"
            f" failures {r['failures']}, complete lists {r['complete_member_lists']},"
            f" frames {r.get('frames', {})}, server {r['server_cpu_pct']}%"
            + ("" if lag_p99(r) is None else
               f", loadgen lag p99 {lag_p99(r)} max {r['loadgen_lag_ms']['max']} ms"))  # fmt: skip
