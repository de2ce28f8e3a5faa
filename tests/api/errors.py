"""What every error response of the API looks like."""

from __future__ import annotations

from typing import Any

from api.errors import MEDIA_TYPE


def assert_error(
    response: Any,
    status: int,
    *,
    pointer: str | None = None,
    parameter: str | None = None,
    code: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """A JSON:API error document with ``status``; returns its first error.

    ``pointer``/``parameter``/``code`` must match that error exactly, ``detail`` be in it.
    """
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == MEDIA_TYPE
    document = response.json()
    assert set(document) == {"errors"}, document
    for error in document["errors"]:
        assert {"title", "detail", "code", "status"} <= set(error), error
        assert error["status"] == str(status)
        assert all(error[key] for key in ("title", "detail", "code")), error
    first: dict[str, Any] = document["errors"][0]
    if pointer is not None:
        assert first["source"] == {"pointer": pointer}, first
    if parameter is not None:
        assert first["source"] == {"parameter": parameter}, first
    if code is not None:
        assert first["code"] == code, first
    if detail is not None:
        assert detail in first["detail"], first
    return first
