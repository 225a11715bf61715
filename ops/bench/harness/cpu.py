"""CPU and memory from the kernel's own accounting: each container's cgroup, each pinned core's
busy time (/proc/stat), the servers' resident set; where the kernel's receive work runs
(--steer-rx); a quiet stack before each window; and the machine's speed (a reference loop)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stack import Stack, inspect

CGROUP_ROOTS = [Path("/sys/fs/cgroup/cpuacct/docker"), Path("/sys/fs/cgroup/docker"),
                Path("/sys/fs/cgroup/system.slice")]  # fmt: skip


def find_cgroup_dir(container_id: str) -> Path | None:
    for root in CGROUP_ROOTS:
        for candidate in (root / container_id, root / f"docker-{container_id}.scope"):
            if candidate.is_dir():
                return candidate
    return None


def cgroup_dir(container_id: str) -> Path:
    if (d := find_cgroup_dir(container_id)) is None:
        raise SystemExit(f"bench: no cgroup found for container {container_id[:12]}")
    return d


def cpu_seconds(container_id: str) -> float:
    return cgroup_cpu_seconds(cgroup_dir(container_id))


def cgroup_cpu_seconds(d: Path) -> float:
    if (d / "cpuacct.usage").exists():  # cgroup v1: nanoseconds
        return int((d / "cpuacct.usage").read_text()) / 1e9
    stat = dict(line.split() for line in (d / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) / 1e6  # cgroup v2


def rss_bytes(container_id: str) -> int:
    total = 0
    for pid in (cgroup_dir(container_id) / "cgroup.procs").read_text().split():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


# The cores the bench pins to (compose.bench.yml): core 0 the servers, core 1 the load generator
# and nginx.
PINNED_CORES = ("0", "1")


def core_busy_seconds() -> dict[str, float]:
    """Busy time so far of each pinned core, whoever used it: any process, the kernel's
    interrupt and softirq work (which no container's cgroup may be charged with), Docker's
    daemons. Counted as the time the core was not idle: the kernel measures idle time exactly
    on entry and exit, while its busy figures are sampled at each tick, and undercount
    short bursts (by a fifth in the many-rooms scenario, against the servers' cgroups).
    Time stolen by the hypervisor is not busy either."""
    tick = os.sysconf("SC_CLK_TCK")
    now = time.monotonic()
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if (core := name.removeprefix("cpu")) in PINNED_CORES:
            idle, iowait, steal = (int(fields[i]) for i in (3, 4, 7))
            busy[core] = now - (idle + iowait + steal) / tick
    return busy


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: each service's cgroup, and each pinned core's busy time apart (a
    core's time holds the services' on it, so the two must never be summed)."""

    services: dict[str, float]
    cores: dict[str, float]

    @classmethod
    def take(cls, ids: dict[str, list[str]], loadgen: str | None = None) -> CpuSnapshot:
        services = {svc: sum(cpu_seconds(i) for i in cids) for svc, cids in ids.items()}
        if loadgen is not None:
            services["loadgen"] = cpu_seconds(loadgen)
        return cls(services, core_busy_seconds())

    def since(self, start: CpuSnapshot, servers: tuple[str, ...]) -> dict[str, Any]:
        """The window from `start` to this snapshot, as the result gives it: each service's
        seconds (cpu_s), the servers' sum, and each pinned core's (core_busy_s)."""
        used = {svc: self.services[svc] - start.services[svc] for svc in self.services}
        return {"cpu_s": {svc: round(v, 3) for svc, v in used.items()},
                "core_busy_s": {core: round(v - start.cores[core], 3)
                                for core, v in self.cores.items()},
                "server_cpu_s": round(sum(used[svc] for svc in servers), 3)}  # fmt: skip


def cpuset_mask(cpuset: str) -> str:
    """A cpuset ("0", "0-1,3") as the hex CPU mask sysfs takes."""
    cpus: set[int] = set()
    for part in cpuset.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return format(sum(1 << cpu for cpu in cpus), "x")


def steer_receive_work(sender_id: str, receiver_id: str) -> None:
    """Have the host receive what the sender container sends on the receiver's cores (RPS on
    the host end of each of the sender's veth pairs). Between machines each side's kernel does
    its own receive work; between containers it runs on the sender's core unless steered, so
    the server's core would do its clients' receive work and the load generator's core the
    server's. Needs root."""
    pid = inspect(sender_id, "{{.State.Pid}}")
    cpuset = inspect(receiver_id, "{{.HostConfig.CpusetCpus}}")
    if not cpuset:
        sys.exit(f"bench: --steer-rx: container {receiver_id[:12]} is not pinned to cores")
    mask = cpuset_mask(cpuset)
    by_index = {(dev / "ifindex").read_text().strip(): dev
                for dev in Path("/sys/class/net").iterdir()}  # fmt: skip
    links = list(Path(f"/proc/{pid}/root/sys/class/net").glob("eth*/iflink"))
    host_ends = [by_index.get(link.read_text().strip()) for link in links]
    if not host_ends or None in host_ends:
        sys.exit(f"bench: --steer-rx: container {sender_id[:12]} has an interface that is"
                 " not a veth pair on this host")  # fmt: skip
    queues = [q for end in filter(None, host_ends) for q in end.glob("queues/rx-*/rps_cpus")]
    for queue in queues:
        queue.write_text(mask)
        if int(queue.read_text().replace(",", ""), 16) != int(mask, 16):  # the kernel's say
            sys.exit(f"bench: --steer-rx: {queue} did not take mask {mask}")


# Quiet: the whole stack below this share of one core (idle, without Docker's probes, it takes
# 0.6-0.7 %: the bench's stack for scenario 6, 3 x 20 s).
QUIET_SHARE = 0.10
SETTLE_MAX_S = 120


def stack_cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU used so far by each of the project's running containers, by id."""
    ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                          f"label=com.docker.compose.project={stack.project}"],
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    used = {}
    for container_id in ids:
        d = find_cgroup_dir(container_id)
        try:
            if d is not None:
                used[container_id] = cgroup_cpu_seconds(d)
        except OSError:  # gone since it was listed (a load generator removed)
            continue
    return used


def settle(stack: Stack) -> float:
    """Waits until the stack is quiet, so that no run is measured beside the last one's
    cleanup: a yardstick closing 10,000 sockets keeps core 0 busy for seconds after its run.
    Returns the seconds waited; after SETTLE_MAX_S it gives up and says so."""
    start = time.monotonic()
    before = stack_cpu_seconds(stack)
    while True:
        time.sleep(1)
        now = stack_cpu_seconds(stack)
        busy = sum(now[c] - before[c] for c in now.keys() & before.keys())
        waited = time.monotonic() - start
        if busy < QUIET_SHARE:
            return round(waited, 1)
        if waited > SETTLE_MAX_S:
            print(f"bench: the stack is still busy ({busy:.0%} of a core) after {waited:.0f} s;"
                  " measuring anyway", flush=True)  # fmt: skip
            return round(waited, 1)
        before = now


# This machine's speed varies from day to day, and within a run (a VM), and every figure with
# it: a fixed CPython loop on core 0, in ns per iteration (best of five), lets runs and windows
# be set side by side.
REFERENCE_LOOP = """
import time
N = 2_000_000
def loop():
    total = 0
    for i in range(N):
        total += i
times = []
for _ in range(5):
    t0 = time.perf_counter()
    loop()
    times.append(time.perf_counter() - t0)
print(round(min(times) * 1e9 / N, 1))
"""


def reference_loop_ns(stack: Stack) -> float | None:
    """The machine's speed now: REFERENCE_LOOP in the python-ws yardstick's running container,
    on core 0 with the servers (lower is faster); None if it gave no figure."""
    out = stack.compose("exec", "-T", "python-ws", "python", "-c", REFERENCE_LOOP,
                        capture=True, check=False)  # fmt: skip
    try:
        return float(out)
    except ValueError:
        return None
