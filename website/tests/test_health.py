"""Health endpoints and HTTP metrics."""

from prometheus_client import REGISTRY

from tests.utils import Browser
from website.config import Settings


async def test_health_and_readiness(browser: Browser, settings: Settings) -> None:
    assert (await browser.http.get("/healthz")).json() == {"status": "ok"}
    assert (await browser.http.get("/readyz")).json() == {"status": "ok"}
    # The lifespan hands the app's pool to the gauges.
    assert REGISTRY.get_sample_value("website_db_pool_size") == settings.database_pool_size


async def test_request_metrics_use_route_templates(user: Browser) -> None:
    labels = {"method": "GET", "route": "/rooms/{name}", "status": "404"}
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0
    await user.http.get("/rooms/does-not-exist")
    await user.http.get("/rooms/nor-this-one")
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 2
    raw = {"method": "GET", "route": "/rooms/nor-this-one", "status": "404"}
    assert REGISTRY.get_sample_value("http_requests_total", raw) is None


async def test_unknown_path_gets_a_friendly_page(browser: Browser) -> None:
    # No route matched, so no session lookup ran: the error page must still render.
    page = await browser.http.get("/no/such/page", headers={"accept": "text/html"})
    assert page.status_code == 404 and "Not found" in page.text
    assert '<meta name="csrf-token"' in page.text
    api = await browser.http.get("/api/nope")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
