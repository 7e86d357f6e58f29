"""`GET /v1/surveys/scores`: a store's NPS and CSAT over time."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ulak.surveys.service import Period, check_day, scores
from ulak.web.deps import AppClock, AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["surveys"])


@router.get("/surveys/scores", summary="The store's NPS and CSAT over time")
async def get_scores(
    store: CurrentStore,
    database: AppDatabase,
    clock: AppClock,
    start: Annotated[
        date | None, Query(alias="from", description="First day (default: 30 days ago)")
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last day, included (default: today)")
    ] = None,
    by: Annotated[Period, Query(description="day, week (from Monday) or month")] = "week",
) -> dict[str, Any]:
    """NPS (promoters % − detractors %, with the counts) and CSAT (the average score and
    the share satisfied, 4 or 5) of the answers given between the two days (in the store's
    time zone), in total and per period. A replaced answer counts once, at its latest."""
    # Checked before the default start is counted back from the end.
    end = check_day(end, "to") if end is not None else clock.now().date()
    start = check_day(start, "from") if start is not None else end - timedelta(days=29)
    async with database.read() as session:
        return await scores(session, store=store, start=start, end=end, by=by)
