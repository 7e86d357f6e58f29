"""The Segment-compatible tracking API: `/v1/track`, `/identify`, `/page`, `/screen`,
`/group`, `/alias` and `/batch` (and analytics.js's one-letter paths), so Segment's and
RudderStack's SDKs feed ulak unchanged.

Answers as Segment's: 200 `{"success": true}` once the events are committed; 400 with
`code` and `message` (what the SDKs read and log) for a body that is no JSON or too large;
401 for a missing or wrong key. A batch keeps its good messages and answers 200 even when
some cannot become events (as Segment does; an SDK would retry nothing anyway), listing
those in `skipped` with the reason, which the SDKs ignore and a developer can read.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import APIRouter, Request, Response

from ulak.errors import UlakError, Unauthorized
from ulak.events.inbox import Conflicting, Inbox
from ulak.events.schemas import EventIn, nul_problems, validate_event
from ulak.segment.mapping import (
    KEY_PREFIX,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Skip,
    to_event,
)
from ulak.segment.schemas import SegmentAnswer, Skipped
from ulak.stores.models import Store
from ulak.web.deps import basic_or_bearer_key, store_of_key

router = APIRouter(prefix="/v1", tags=["segment"])

# analytics.js posts from the shop's pages, on another origin: plain CORS, no cookies.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


class BadBody(UlakError):
    status_code = 400
    code = "bad_request"


class TooLarge(UlakError):
    status_code = 413
    code = "too_large"


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers=CORS,
    )


def _error(error: UlakError) -> Response:
    body: dict[str, Any] = {"success": False, "code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return _answer(error.status_code, body)


async def _body(request: Request) -> bytes:
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > MAX_BATCH_BYTES:
            # Segment answers 400 for a body over its limit; so do we.
            raise BadBody(f"the body is larger than {MAX_BATCH_BYTES} bytes")
        return raw
    if encoding != "gzip":
        raise BadBody(f"Content-Encoding {encoding!r} is not supported; send gzip or none")
    # Decompressed in one bounded step: a gzip bomb stops at the limit, its rest unread.
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
    except zlib.error as error:
        raise BadBody(f"the body is not valid gzip: {error}") from error
    if len(body) > MAX_BATCH_BYTES:
        raise TooLarge(f"the body is larger than {MAX_BATCH_BYTES} bytes once decompressed")
    if not inflater.eof:
        raise BadBody("the gzip body ends before its end")
    return body


def _parse(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadBody(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise BadBody("the body is not valid JSON: it is nested too deeply") from error
    if not isinstance(parsed, dict):
        raise BadBody("the body must be a JSON object")
    return parsed


async def _store(request: Request, body: dict[str, Any]) -> Store:
    key = basic_or_bearer_key(request)
    if key is None:
        # analytics.js (and Segment's plain HTTP API) may name the key in the body.
        write_key = body.get("writeKey")
        if not isinstance(write_key, str) or not write_key:
            raise Unauthorized(
                "send the store's API key as the write key: the user of HTTP Basic auth"
                " (or 'writeKey' in the body)"
            )
        key = write_key
    return await store_of_key(request, key)


async def ingest(request: Request, kind: str | None) -> Response:
    try:
        raw = await _body(request)
        body = _parse(raw)
        store = await _store(request, body)
        if kind is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise BadBody("a batch is an object with a list of messages under 'batch'")
        else:
            messages = [body]
        return await _accept(
            request,
            store,
            kind,
            messages,
            body,
            measure=len(raw) > MAX_MESSAGE_BYTES,
            # JSON can only carry a NUL escaped; PostgreSQL's jsonb and text hold none.
            nul=b"\\u0000" in raw,
        )
    except UlakError as error:
        return _error(error)


async def _accept(
    request: Request,
    store: Store,
    kind: str | None,
    messages: list[Any],
    body: dict[str, Any],
    *,
    measure: bool,
    nul: bool,
) -> Response:
    single = kind is not None
    shared = body.get("context") if kind is None else None
    valid: list[tuple[int, EventIn]] = []
    skipped: list[Skipped] = []
    for index, message in enumerate(messages):
        message_id = message.get("messageId") if isinstance(message, dict) else None
        try:
            # A message can only pass 32 KB when the whole body does: most need no count.
            if measure and len(json.dumps(message).encode()) > MAX_MESSAGE_BYTES:
                raise Skip(f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
            if isinstance(shared, dict) and isinstance(message, dict):
                # The batch's context is every message's, under what each says itself.
                own = message.get("context")
                if own is None or isinstance(own, dict):
                    message = {**message, "context": {**shared, **(own or {})}}
            if nul and nul_problems(message):
                raise Skip("the message holds a NUL character (\\u0000), which no field may")
            mapped = to_event(message, kind=kind)
        except Skip as error:
            skipped.append(Skipped(index=index, message_id=_shown(message_id), reason=str(error)))
            continue
        event, problems = validate_event(mapped.event, own_keys=KEY_PREFIX)
        if event is None:
            reason = f"mapped to {mapped.event.get('type')}: " + "; ".join(
                f"{p.path}: {p.message}" for p in problems
            )
            skipped.append(Skipped(index=index, message_id=_shown(message_id), reason=reason))
            continue
        valid.append((index, event))
    if valid:
        inbox: Inbox = request.app.state.inbox
        for stored in await inbox.accept(store.id, valid, source="segment"):
            if isinstance(stored, Conflicting):
                skipped.append(
                    Skipped(
                        index=stored.index,
                        message_id=stored.key.removeprefix(KEY_PREFIX),
                        reason="a message with this messageId was already accepted with a"
                        " different body; send a new messageId for a new message",
                    )
                )
    skipped.sort(key=lambda s: s.index)
    if single and skipped:
        reason = skipped[0].reason
        status = 409 if "already accepted" in reason else 400
        return _answer(
            status,
            {
                "success": False,
                "code": "conflict" if status == 409 else "invalid",
                "message": reason,
            },
        )
    result = SegmentAnswer(success=True, skipped=skipped).model_dump()
    if not skipped:
        del result["skipped"]  # Segment's own answer, exactly
    return _answer(200, result)


def _shown(message_id: Any) -> str | None:
    return str(message_id)[:200] if isinstance(message_id, str | int) else None


_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {
            "type": "string",
            "enum": ["track", "identify", "page", "screen", "group", "alias"],
        },
        "messageId": {"type": "string"},
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "previousId": {"type": "string"},
        "groupId": {"type": "string"},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
    },
}
_BATCH: dict[str, Any] = {
    "type": "object",
    "properties": {"batch": {"type": "array", "items": _MESSAGE}, "context": {"type": "object"}},
    "required": ["batch"],
}


def _route(path: str, kind: str | None, summary: str) -> None:
    async def post(request: Request) -> Response:
        return await ingest(request, kind)

    async def preflight() -> Response:
        return Response(status_code=204, headers=CORS)

    router.add_api_route(
        path,
        post,
        methods=["POST"],
        summary=summary,
        response_model=SegmentAnswer,
        name=f"segment_{path.strip('/')}",
        include_in_schema=len(path) > 2,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _MESSAGE if kind else _BATCH}},
            }
        },
    )
    router.add_api_route(
        path,
        preflight,
        methods=["OPTIONS"],
        include_in_schema=False,
        name=f"segment_{path.strip('/')}_preflight",
    )


for _path, _kind in (
    ("/track", "track"),
    ("/identify", "identify"),
    ("/page", "page"),
    ("/screen", "screen"),
    ("/group", "group"),
    ("/alias", "alias"),
    ("/batch", None),
    ("/import", None),
    # analytics.js (analytics-next) posts to the type's first letter, batches to /b.
    ("/t", "track"),
    ("/i", "identify"),
    ("/p", "page"),
    ("/s", "screen"),
    ("/g", "group"),
    ("/a", "alias"),
    ("/b", None),
):
    _route(_path, _kind, f"Segment-compatible {_kind or 'batch'} (Basic auth: the key as user)")
