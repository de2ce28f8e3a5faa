"""Which failed renewals a retry could fix.

A dunning retry charges the same card for the same lines a few days later: it can pass
after a soft decline (insufficient funds), a SKU out of stock or a run given up on, and
cannot after a hard decline, a SKU or bundle that is gone (unknown, discontinued, repriced
in another currency) or a wallet entry that cannot pay (that one parks the subscription as
``pending`` until a usable entry is attached). Read from the copy's ``errors_log``, which
is what a run leaves whichever transaction ends it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from copying.errors import ErrorKey
from copying.orders.gateways import is_soft_decline

#: ``targets.problem_selling``'s messages for a SKU (or a bundle) no retry brings back.
_SKU_GONE = re.compile(
    r"^(SKU|bundle) .+ is (unknown|discontinued|priced in [A-Z]{3}, the order is in)"
)
DECLINED = "payment declined: "


def needs_wallet_entry(errors: Mapping[str, Sequence[str]]) -> str | None:
    """Why the renewal had no wallet entry it could charge, or None."""
    problems = errors.get(ErrorKey.PAYMENT_SOURCE)
    return problems[0] if problems else None


def why_not_retry(errors: Mapping[str, Sequence[str]]) -> str | None:
    """The first error of a failed renewal that retrying cannot fix, or None when a retry
    may pass."""
    wallet = needs_wallet_entry(errors)
    if wallet is not None:
        return wallet
    for message in errors.get(ErrorKey.LINE_ITEMS, ()):
        if _SKU_GONE.match(message):
            return message
    for message in errors.get(ErrorKey.PAYMENT, ()):
        if message.startswith(DECLINED) and not is_soft_decline(message):
            return message
    return None
