"""Bench: /healthz latency while logins arrive at a steady rate (docs/design.md §3, hashing).

Run inside the compose network, straight at the website (not through nginx, whose per-IP
limits would shape the burst):

    docker compose -p NAME -f docker-compose.yml -f ops/compose.test.yml run --rm \
        -v "$PWD/ops/bench:/bench:ro" e2e python /bench/login_burst.py

Every login is a correct one (a failed one would soon meet the per-account throttle and cost
nothing), each from a fresh cookie jar, so argon2 runs on every request. Bounded: RATE * SECONDS
logins, each with a timeout, and the whole run within SECONDS + 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
import uuid

import httpx

META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
PASSWORD = "bench password 12345"


async def csrf(http: httpx.AsyncClient, path: str) -> str:
    response = await http.get(path)
    match = META_CSRF.search(response.text)
    assert match, f"no csrf token on {path}: {response.status_code}"
    return match.group(1)


async def register(base: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        data = {"email": email, "display_name": "Bench", "password": PASSWORD}
        data["csrf_token"] = await csrf(http, "/register")
        response = await http.post("/register", data=data)
        assert response.status_code == 303, (response.status_code, response.text[:300])
    return email


async def one_login(base: str, email: str, token: str, results: list[int]) -> None:
    # A fresh jar holding only the anonymous CSRF cookie: the login is always a first login.
    cookies = {"parley_csrf": token}
    client = httpx.AsyncClient(base_url=base, timeout=10, trust_env=False, cookies=cookies)
    async with client as http:
        try:
            data = {"email": email, "password": PASSWORD, "csrf_token": token}
            results.append((await http.post("/login", data=data)).status_code)
        except httpx.HTTPError:
            results.append(0)


async def logins(base: str, email: str, rate: float, seconds: float, results: list[int]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        await csrf(http, "/login")
        token = http.cookies["parley_csrf"]
    tasks = []
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_login(base, email, token, results)))
    await asyncio.gather(*tasks)


async def probe(base: str, stop: asyncio.Event, latencies: list[float], interval: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                response = await http.get("/healthz")
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
            await asyncio.sleep(interval)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://website:8000")
    parser.add_argument("--rate", type=float, default=20.0, help="logins per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--probe-interval", type=float, default=0.05)
    args = parser.parse_args()

    email = await register(args.base)
    idle: list[float] = []
    stop = asyncio.Event()
    quiet = asyncio.create_task(probe(args.base, stop, idle, args.probe_interval))
    await asyncio.sleep(3)
    stop.set()
    await quiet

    latencies: list[float] = []
    statuses: list[int] = []
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(args.base, stop, latencies, args.probe_interval))
    t0 = time.perf_counter()
    async with asyncio.timeout(args.seconds + 30):
        await logins(args.base, email, args.rate, args.seconds, statuses)
    elapsed = time.perf_counter() - t0
    stop.set()
    await probing

    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    print(f"idle   /healthz: n={len(idle)} p50={pct(idle, .5):.1f} ms p99={pct(idle, .99):.1f} ms")
    print(
        f"burst  /healthz: n={len(latencies)} p50={pct(latencies, .5):.1f} ms "
        f"p99={pct(latencies, .99):.1f} ms max={max(latencies):.1f} ms "
        f"mean={statistics.fmean(latencies):.1f} ms"
    )
    print(f"logins: {len(statuses)} in {elapsed:.1f} s at {args.rate}/s target; statuses {counts}")


if __name__ == "__main__":
    asyncio.run(main())
