"""What can go wrong, by kind.

*Errors are data, exceptions are bugs*: business failures become entries in
an :class:`ErrorLog`; the exceptions here are for bad input (the caller's
mistake), transient trouble (retry later) and lost ownership (stop now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CopyInputError(ValueError):
    """The caller asked for something invalid; nothing was written.

    ``field`` names the offending input (``source_order``, ``metadata``, ...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(LookupError):
    """The record does not exist in this mode."""


class TransientError(Exception):
    """Worth retrying later from the last checkpoint (gateway down, timeout)."""


class LeaseLostError(Exception):
    """Another run now owns the copy (its attempt is newer): stop without writing."""


class ErrorLog:
    """Messages grouped by the field or step they concern, e.g. ``line_items``."""

    def __init__(self, entries: Mapping[str, Iterable[str]] | None = None) -> None:
        self._entries: dict[str, list[str]] = {k: list(v) for k, v in (entries or {}).items()}

    def add(self, key: str, message: str) -> None:
        self._entries.setdefault(key, []).append(message)

    def clear(self, *keys: str) -> None:
        """Forget what an earlier run of the step owning ``keys`` said."""
        for key in keys:
            self._entries.pop(key, None)

    def has(self, *keys: str) -> bool:
        return any(self._entries.get(key) for key in keys)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._entries.items() if v}

    @property
    def count(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def __bool__(self) -> bool:
        return self.count > 0


class CopyStateError(Exception):
    """The copy is not in a status that allows what was asked (e.g. retry a completed copy)."""

    def __init__(self, copy_id: str, status: str, message: str) -> None:
        super().__init__(f"order copy {copy_id} is {status}: {message}")
        self.copy_id = copy_id
        self.status = status
        self.message = message
