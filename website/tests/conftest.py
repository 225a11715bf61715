"""Fixtures: the process set-up, one app with its own settings and lifespan, browsers, a db."""

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import Browser, open_browser, running
from website.app import create_app
from website.config import Settings
from website.logging import configure_logging
from website.services import Services
from website.tokens import TokenIssuer
from website.tracing import configure_tracer_provider


@pytest.fixture(scope="session", autouse=True)
def tracer_provider() -> Iterator[TracerProvider]:
    """What __main__ does for the process: JSON logs and the tracer provider, recording
    (test_observability collects the spans, as an exporter would)."""
    configure_logging()
    provider = configure_tracer_provider(recording=True)
    yield provider
    provider.shutdown()


@pytest.fixture(scope="session")
def settings() -> Settings:
    # The stack's database, signing key and bus (no chat replica listens on it here).
    return Settings()


@pytest.fixture(scope="session")
async def app(tracer_provider: TracerProvider, settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(create_app(settings)) as started:
        yield started


@pytest.fixture(scope="session")
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
def issuer(services: Services) -> TokenIssuer:
    return services.issuer


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[Browser]:
    async with open_browser(app) as person:
        yield person


@pytest.fixture
async def user(browser: Browser) -> Browser:
    response = await browser.register()
    assert response.status_code == 303
    return browser


@pytest.fixture
async def other(app: FastAPI) -> AsyncIterator[Browser]:
    async with open_browser(app) as person:
        assert (await person.register()).status_code == 303
        yield person


@pytest.fixture
async def db(services: Services) -> AsyncIterator[AsyncSession]:
    async with services.sessionmaker() as session:
        yield session
