"""Password hashing runs off the event loop, with bounded concurrency and a bounded queue."""

import asyncio
import time

import httpx
import pytest

from tests.utils import app_with, open_browser
from website.config import Settings
from website.passwords import Hasher, HasherBusy


async def test_the_loop_keeps_serving_while_passwords_hash() -> None:
    hasher = Hasher(concurrency=2, queue=4)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    hashes = await asyncio.gather(*(hasher.hash(f"password {i}") for i in range(4)))
    elapsed = time.perf_counter() - started
    task.cancel()
    assert all(h.startswith("$argon2id$") for h in hashes)
    # On the loop, four hashes would have stopped the ticker for their whole duration.
    assert ticks >= elapsed / 0.005 / 4, (ticks, elapsed)
    assert (await hasher.verify("password 0", hashes[0]))[0]
    assert not (await hasher.verify("password 0", None))[0]


async def test_beyond_the_queue_bound_hashing_is_refused_then_released() -> None:
    hasher = Hasher(concurrency=1, queue=1)
    first = asyncio.create_task(hasher.hash("one password"))
    second = asyncio.create_task(hasher.hash("two password"))
    await asyncio.sleep(0)  # both have taken their places
    assert hasher.pending == 2
    with pytest.raises(HasherBusy):
        await hasher.hash("three password")
    await asyncio.gather(first, second)
    assert hasher.pending == 0
    assert (await hasher.hash("four password")).startswith("$argon2id$")  # released


async def test_a_busy_hasher_answers_503_with_retry_after(settings: Settings) -> None:
    async with (
        app_with(settings, hash_concurrency=1, hash_queue=0) as app,
        open_browser(app) as person,
    ):
        assert (await person.register()).status_code == 303
        await person.logout()
        token = await person.csrf("/login")
        data = {"email": person.email, "password": "wrong password", "csrf_token": token}

        async def attempt() -> httpx.Response:
            return await person.http.post("/login", data=data, headers={"accept": "text/html"})

        answers = await asyncio.gather(*(attempt() for _ in range(3)))
        statuses = sorted(r.status_code for r in answers)
        assert 503 in statuses and statuses[0] == 400, statuses
        busy = next(r for r in answers if r.status_code == 503)
        assert busy.headers["retry-after"] == "2" and "busy" in busy.text
        assert (await person.login(person.email)).status_code == 303  # released
