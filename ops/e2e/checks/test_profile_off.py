"""With monitoring off (no PARLEY_OBSERVABILITY=1), nginx still starts and serves the site, and
/ops/prometheus/ answers the friendly 503 page (after basic auth) instead of failing.

Needs the stack up without PARLEY_OBSERVABILITY=1; run explicitly:
`pytest checks/test_profile_off.py`."""

from __future__ import annotations

import socket

import httpx
import pytest

from checks.ops_access import Credentials


def test_prometheus_not_running() -> None:
    # Compose's DNS knows only running containers: a name that resolves means monitoring is on.
    try:
        found = socket.getaddrinfo("prometheus", 9090)
    except socket.gaierror:
        return
    addresses = sorted({str(info[4][0]) for info in found})
    pytest.fail(f"prometheus is running at {addresses}: start without PARLEY_OBSERVABILITY=1")


def test_site_served(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200, f"GET /: {response.status_code}, not 200"
    assert "Parley" in response.text, f"GET / is not Parley's page: {response.text[:200]}"


def test_prometheus_still_asks_for_credentials(http: httpx.Client) -> None:
    response = http.get("/ops/prometheus/")
    assert response.status_code == 401, f"without credentials: {response.status_code}, not 401"


def test_prometheus_answers_503(http: httpx.Client, credentials: Credentials) -> None:
    response = http.get("/ops/prometheus/", auth=credentials.auth())
    assert response.status_code == 503, f"/ops/prometheus/: {response.status_code}, not 503"


def test_503_is_the_friendly_page(http: httpx.Client, credentials: Credentials) -> None:
    response = http.get("/ops/prometheus/", auth=credentials.auth())
    assert "briefly unavailable" in response.text, (
        f"/ops/prometheus/ ({response.status_code}) is not the friendly page: {response.text[:200]}"
    )
