"""The JSON:API response class."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from api.errors import MEDIA_TYPE


class JsonApiResponse(JSONResponse):
    media_type = MEDIA_TYPE
