"""The benchmark's compose project: its own data, started and probed in order, restarted and
scaled between scenarios, and removed with its data."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .scenarios import Target

ROOT = Path(__file__).resolve().parents[3]  # ops/bench/harness/ → the checkout
BENCH = ROOT / "ops" / "bench"
FILES = ["-f", "docker-compose.yml", "-f", "ops/bench/compose.bench.yml"]
# A variation to compare (e.g. a setting changed): one more compose file layered on top.
if os.environ.get("BENCH_EXTRA_COMPOSE"):
    FILES += ["-f", os.environ["BENCH_EXTRA_COMPOSE"]]


def holds_files(directory: Path) -> bool:
    try:
        return any(directory.iterdir())
    except PermissionError:  # PostgreSQL's by now (mode 0700): it has files
        return True


class Stack:
    def __init__(self, project: str, images: str, port: int) -> None:
        self.project = project
        # Its own database and nginx logs: never the checkout's db/dump/ and nginx/logs/, a
        # Parley's real data (with two PostgreSQL servers on one data directory if it runs).
        self.work = Path(tempfile.mkdtemp(prefix=f"{project}."))
        for sub in ("db", "nginx-logs"):
            (self.work / sub).mkdir()
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "PARLEY_IMAGES": images,
                    "HTTP_PORT": str(port), "HTTP_BIND": "127.0.0.1",
                    "PARLEY_DB_DIR": str(self.work / "db"),
                    "PARLEY_NGINX_LOGS": str(self.work / "nginx-logs")}  # fmt: skip

    def remove(self) -> None:
        """Takes the stack down and deletes its data: the database's files belong to the
        container's postgres user, so they are removed from inside (as ops/reset does)."""
        self.compose("--profile", "bench", "down", "-v", "--remove-orphans", check=False)
        if holds_files(self.work / "db"):
            self.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "bash", "-v",
                         f"{self.work}:/bench-work", "db", "-c",
                         "rm -rf /bench-work/db /bench-work/nginx-logs", check=False)  # fmt: skip
            self.compose("down", "-v", "--remove-orphans", check=False)  # what that run made
        shutil.rmtree(self.work, ignore_errors=True)

    def argv(self, *args: str) -> list[str]:
        """`docker compose` on this project with the bench's files, then `args`."""
        return ["docker", "compose", "-p", self.project, *FILES, *args]

    def compose(self, *args: str, capture: bool = False, check: bool = True) -> str:
        cmd = self.argv(*args)
        done = subprocess.run(cmd, cwd=ROOT, env=self.env, check=False, text=True,
                              stdout=subprocess.PIPE if capture else None)  # fmt: skip
        if check and done.returncode != 0:
            sys.exit(f"bench: failed: {' '.join(cmd)}")
        return done.stdout or ""

    def ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, capture=True).split()

    def target_ids(self, target: Target) -> dict[str, list[str]]:
        """The containers of a target's servers and of the services reported beside them."""
        return {svc: self.ids(svc) for svc in (*target.servers, *target.extra)}


def inspect(container: str, field: str) -> str:
    """One field of a container (`{{.Id}}`, `{{.State.Pid}}`, ...)."""
    out = subprocess.run(["docker", "inspect", "-f", field, container], text=True,
                         capture_output=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"bench: no container {container}")
    return out.stdout.strip()


def stack_container(name: str) -> str:
    return inspect(name, "{{.Id}}")


# Parley's services run without Docker's health probes in the bench (compose.bench.yml): the
# run execs the probe docker-compose.yml ships for each itself, before measuring, never during.
STORES = ("db", "redis")  # started and probed first: what depends on them needs them ready
SERVICES = ("website", "chat", "nginx")  # started once the stores answer
UNPROBED = (*STORES, *SERVICES)
HEALTHY_WITHIN_S = 120


@functools.cache
def shipped_probes(stack: Stack) -> dict[str, list[str]]:
    """The healthcheck command (argv) docker-compose.yml gives each of UNPROBED."""
    config = json.loads(subprocess.run(
        ["docker", "compose", "-p", stack.project, "-f", "docker-compose.yml", "config",
         "--format", "json"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
        check=True).stdout)  # fmt: skip
    probes = {}
    for svc in UNPROBED:
        test = config["services"][svc]["healthcheck"]["test"]
        assert test[0] == "CMD", test  # exec form: the rest is the command's argv
        probes[svc] = test[1:]
    return probes


def wait_healthy(stack: Stack, services: Iterable[str]) -> None:
    """Every container of these services passes its shipped probe (at most HEALTHY_WITHIN_S)."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    probes = shipped_probes(stack)
    for svc in services:
        if svc not in probes:
            continue
        for container in stack.ids(svc):
            probe = ["docker", "exec", container, *probes[svc]]
            while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    sys.exit(f"bench: {svc} ({container[:12]}) not healthy within"
                             f" {HEALTHY_WITHIN_S} s")  # fmt: skip
                time.sleep(0.5)


def scale_chat(stack: Stack, replicas: int) -> None:
    bring_up(stack, ["chat"], replicas)


def restart(stack: Stack, target: Target, chat_replicas: int) -> None:
    services = [svc for svc in target.servers if svc != "redis"]
    stack.compose("restart", *services)
    bring_up(stack, services, chat_replicas)


def bring_up(stack: Stack, services: list[str], chat_replicas: int) -> None:
    """The services up (none recreated; the chat, if named, at `chat_replicas`), each passing
    its shipped probe; then nginx reloads, so that fresh workers resolve the chat anew rather
    than after their 10 s cache of its addresses."""
    scale = ["--scale", f"chat={chat_replicas}"] if "chat" in services else []
    stack.compose("up", "-d", "--wait", "--wait-timeout", "180", "--no-recreate", *scale,
                  *services)  # fmt: skip
    wait_healthy(stack, services)
    stack.compose("kill", "-s", "HUP", "nginx")
    time.sleep(3)
