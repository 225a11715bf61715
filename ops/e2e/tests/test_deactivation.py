"""An operator deactivates an account (`python -m website.admin deactivate EMAIL`): every
socket of the user, in every room and tab, closes with 4401 within 5 s, others keep talking,
and the account can no longer log in (docs/design.md §4).

The command runs in the website's container, which this runner cannot reach: the test writes
the email to ARTIFACTS_DIR/deactivate-request.txt and ./ops/test, watching for it, runs the
command and writes the time it finished to deactivate-done.txt. Run with `pytest -m
deactivation` while something plays the operator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from support import REVOKED_WITHIN_S, SESSION_ENDED, Client, Join, Settings, closed_with, still_open

OPERATOR_WAIT_S = 90.0  # for the runner to notice the request and run the command


def finished_at(done: Path) -> float | None:
    """When the operator's command finished, once the runner has written it."""
    text = done.read_text().strip() if done.exists() else ""
    return float(text) if text else None


async def operator_finished(done: Path, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while (at := finished_at(done)) is None:
        assert time.monotonic() < deadline, f"{done} never written"
        await asyncio.sleep(0.2)
    return at


@pytest.mark.deactivation
async def test_deactivation_closes_every_socket_of_the_user(
    alice: Client, bob: Client, room: str, join: Join, settings: Settings
) -> None:
    tabs = [await join(alice, room), await join(alice, room)]
    bob_tab = await join(bob, room)
    done = settings.artifacts_dir / "deactivate-done.txt"
    done.unlink(missing_ok=True)
    (settings.artifacts_dir / "deactivate-request.txt").write_text(alice.email)

    codes = await asyncio.gather(*(closed_with(tab, OPERATOR_WAIT_S) for tab in tabs))
    closed_at = time.time()
    assert codes == [SESSION_ENDED, SESSION_ENDED], codes
    finished_at = await operator_finished(done)
    late = closed_at - finished_at
    assert late <= REVOKED_WITHIN_S, f"closed {late:.1f} s after the command finished"

    await still_open(bob_tab, await join(bob, room))
    response = await alice.login(expect=None)
    assert response.status_code == 400, "a deactivated account logged in"
