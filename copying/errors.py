"""What can go wrong, by kind.

*Errors are data, exceptions are bugs*: business failures become entries in
an :class:`ErrorLog`; the exceptions here are for bad input (the caller's
mistake), transient trouble (retry later) and lost ownership (stop now).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

#: The longest error text stored (``errors_log``, history events): one line, no more.
MAX_STORED_TEXT = 300


def one_line(error: BaseException) -> str:
    """What may be stored of an unexpected error: the first line of its message (else its
    type's name), bounded. A database error's later lines carry its SQL and parameters,
    and a driver's first line may be long: neither belongs in a copy's record."""
    text = next(iter(str(error).strip().splitlines()), "") or type(error).__name__
    return text if len(text) <= MAX_STORED_TEXT else text[: MAX_STORED_TEXT - 1] + "…"


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


class ErrorKey(enum.StrEnum):
    """The keys of ``errors_log``. Each belongs to the stage that writes it, and that stage,
    run again, clears its own keys (:data:`STAGE_OF`)."""

    LINE_ITEMS = "line_items"
    COUPON_CODE = "coupon_code"
    PAYMENT_SOURCE = "payment_source"
    TARGET_ORDER = "target_order"
    PAYMENT = "payment"
    SOURCE_ORDER = "source_order"
    ORDER_COPY = "order_copy"


#: The stage that owns each error key: building the target (and choosing the wallet
#: entry), placing it (stock and payment), cancelling the source, or the run itself
#: (given up after its claims ran out).
STAGE_OF: dict[ErrorKey, str] = {
    ErrorKey.LINE_ITEMS: "build",
    ErrorKey.COUPON_CODE: "build",
    ErrorKey.PAYMENT_SOURCE: "build",
    ErrorKey.TARGET_ORDER: "place",
    ErrorKey.PAYMENT: "place",
    ErrorKey.SOURCE_ORDER: "cancel",
    ErrorKey.ORDER_COPY: "run",
}


def keys_of(stage: str) -> tuple[ErrorKey, ...]:
    """The error keys ``stage`` owns (:data:`STAGE_OF`)."""
    return tuple(key for key, owner in STAGE_OF.items() if owner == stage)


class ErrorLog:
    """Messages grouped by the field or step they concern (:class:`ErrorKey`)."""

    def __init__(self, entries: Mapping[str, Iterable[str]] | None = None) -> None:
        self._entries: dict[str, list[str]] = {k: list(v) for k, v in (entries or {}).items()}

    def add(self, key: ErrorKey, message: str) -> None:
        self._entries.setdefault(key, []).append(message)

    def clear(self, *keys: ErrorKey) -> None:
        """Forget what an earlier run of the step owning ``keys`` said."""
        for key in keys:
            self._entries.pop(key, None)

    def has(self, *keys: ErrorKey) -> bool:
        return any(self._entries.get(key) for key in keys)

    def as_dict(self) -> dict[str, list[str]]:
        return {str(k): list(v) for k, v in self._entries.items() if v}

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


class OrderBusyError(Exception):
    """The order is the target of a copy not yet finished: it belongs to that copy until the
    copy ends, and nothing else may change it (a 409)."""

    def __init__(self, order_id: str, copy_id: str) -> None:
        super().__init__(
            f"order {order_id} is the target of order copy {copy_id}, which has not finished;"
            " it can change once the copy ends"
        )
        self.order_id = order_id
        self.copy_id = copy_id


class OrderChangedError(Exception):
    """The order changed while its payment was asked for (another request placed it, its
    total or payment source changed): nothing was placed, the hold made for it was voided
    (a 409)."""

    def __init__(self, order_id: str, changes: list[str]) -> None:
        super().__init__(
            f"order {order_id} changed while it was being placed: {'; '.join(changes)}"
        )
        self.order_id = order_id
        self.changes = changes


class InUseError(Exception):
    """The record is still named by others that need it: it stays (a 409)."""


class OrderStateError(Exception):
    """The order is not in a status that allows what was asked (a 409)."""

    def __init__(self, order_id: str, status: str, message: str) -> None:
        super().__init__(f"order {order_id} is {status}; {message}")
        self.order_id = order_id
        self.status = status
