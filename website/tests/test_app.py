"""create_app builds independent apps; the lifespan opens and closes their collaborators."""

from tests.utils import open_browser, running
from website.app import create_app
from website.config import Settings
from website.services import Services


async def test_two_apps_each_with_their_own_collaborators(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings.model_copy())
    async with running(first), running(second):
        one: Services = first.state.services
        two: Services = second.state.services
        assert one.engine is not two.engine and one.http is not two.http
        for app in (first, second):
            async with open_browser(app) as browser:
                assert (await browser.http.get("/readyz")).json() == {"status": "ok"}
    assert one.http.is_closed and two.http.is_closed
    assert one.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
