"""The one exception the client raises."""

from __future__ import annotations

import json
from typing import Optional


class RecoError(Exception):
    """An error answer from reco, or no answer at all.

    :ivar status: the HTTP status (``None`` when reco could not be reached or did not answer in time).
    :ivar code: reco's error code (``invalid_field``, ``not_found``, ``database_busy``, ...; or
        ``unreachable`` / ``timeout`` from the client itself).
    :ivar message: what reco said.
    :ivar field: the request field the error names (``[3].item_id``, ``n``, ...), if any.
    :ivar retry_after: seconds reco asked to wait before trying again (503), if it said.
    """

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        field: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        where = f" (field {field})" if field else ""
        super().__init__(f"{status or '-'} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, status: int, body: bytes, retry_after: Optional[str]) -> "RecoError":
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"error": "http_error", "message": body.decode(errors="replace")[:200]}
        try:
            wait = float(retry_after) if retry_after is not None else None
        except ValueError:
            wait = None
        return cls(
            status,
            str(data.get("error", "http_error")),
            str(data.get("message", "")),
            data.get("field"),
            wait,
        )
