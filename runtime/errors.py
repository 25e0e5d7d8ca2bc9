"""Our own exceptions and the one JSON error shape clients rely on (CONTRACT §1).

Backends translate library errors into these; routes and the gateway turn them into responses.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, details: dict | None = None, status: int | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.code, self.message, self.details)


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    """Authenticated, but not allowed: a missing scope or grant, or a role that does not suffice."""

    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Gone(ApiError):
    status, code = 410, "gone"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class RangeNotSatisfiable(ApiError):
    status, code = 416, "range_not_satisfiable"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class Unavailable(ApiError):
    """A dependency (database, broker, store) did not answer in time."""

    status, code = 503, "unavailable"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}
