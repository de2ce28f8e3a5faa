"""A copy's options, declared once.

The API's flags (``api/resources/order_copies.py``), what a claim reads back
(``copy_states.CLAIMED_COLUMNS``), what a run carries (``runs.Run``) and the rows the
renewals tick writes all derive from :class:`CopyOptions`. Adding an option is a field
here, a column (model and migration, with a server default), and the stage that acts on
it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from copying.errors import CopyInputError


def _option(default: bool, description: str) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class CopyOptions:
    place_target_order: bool = _option(False, "Place the target order upon copy.")
    cancel_source_order: bool = _option(False, "Cancel the source order upon copy.")
    reuse_wallet: bool = _option(True, "Copy the source's wallet payment source (default true).")
    skip_errors: bool = _option(False, "Complete with errors recorded, if a target was built.")
    apply_promotions: bool = _option(
        False, "Apply the promotions active now (and the coupon, if still valid) again."
    )
    ignore_invalid_coupon: bool = _option(
        False, "A coupon no longer valid is not copied, without an error."
    )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(option.name for option in fields(cls))

    @classmethod
    def described(cls) -> Iterator[tuple[str, str]]:
        """Each option's name and what it does."""
        for option in fields(cls):
            yield option.name, option.metadata["description"]

    @classmethod
    def parse(cls, given: Mapping[str, Any]) -> CopyOptions:
        """The options named in ``given`` (others take their defaults). Raises
        CopyInputError naming the first that is not true or false."""
        chosen = {name: given[name] for name in cls.names() if name in given}
        for name, value in chosen.items():
            if not isinstance(value, bool):
                raise CopyInputError(name, f"must be true or false, not {value!r}")
        return cls(**chosen)

    @classmethod
    def of(cls, row: Any) -> CopyOptions:
        """A copy's options, from its row (an ``OrderCopy`` or the columns a claim read)."""
        return cls(**{name: getattr(row, name) for name in cls.names()})

    def as_columns(self) -> dict[str, bool]:
        """The ``order_copies`` columns that hold them."""
        return asdict(self)
