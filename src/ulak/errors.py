"""Domain errors. Each carries an HTTP status; they are rendered in one place (app.py)."""

from __future__ import annotations

from typing import Any


class UlakError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(UlakError):
    status_code = 404
    code = "not_found"


class Unauthorized(UlakError):
    status_code = 401
    code = "unauthorized"


class Invalid(UlakError):
    status_code = 422
    code = "invalid"


class Conflict(UlakError):
    status_code = 409
    code = "conflict"
