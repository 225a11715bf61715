"""Pagination parameters shared by the rooms page and the API (docs/design.md §3)."""

from typing import Annotated

from fastapi import Depends, Query

from website.deps import AppSettings
from website.rooms import PAGE_LIMIT_MAX, PAGE_MAX


class PageParams:
    def __init__(self, page: int, limit: int) -> None:
        self.page = page
        self.limit = limit


async def page_params(
    settings: AppSettings,
    page: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 1,
    limit: Annotated[int | None, Query(ge=1, le=PAGE_LIMIT_MAX)] = None,
) -> PageParams:
    return PageParams(page, limit or settings.rooms_page_size)


Paging = Annotated[PageParams, Depends(page_params)]
