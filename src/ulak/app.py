"""The web application: API, customer pages, dev inbox, and (optionally) the workers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from ulak.catalog.api import router as back_in_stock_router
from ulak.catalog.pages import router as back_in_stock_pages_router
from ulak.channels.pages import dev_inbox_router
from ulak.clock import Clock, SystemClock
from ulak.config import Settings, get_settings
from ulak.coupons.api import router as coupons_router
from ulak.customers.api import router as customers_router
from ulak.db import Database
from ulak.errors import UlakError
from ulak.events.api import router as events_router
from ulak.events.inbox import Inbox
from ulak.integrations.service import SecretCache
from ulak.integrations.shopify import WEBHOOK_PATH as SHOPIFY_WEBHOOK_PATH
from ulak.integrations.shopify import router as shopify_router
from ulak.integrations.woocommerce import router as woocommerce_router
from ulak.jobs import job_context
from ulak.messages.pages import unsubscribe_router
from ulak.orders.pages import router as tracking_router
from ulak.preferences.api import router as privacy_requests_router
from ulak.preferences.pages import router as preferences_router
from ulak.privacy.api import router as privacy_router
from ulak.returns.api import router as returns_router
from ulak.returns.pages import router as returns_page_router
from ulak.reviews.api import router as reviews_router
from ulak.reviews.pages import UPLOAD_PATH as REVIEW_UPLOAD_PATH
from ulak.reviews.pages import router as review_pages_router
from ulak.segment.api import router as segment_router
from ulak.sms.api import router as sms_reports_router
from ulak.sms.pages import dev_sms_router, short_link_router
from ulak.sqlite import DatabaseLocked
from ulak.stores.service import KeyCheck
from ulak.suppressions.api import router as inbound_router
from ulak.surveys.api import router as surveys_router
from ulak.surveys.pages import router as survey_pages_router
from ulak.web.links import BadLink
from ulak.web.pages import bad_link_page, browser_language, error_page, texts_for
from ulak.webhooks.api import router as webhooks_router
from ulak.worker import WorkerProcesses, Workers, listen_for_events

log = logging.getLogger(__name__)

# What a 503 asks clients to wait before they retry.
RETRY_AFTER_SECONDS = 5


class BodyTooLarge(UlakError):
    status_code = 413
    code = "too_large"


class BodyLimit:
    """Refuse request bodies over the limit, whether or not they declare their length."""

    def __init__(
        self, app: ASGIApp, limit: int, own_limits: Sequence[re.Pattern[str]] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        # Paths whose routes count their bodies against a larger limit of their own while
        # reading them (the review form's photos).
        self.own_limits = own_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(p.match(scope["path"]) for p in self.own_limits):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(f"the body is larger than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": {
                    "code": "too_large",
                    "message": f"the body is larger than {self.limit} bytes",
                }
            },
            status_code=413,
        )
        await response(scope, receive, send)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/v1/") and "text/html" in request.headers.get(
        "accept", ""
    )


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    run_workers: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    database = database or Database(
        settings.database_url, lock_timeout=settings.lock_timeout_seconds
    )
    clock = clock or SystemClock()
    ctx = job_context(settings, database, clock)
    workers = Workers(ctx)
    processes = WorkerProcesses(ctx) if run_workers and settings.worker_processes else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        keys_listener = None
        try:
            if not database.is_sqlite:
                keys_listener = asyncio.create_task(app.state.keys.listen())
            if processes is not None:
                processes.start()
            elif run_workers:
                tasks.append(asyncio.create_task(workers.run()))
                if not database.is_sqlite:
                    tasks.append(asyncio.create_task(listen_for_events(database.url, workers)))
            yield
        finally:
            workers.stop()
            if keys_listener is not None:
                keys_listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keys_listener
            if processes is not None:
                await processes.stop()
            for task in tasks[1:]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            await ctx.sender.close(grace=10)
            await app.state.inbox.close()
            await database.dispose()

    app = FastAPI(
        title="ulak",
        version="0.1.0",
        description="Events in, customer journeys, email out.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ulak API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.state.settings = settings
    app.state.database = database
    app.state.clock = clock
    app.state.workers = workers
    app.state.keys = KeyCheck(database)
    app.state.integration_secrets = SecretCache(database)
    app.state.inbox = Inbox(
        database, clock, on_commit=processes.wake if processes is not None else workers.wake
    )

    @app.exception_handler(UlakError)
    async def domain_error(request: Request, error: UlakError) -> Response:
        if _wants_html(request):
            return error_page(
                request,
                locale=browser_language(request),
                message=error.message,
                status_code=error.status_code,
            )
        body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
        if error.details is not None:
            body["error"]["details"] = error.details
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        return JSONResponse(body, status_code=error.status_code, headers=headers)

    @app.exception_handler(BadLink)
    async def bad_link(request: Request, error: BadLink) -> Response:
        return bad_link_page(request, error)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, error: RequestValidationError) -> Response:
        details = [
            {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        return JSONResponse(
            {"error": {"code": "invalid", "message": "the request is invalid", "details": details}},
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(sqlite3.OperationalError)
    async def database_unavailable(request: Request, error: Exception) -> Response:
        # A database that is locked past the wait, restarting or unreachable is a moment's
        # outage, not a fault of the request: clients retry after the pause (as Stripe and
        # every HTTP client library expect of a 503), and nothing was stored. Any other
        # operational error (a missing table: a schema behind the code) is ours, a 500.
        if not _is_outage(error):
            log.error("database error on %s %s", request.method, request.url.path, exc_info=error)
            return JSONResponse(
                {"error": {"code": "internal", "message": "internal error"}}, status_code=500
            )
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, error)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if _wants_html(request):
            locale = browser_language(request)
            page = error_page(
                request, locale=locale, message=texts_for(locale)["unavailable"], status_code=503
            )
            page.headers.update(headers)
            return page
        return JSONResponse(
            {
                "error": {
                    "code": "unavailable",
                    "message": "the database is unavailable for a moment; nothing was stored,"
                    f" retry after {RETRY_AFTER_SECONDS} s",
                }
            },
            status_code=503,
            headers=headers,
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        async with database.read() as session:
            await session.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.include_router(events_router)
    app.include_router(segment_router)
    # Before the profile's `/customers/{ref:path}`, which would take `.../export` as a ref.
    app.include_router(privacy_requests_router)
    app.include_router(privacy_router)
    app.include_router(customers_router)
    app.include_router(back_in_stock_router)
    app.include_router(back_in_stock_pages_router)
    app.include_router(coupons_router)
    app.include_router(webhooks_router)
    app.include_router(unsubscribe_router)
    app.include_router(preferences_router)
    app.include_router(tracking_router)
    app.include_router(reviews_router)
    app.include_router(review_pages_router)
    app.include_router(short_link_router)
    app.include_router(sms_reports_router)
    app.include_router(inbound_router)
    app.include_router(returns_router)
    app.include_router(returns_page_router)
    app.include_router(surveys_router)
    app.include_router(shopify_router)
    app.include_router(survey_pages_router)
    app.include_router(woocommerce_router)
    if not settings.smtp_url:
        # It shows every store's mail (and SMS) without a login: only to this machine, and
        # only in a development setup (no SMTP: a production install behind a proxy on
        # 127.0.0.1 would publish them).
        if is_loopback(settings.host):
            app.include_router(dev_inbox_router)
            app.include_router(dev_sms_router)
        else:
            log.warning(
                "the dev inbox is not served: ulak listens on %s, beyond this machine, and "
                "the dev inbox shows every store's mail without a login; listen on "
                "127.0.0.1, or set ULAK_SMTP_URL to send real mail",
                settings.host,
            )
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        own_limits=[REVIEW_UPLOAD_PATH, SHOPIFY_WEBHOOK_PATH],
    )
    return app


def _is_outage(error: Exception) -> bool:
    """Whether a database error is the database being locked or out of reach for now."""
    if isinstance(error, PoolTimeout):
        return True
    cause = error.orig if isinstance(error, OperationalError) else error
    if isinstance(cause, DatabaseLocked):
        return True
    if isinstance(cause, sqlite3.OperationalError):
        text_ = str(cause)
        return "locked" in text_ or "busy" in text_ or "unable to open" in text_
    # psycopg's OperationalError: the server is down, restarting, or the connection broke.
    return type(cause).__module__.startswith("psycopg")


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps a page to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
