"""Live check of the monitoring services (PARLEY_OBSERVABILITY=1), through nginx like an
operator's browser.

/ops/prometheus/ refuses missing or wrong credentials; with the generated ones every scrape
target (website, each chat replica, the nginx and postgres exporters, prometheus) is up
within WAIT seconds (default 90), the alerting and recording rules are loaded and evaluated,
the broadcast-latency quantile queries succeed, the classic UI is served and Prometheus' own
/metrics stays hidden. Needs the stack up with PARLEY_OBSERVABILITY=1; run explicitly:
`pytest checks/test_observability.py`. The tests run in file order: the rule checks come
after the wait for the targets."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from checks.ops_access import Credentials

PREFIX = "/ops/prometheus"
EXPECTED_JOBS = {"website", "chat", "nginx", "postgres", "prometheus"}
TARGETS_WAIT = float(os.environ.get("WAIT", "90"))  # seconds for every target to be up
RULE_WAIT = 30.0  # seconds for a recording rule's first evaluation
P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate(chat_broadcast_duration_seconds_bucket[1m])))"
)


class Api:
    """Prometheus' HTTP API through nginx, logged in; answers the `data` of a success."""

    def __init__(self, http: httpx.Client, auth: httpx.BasicAuth) -> None:
        self.http = http
        self.auth = auth

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(f"{PREFIX}/api/v1/{path}", params=params, auth=self.auth)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        body = response.json()
        assert body.get("status") == "success", f"{path}: {body}"
        return body["data"]

    def query(self, promql: str) -> Any:
        return self.get("query", query=promql)


@pytest.fixture(scope="module")
def api(http: httpx.Client, credentials: Credentials) -> Api:
    return Api(http, credentials.auth())


def test_password_generated(credentials: Credentials) -> None:
    length = credentials.length
    assert length >= 32, f"the password in {credentials.source} has only {length} characters"


def test_401_without_credentials(http: httpx.Client) -> None:
    response = http.get(f"{PREFIX}/api/v1/targets")
    assert response.status_code == 401, f"without credentials: {response.status_code}, not 401"
    challenge = response.headers.get("www-authenticate", "no WWW-Authenticate header")
    assert "Basic" in challenge, f"nginx does not ask for basic auth: {challenge}"


@pytest.mark.parametrize("wrong", ["password", "user"])
def test_401_with_wrong_credentials(
    http: httpx.Client, credentials: Credentials, wrong: str
) -> None:
    auth = credentials.wrong_password() if wrong == "password" else credentials.wrong_user()
    response = http.get(f"{PREFIX}/api/v1/targets", auth=auth)
    assert response.status_code == 401, f"with a wrong {wrong}: {response.status_code}, not 401"


def test_every_target_up(api: Api) -> None:
    deadline = time.monotonic() + TARGETS_WAIT
    while True:
        try:
            active = api.get("targets", state="active")["activeTargets"]
            summary = sorted(
                f"{t['labels']['job']}/{t['labels']['instance']}={t['health']}" for t in active
            )
            jobs = {t["labels"]["job"] for t in active}
            all_up = jobs >= EXPECTED_JOBS and all(t["health"] == "up" for t in active)
        except (AssertionError, httpx.HTTPError, ValueError, KeyError) as exc:  # still starting
            summary, all_up = [str(exc)[:300]], False
        if all_up or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all_up, f"not every target up within {TARGETS_WAIT:.0f}s: {', '.join(summary)}"


def test_rules_loaded(api: Api) -> None:
    rules = [rule for group in api.get("rules")["groups"] for rule in group["rules"]]
    alerts = sorted(rule["name"] for rule in rules if rule["type"] == "alerting")
    recorded = sorted(rule["name"] for rule in rules if rule["type"] == "recording")
    unhealthy = [rule["name"] for rule in rules if rule.get("health") not in ("ok", "unknown")]
    assert len(alerts) >= 6, f"only {len(alerts)} alerting rules loaded: {alerts}"
    assert len(recorded) >= 6, f"only {len(recorded)} recording rules loaded: {recorded}"
    assert not unhealthy, f"rules failing to evaluate: {unhealthy}"


def test_recording_rule_evaluated(api: Api) -> None:
    # chat:connections_active:sum always has a value once chat is scraped.
    deadline = time.monotonic() + RULE_WAIT
    while not (samples := api.query("chat:connections_active:sum")["result"]):
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    assert samples, f"chat:connections_active:sum has no sample after {RULE_WAIT:.0f}s"


def test_broadcast_p99_query(api: Api) -> None:
    # Empty or NaN when nobody has chatted yet: the query itself must work.
    data = api.query(P99_QUERY)
    assert data["resultType"] == "vector", f"{P99_QUERY}: {data}"


def test_broadcast_p99_recording_rule_query(api: Api) -> None:
    data = api.query("chat:broadcast_duration_seconds:p99_5m")
    assert data["resultType"] == "vector", f"chat:broadcast_duration_seconds:p99_5m: {data}"


def test_classic_ui_served(http: httpx.Client, credentials: Credentials) -> None:
    response = http.get(f"{PREFIX}/classic/graph", auth=credentials.auth())
    assert response.status_code == 200, f"classic UI: {response.status_code}, not 200"


def test_prometheus_metrics_not_routed(http: httpx.Client, credentials: Credentials) -> None:
    response = http.get(f"{PREFIX}/metrics", auth=credentials.auth())
    assert response.status_code == 404, f"{PREFIX}/metrics: {response.status_code}, not 404"
