from __future__ import annotations

from fastapi import APIRouter

from ulak.coupons.schemas import CouponOut
from ulak.coupons.service import find_coupon
from ulak.web.deps import AppClock, AppDatabase, CurrentStore

router = APIRouter(prefix="/v1", tags=["coupons"])


@router.get("/coupons/{code}", response_model=CouponOut, summary="One of the store's coupons")
async def get_coupon(
    code: str, store: CurrentStore, database: AppDatabase, clock: AppClock
) -> CouponOut:
    """Whether a code is the store's, what it is worth, until when, whose it is, which
    journey issued it and which order redeemed it. Codes are compared without case; a code
    of another store is not found."""
    async with database.read() as session:
        return await find_coupon(session, store_id=store.id, code=code, now=clock.now())
