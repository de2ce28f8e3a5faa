"""A run: what one claim of a copy knows of it, carried from transaction to transaction."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row

from copying.copies.options import CopyOptions
from copying.errors import ErrorKey, ErrorLog
from copying.orders.gateways import GatewayAnswer
from copying.orders.payments import PaymentRequest
from copying.orders.targets import Contents
from copying.orders.transactions import Asked
from models import CopyStep, Mode, Order, OrderCopy
from models.order_copies import ASKED, RECURRING

Clock = Callable[[], datetime]

STEPS = list(CopyStep)


@dataclass(frozen=True)
class RunConfig:
    lease: timedelta = timedelta(seconds=30)
    max_claims: int = 8
    #: Gateway calls a chunk of copies makes at once.
    gateway_concurrency: int = 1
    #: Exceptions a run lets through untouched, not taken for a bug in a stage (a task's
    #: time limit: the caller's to handle).
    reraise: tuple[type[BaseException], ...] = ()


class Outcome(enum.StrEnum):
    """What became of a copy asked to run."""

    COMPLETED = "completed"
    FAILED = "failed"
    #: Another run owns it, it is finished, or it is not due.
    NOT_CLAIMED = "not_claimed"
    #: A newer run took it over midway.
    LEASE_LOST = "lease_lost"
    #: Its run met a bug: it keeps its lease, for the sweeper.
    CRASHED = "crashed"


class Stage(enum.StrEnum):
    """The stages of the pipeline, in order (``runs.pipeline``)."""

    AUTHORIZE = "authorize"
    PLACE = "place"
    CANCEL = "cancel"
    VOID = "void"
    FINISH = "finish"


def place_key(copy_id: str) -> str:
    """The first idempotency key of the payment placing the copy's target asks for."""
    return f"order_copy:{copy_id}:place"


@dataclass(eq=False)
class Run:
    """What one run knows of its copy, carried from transaction to transaction."""

    copy_id: str
    mode: Mode
    attempt: int
    claims: int
    source_order_id: str
    target_order_id: str | None
    wallet_entry_id: str | None
    subscription_id: str | None
    retries: int
    options: CopyOptions
    step: CopyStep | None
    errors: ErrorLog = field(default_factory=ErrorLog)
    #: ``OrderCopy.copy_type``: a renewal's webhook topics are ``recurring_order_copies.*``.
    copy_type: str = ASKED
    #: Checkpoints reached in the current transaction, for its history events.
    reached_now: list[CopyStep] = field(default_factory=list)
    #: Orders placed or cancelled in the current transaction, with the webhook topic
    #: each owes (``orders.place``, ``orders.cancel``), for ``finish.close`` to record.
    orders_changed: list[tuple[str, str]] = field(default_factory=list)
    # What a stage leaves for a later one of the same run (read afresh when resumed):
    #: The target as built (columns only: it belongs to no session) and its contents.
    target: Order | None = field(default=None, repr=False)
    contents: Contents | None = field(default=None, repr=False)
    #: The payment placing the target asks for, and its gateway's answer.
    request: PaymentRequest | None = field(default=None, repr=False)
    answer: GatewayAnswer | None = field(default=None, repr=False)
    #: The cancelled source's holds being voided (None: not known yet, as when resumed),
    #: and those the gateways voided.
    voiding: list[str] | None = field(default=None, repr=False)
    voided: list[str] = field(default_factory=list, repr=False)
    #: The cancelled source's refund of what its payment captured (None: not known yet, as
    #: when resumed), and the gateways' answers, recorded as the run finishes.
    refunding: list[Asked] | None = field(default=None, repr=False)
    refunded: list[tuple[Asked, GatewayAnswer]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, copy: OrderCopy | Row[Any]) -> Run:
        """From the copy's row, as an object or as the columns a claim read back."""
        return cls(
            copy_id=copy.id,
            mode=copy.mode,
            attempt=copy.attempt,
            claims=copy.claims,
            source_order_id=copy.source_order_id,
            target_order_id=copy.target_order_id,
            wallet_entry_id=copy.customer_payment_source_id,
            subscription_id=copy.order_subscription_id,
            retries=copy.retries,
            options=CopyOptions.of(copy),
            step=copy.step,
            errors=ErrorLog(copy.errors_log),
            copy_type=RECURRING if copy.period_key is not None else ASKED,
        )

    def saved(self) -> Run:
        """A copy of what the run knows, to go back to if a transaction rolls back."""
        return replace(
            self,
            errors=ErrorLog(self.errors.as_dict()),
            reached_now=list(self.reached_now),
            orders_changed=list(self.orders_changed),
            voided=list(self.voided),
            refunded=list(self.refunded),
        )

    def restore(self, saved: Run) -> None:
        """Go back to ``saved`` (which the run then owns: it is used once)."""
        self.__dict__.update(saved.__dict__)

    def stopped(self) -> bool:
        """Errors end the run, unless the copy asked to skip them; a run given up on
        (``order_copy`` errors) ends in any case."""
        return bool(self.errors) and (
            not self.options.skip_errors or self.errors.has(ErrorKey.ORDER_COPY)
        )

    def next_stage(self) -> Stage:
        """Where this run goes after the stage it is in: FINISH when nothing is left to do.
        (A run starts by building its target when it is not placed yet: ``runs.pipeline``.)"""
        if self.stopped():
            return Stage.FINISH
        if self.at(CopyStep.STOCK_RESERVED):
            return Stage.PLACE if self.answer is not None else Stage.AUTHORIZE
        if self.options.cancel_source_order and not self.reached(CopyStep.SOURCE_CANCELLED):
            return Stage.CANCEL
        if self.at(CopyStep.SOURCE_CANCELLED) and (self.voiding != [] or self.refunding != []):
            return Stage.VOID
        return Stage.FINISH

    def reach(self, step: CopyStep) -> None:
        self.step = step
        self.reached_now.append(step)

    def at(self, step: CopyStep) -> bool:
        return self.step == step

    def reached(self, step: CopyStep) -> bool:
        return self.step is not None and STEPS.index(self.step) >= STEPS.index(step)

    def log_fields(self) -> dict[str, Any]:
        return {
            "order_copy_id": self.copy_id,
            "attempt": self.attempt,
            "step": self.step,
            "source_order_id": self.source_order_id,
            "target_order_id": self.target_order_id,
        }
