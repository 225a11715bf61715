"""Outage alerts reach the operator: ChatUnavailable and DatabaseDown fire when every chat
replica, or the database, stops, and resolve once it is back, as Prometheus' API shows and
as Alertmanager's notifications to the test stack's webhook receiver say.

Each test checks one state and waits for it (bounded by ALERT_WAIT seconds, default 120);
stopping and starting services is ops/checks/alerts' job, since this container cannot drive
Docker. Its sequence, one pytest run per step:

    before     → checks/test_alerts.py::test_quiet_before_outages
    stop chat  → checks/test_alerts.py::test_chat_unavailable_fires
    start chat → checks/test_alerts.py::test_chat_unavailable_resolves
    stop db    → checks/test_alerts.py::test_database_down_fires
    start db   → checks/test_alerts.py::test_database_down_resolves

"Quiet": neither alert is pending or firing in Prometheus, and the receiver's latest
notification about each, if any, is a resolved one (a stack that has just started may still be
resolving ChatUnavailable from its own start; Alertmanager would not notify again for an alert
that never resolved). "Fires": Prometheus lists the alert as firing, and the receiver's latest
notification about it is a firing one that arrived after the stop. "Resolves": Prometheus lists
it neither firing nor pending, and the latest notification about it is a resolved one that
arrived after the start. ALERTS_SINCE (Unix time of the stop or start, set by the driver)
bounds "after" and turns the timings printed into seconds since that moment. Needs the test
stack (ops/compose.test.yml: the receiver, the short alert durations) with
PARLEY_OBSERVABILITY=1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from checks.ops_access import Credentials

RECEIVER_URL = os.environ.get("ALERT_RECEIVER_URL", "http://alert-receiver:9095").rstrip("/")
ALERTS_API = "/ops/prometheus/api/v1/alerts"
WAIT = float(os.environ.get("ALERT_WAIT", "120"))
SINCE = float(os.environ.get("ALERTS_SINCE", "0"))  # 0: any notification counts
POLL = 1.0


@dataclass(frozen=True)
class Notice:
    """The receiver's latest notification that mentions one alert."""

    received: float
    status: str  # "firing" while any alert of that name in it fires, else "resolved"
    summary: str
    severity: str
    receiver: str


@dataclass(frozen=True)
class Seen:
    """What Prometheus and the receiver say about one alert at one moment."""

    prometheus: str  # firing, pending or inactive
    notice: Notice | None

    def __str__(self) -> str:
        if self.notice is None:
            return f"Prometheus: {self.prometheus}; receiver: no notification"
        age = f"{self.notice.received - SINCE:.1f}s after ALERTS_SINCE" if SINCE else "received"
        return f"Prometheus: {self.prometheus}; receiver: {self.notice.status} ({age})"


class Watch:
    """Reads Prometheus' alerts (through nginx, logged in) and the receiver's notifications."""

    def __init__(self, http: httpx.Client, auth: httpx.BasicAuth, receiver: httpx.Client) -> None:
        self.http = http
        self.auth = auth
        self.receiver = receiver

    def prometheus_state(self, alertname: str) -> str:
        response = self.http.get(ALERTS_API, auth=self.auth)
        assert response.status_code == 200, f"{ALERTS_API}: {response.status_code}"
        states = {
            alert["state"]
            for alert in response.json()["data"]["alerts"]
            if alert["labels"].get("alertname") == alertname
        }
        return next((s for s in ("firing", "pending") if s in states), "inactive")

    def latest_notice(self, alertname: str) -> Notice | None:
        response = self.receiver.get("/notifications")
        assert response.status_code == 200, f"receiver: {response.status_code}"
        for entry in reversed(response.json()["notifications"]):
            payload: dict[str, Any] = entry["payload"]
            alerts = [a for a in payload["alerts"] if a["labels"].get("alertname") == alertname]
            if alerts:
                firing = any(a["status"] == "firing" for a in alerts)
                return Notice(
                    received=float(entry["received"]),
                    status="firing" if firing else "resolved",
                    summary=str(alerts[0]["annotations"].get("summary", "")),
                    severity=str(alerts[0]["labels"].get("severity", "")),
                    receiver=str(payload.get("receiver", "")),
                )
        return None

    def seen(self, alertname: str) -> Seen:
        return Seen(self.prometheus_state(alertname), self.latest_notice(alertname))

    def wait(self, alertname: str, prometheus: set[str], notified: str) -> Notice:
        """Until Prometheus' state is in `prometheus` and the latest notification is
        `notified` and arrived after SINCE; fails with what was last seen after WAIT seconds."""

        def done(seen: Seen) -> bool:
            notice = seen.notice
            return (
                notice is not None
                and seen.prometheus in prometheus
                and notice.status == notified
                and notice.received >= SINCE
            )

        seen = self.until(alertname, done, f"not {notified}")
        assert seen.notice is not None
        return seen.notice

    def until(self, alertname: str, done: Callable[[Seen], bool], failure: str) -> Seen:
        """Polls until `done` holds for what is seen about `alertname`, at most WAIT s."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                seen = self.seen(alertname)
                if done(seen):
                    return seen
                last = str(seen)
            except (AssertionError, httpx.HTTPError, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {str(exc)[:200]}"
            if time.monotonic() > deadline:
                pytest.fail(f"{alertname}: {failure} within {WAIT:.0f}s; last seen: {last}")
            time.sleep(POLL)


@pytest.fixture(scope="module")
def watch(http: httpx.Client, credentials: Credentials) -> Iterator[Watch]:
    with httpx.Client(base_url=RECEIVER_URL, timeout=5.0, trust_env=False) as receiver:
        yield Watch(http, credentials.auth(), receiver)


def report(alertname: str, notice: Notice) -> None:
    """One line per step for the driver's output (run with -s): the figure the lead asked for."""
    after = f"{notice.received - SINCE:.1f}s after the stop/start" if SINCE else "received"
    print(f"\n{alertname}: {notice.status} notification {after}")


def expect_firing(watch: Watch, alertname: str, summary: str) -> None:
    notice = watch.wait(alertname, prometheus={"firing"}, notified="firing")
    assert notice.summary == summary, f"{alertname}: the operator reads {notice.summary!r}"
    assert notice.severity == "critical", f"{alertname}: severity {notice.severity!r}"
    assert notice.receiver == "webhook", f"{alertname}: routed to {notice.receiver!r}"
    report(alertname, notice)


def expect_resolved(watch: Watch, alertname: str) -> None:
    notice = watch.wait(alertname, prometheus={"inactive"}, notified="resolved")
    report(alertname, notice)


@pytest.mark.parametrize("alertname", ["ChatUnavailable", "DatabaseDown"])
def test_quiet_before_outages(watch: Watch, alertname: str) -> None:
    def quiet(seen: Seen) -> bool:
        return seen.prometheus == "inactive" and (
            seen.notice is None or seen.notice.status == "resolved"
        )

    watch.until(alertname, quiet, "still pending or firing")


def test_chat_unavailable_fires(watch: Watch) -> None:
    expect_firing(watch, "ChatUnavailable", "No chat replica is up")


def test_chat_unavailable_resolves(watch: Watch) -> None:
    expect_resolved(watch, "ChatUnavailable")


def test_database_down_fires(watch: Watch) -> None:
    expect_firing(watch, "DatabaseDown", "PostgreSQL is unreachable")


def test_database_down_resolves(watch: Watch) -> None:
    expect_resolved(watch, "DatabaseDown")
