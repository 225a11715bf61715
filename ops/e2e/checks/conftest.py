"""Fixtures of the operational checks: the operator's credentials and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from checks.ops_access import Credentials, client


@pytest.fixture(scope="module")
def credentials() -> Credentials:
    return Credentials.from_env()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with client() as http:
        yield http
