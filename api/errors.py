"""JSON:API error documents: every error the API returns has this one shape."""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/vnd.api+json"

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "RECORD_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ApiError(Exception):
    """An error response; raise it anywhere in a request."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        code: str | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.code = code or CODES.get(status, "ERROR")
        self.title = title or TITLES.get(status, "Error")

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "title": self.title,
            "detail": self.detail,
            "code": self.code,
            "status": str(self.status),
        }
        if self.pointer is not None:
            error["source"] = {"pointer": self.pointer}
        elif self.parameter is not None:
            error["source"] = {"parameter": self.parameter}
        return error


def error_document(*errors: ApiError) -> dict[str, Any]:
    return {"errors": [error.as_json() for error in errors]}
