"""The acknowledgement baseline: a bare FastAPI endpoint that validates an event body as
ulak does (the same pydantic models) and answers 202, storing nothing.

    uvicorn bench.bare_app:app --port 8001
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response

from ulak.events.schemas import validate_event

app = FastAPI()


@app.post("/v1/events", status_code=202)
async def post_events(request: Request) -> Response:
    body = json.loads(await request.body())
    events = body["events"] if isinstance(body, dict) and "events" in body else [body]
    problems = [p for e in events for p in validate_event(e)[1]]
    status = 422 if problems else 202
    return Response(b'{"accepted": []}', status_code=status, media_type="application/json")
