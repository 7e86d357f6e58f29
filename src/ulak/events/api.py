from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response, status

from ulak.errors import Conflict, Invalid, UlakError
from ulak.events.inbox import Inbox
from ulak.events.schemas import (
    MAX_BATCH,
    Accepted,
    EventIn,
    IngestResult,
    Problem,
    Rejected,
    nul_problems,
    validate_event,
    warnings_of,
)
from ulak.web.deps import CurrentStore

router = APIRouter(prefix="/v1", tags=["events"])


class BadJson(UlakError):
    status_code = 400
    code = "bad_json"


_BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"$ref": "#/components/schemas/EventIn"},
        {
            "type": "object",
            "properties": {
                "events": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/EventIn"},
                    "maxItems": MAX_BATCH,
                }
            },
            "required": ["events"],
        },
    ]
}


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
    summary="Send one event, or a batch of up to 1,000",
)
async def post_events(request: Request, store: CurrentStore) -> Response:
    """Answered 202 once the accepted events are committed. A batch keeps its valid events
    and lists each rejected one with the field path and the reason.

    An `id` the store already has is a duplicate (`"duplicate": true`, nothing stored) when
    the body is the same, and a conflict when it differs: 409 for a single event, a
    rejected entry in a batch."""
    raw_body = await request.body()
    try:
        body = json.loads(raw_body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadJson(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise BadJson("the body is not valid JSON: it is nested too deeply") from error
    if isinstance(body, dict) and "events" in body and "type" not in body:
        raw = body["events"]
        if not isinstance(raw, list):
            raise Invalid(
                "events must be a list",
                details=[Problem(path="events", message="must be a list").model_dump()],
            )
        if not raw:
            raise Invalid(
                "the batch has no events",
                details=[
                    Problem(path="events", message="must hold at least one event").model_dump()
                ],
            )
        if len(raw) > MAX_BATCH:
            raise Invalid(f"a batch holds at most {MAX_BATCH} events, this one has {len(raw)}")
        prefix = "events"
    else:
        raw, prefix = [body], ""
    valid: list[tuple[int, EventIn]] = []
    rejected: list[Rejected] = []
    # JSON carries a NUL only as this escape: the usual body costs one byte search.
    holds_nul = b"\\u0000" in raw_body
    for index, item in enumerate(raw):
        where = f"{prefix}[{index}]" if prefix else ""
        if holds_nul and (nul := nul_problems(item, where)):
            rejected.append(Rejected(index=index, errors=nul))
            continue
        event, problems = validate_event(item, where)
        if event is None:
            rejected.append(Rejected(index=index, errors=problems))
        else:
            valid.append((index, event))
    if not valid:
        problems = [p for r in rejected for p in r.errors]
        raise Invalid(
            "; ".join(f"{p.path}: {p.message}" for p in problems[:5]),
            details=[p.model_dump() for p in problems],
        )
    inbox: Inbox = request.app.state.inbox
    accepted: list[Accepted] = []
    events = dict(valid)
    for answer in await inbox.accept(store.id, valid):
        if isinstance(answer, Accepted):
            where = f"{prefix}[{answer.index}]" if prefix else ""
            answer.warnings = warnings_of(events[answer.index], where)
            accepted.append(answer)
            continue
        problem = answer.problem(f"{prefix}[{answer.index}]" if prefix else "")
        if not prefix:
            raise Conflict(problem.message, details=[problem.model_dump()])
        rejected.append(Rejected(index=answer.index, errors=[problem]))
    rejected.sort(key=lambda r: r.index)
    result = IngestResult(accepted=accepted, rejected=rejected)
    return Response(result.model_dump_json(), status_code=202, media_type="application/json")
