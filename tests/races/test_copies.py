"""Requests that race a copy: writes to a running copy's target, ``_retry`` vs ``DELETE``.

A copy that has not finished owns its target order: every API write to it
(``_place``, the payment source, line items, its addresses, ``DELETE``) answers
409, naming the copy, and the copy completes with its own single
authorization. A failed copy retried and deleted at once ends either run to
its end or gone, never half-deleted: a deleted copy's run does nothing more.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select, update

from copying.runs import Outcome
from models import (
    AuthorizationStatus,
    CopyStatus,
    CustomerPaymentSource,
    Order,
    OrderCopy,
    OrderCopyEvent,
    OrderStatus,
    PaymentAuthorization,
)
from tests.chaos.probes import ports_in_transaction
from tests.chaos.processes import children, local_tcp_ports
from tests.factories import (
    Line,
    create_copy,
    make_address,
    make_customer,
    make_order,
    make_sku,
    make_wallet_entry,
)
from tests.money import UNFINISHED
from tests.races.client import (
    Call,
    Reply,
    add_line,
    change_address,
    delete,
    patch,
    place,
    use_wallet_entry,
)
from tests.races.conftest import ROUNDS, Round, expect
from tests.races.shop import STOCK
from tests.runs import execute_one
from tests.worker.processes import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]

#: Rounds of the running-copy race hammering their targets at once.
AT_ONCE = 4
#: What a write may answer once the copy it raced has finished (anything but a 5xx).
AFTER = {200, 201, 204, 409, 422}


def create_copy_call(source_order_id: str, **attributes: object) -> Call:
    return Call(
        "POST order_copies",
        "POST",
        "/api/order_copies",
        {
            "data": {
                "type": "order_copies",
                "attributes": attributes,
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": source_order_id}}
                },
            }
        },
    )


# --- writes to the target of a running copy --------------------------------------------


@dataclass
class Running:
    """One round of the running-copy race: a copy of a ``tok_flaky`` source, its target."""

    round: Round
    source_id: str
    sku_code: str
    visa_entry_id: str
    address_id: str
    copy_id: str = ""
    target_id: str | None = None
    #: (the replies of a pass, whether the copy was still unfinished after them)
    passes: list[tuple[list[Reply], bool]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def writes(self, shipping_address_id: str | None) -> list[Call]:
        target = self.target_id
        assert target is not None
        calls = [
            place(target),
            use_wallet_entry(target, self.visa_entry_id),
            add_line(target, self.sku_code, self.round.rng.randint(1, 3)),
            change_address(target, self.address_id),
            delete("orders", target),
        ]
        if shipping_address_id is not None:
            calls.append(
                patch("addresses", shipping_address_id, {"city": "Turin"}, what="PATCH address")
            )
        self.round.rng.shuffle(calls)
        return calls


class Paused:
    """The worker process group SIGSTOPped with no database transaction open (a run stays
    ``in_progress`` between its steps), until the block ends."""

    def __init__(self, worker: WorkerProcess, sessions) -> None:
        self.worker, self.sessions = worker, sessions

    def __enter__(self) -> Paused:
        pid = self.worker.process.pid
        for _ in range(500):
            self.worker.kill(signal.SIGSTOP)
            with self.sessions.begin() as s:
                busy = ports_in_transaction(s)
            mine = set().union(*(local_tcp_ports(p) for p in [pid, *children(pid)]))
            if not busy & mine:
                return self
            self.worker.kill(signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the worker never stood outside a transaction")

    def __exit__(self, *_: object) -> None:
        self.worker.kill(signal.SIGCONT)


def _copy_state(sessions, copy_id):
    with sessions.begin() as s:
        return s.execute(
            select(OrderCopy.status, OrderCopy.target_order_id).where(OrderCopy.id == copy_id)
        ).one()


def _shipping_address(sessions, order_id):
    with sessions.begin() as s:
        return s.scalar(select(Order.shipping_address_id).where(Order.id == order_id))


def _hammer(arena, running: Running) -> None:
    status, _ = _copy_state(arena.sessions, running.copy_id)
    if status not in UNFINISHED:
        return
    calls = running.writes(_shipping_address(arena.sessions, running.target_id))
    replies = arena.client.race(calls, running.round.rng)
    status, _ = _copy_state(arena.sessions, running.copy_id)
    running.passes.append((replies, status in UNFINISHED))


def _check_running(arena, running: Running) -> None:
    problems = running.problems
    for number, (replies, owned) in enumerate(running.passes, 1):
        problems += arena.server_errors(replies)
        for reply in replies:
            if owned and (reply.status != 409 or running.copy_id not in reply.detail):
                problems.append(
                    f"pass {number}: {reply}, while copy {running.copy_id} was running:"
                    " expected 409 naming the copy"
                )
            elif not owned and reply.status not in AFTER:
                problems.append(f"pass {number}: {reply}")
    with arena.sessions.begin() as s:
        copy = s.get_one(OrderCopy, running.copy_id)
        if copy.status != CopyStatus.COMPLETED:
            problems.append(f"copy {copy.id} is {copy.status}: {copy.errors_log}")
        if copy.target_order_id is None:
            return
        target = s.get_one(Order, copy.target_order_id)
        held = s.scalars(
            select(PaymentAuthorization.idempotency_key).where(
                PaymentAuthorization.order_id == target.id,
                PaymentAuthorization.status == AuthorizationStatus.AUTHORIZED,
            )
        ).all()
        if target.status != OrderStatus.PLACED or [
            k.startswith(f"order_copy:{copy.id}:") for k in held
        ] != [True]:
            problems.append(
                f"target order {target.id} is {target.status} holding {list(held)}: expected"
                f" placed by copy {copy.id}, with its one authorization"
            )


def test_writes_to_the_target_of_a_running_copy_answer_409_until_it_completes(arena):
    rounds = [Round.of(n) for n in range(ROUNDS)]
    races: list[Running] = []
    initial_stock: dict[str, int] = {}
    with arena.sessions.begin() as s:
        for round_ in rounds:
            sku = make_sku(s, stock=STOCK)
            customer = make_customer(s)
            flaky = make_wallet_entry(s, customer, token="tok_flaky")
            visa = make_wallet_entry(s, customer)
            source = make_order(
                s, [Line(sku, round_.rng.randint(1, 3))], customer=customer, wallet_entry=flaky
            )
            address = make_address(s, city="Turin")
            initial_stock[sku.code] = STOCK
            races.append(Running(round_, source.id, sku.code, visa.id, address.id))
    for running in races:
        created = arena.send(create_copy_call(running.source_id, place_target_order=True))
        assert created.status == 201, running.round.report([str(created)])
        running.copy_id = created.body["data"]["id"]

    def built() -> bool:
        for running in races:
            status, running.target_id = _copy_state(arena.sessions, running.copy_id)
            if running.target_id is None and status in UNFINISHED:
                return False
        return True

    wait_for(built, 60, "every copy to build its target")
    with ThreadPoolExecutor(AT_ONCE) as pool:
        # While the worker stands still between steps: every copy that has not finished owns
        # its target. Then again at once after it goes on, racing its next steps.
        with Paused(arena.stack.worker, arena.sessions):
            list(pool.map(lambda r: _hammer(arena, r), races))
        list(pool.map(lambda r: _hammer(arena, r), races))
    money = arena.settle_and_check(initial_stock)
    for running in races:
        _check_running(arena, running)
    failed = [r for r in races if r.problems]
    report = [
        running.round.report(running.problems, [rep for p, _ in running.passes for rep in p])
        for running in failed
    ]
    owned = sum(owned for r in races for _, owned in r.passes)
    problems = [*money, *report]
    print(f"{owned} passes hit a running copy's target")  # shown by pytest -rP
    assert not problems, "\n".join([*problems, f"({owned} passes hit a running copy's target)"])


# --- _retry vs DELETE of a failed copy --------------------------------------------------


def test_retry_racing_delete_of_a_failed_copy(arena, round_, gateways):
    rng = round_.rng
    with arena.sessions.begin() as s:
        sku = make_sku(s, stock=STOCK)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer, disabled=True)
        source = make_order(
            s, [Line(sku, rng.randint(1, 3))], customer=customer, wallet_entry=entry
        )
    copy = create_copy(arena.sessions, source.id, place_target_order=True)
    # Run here, as a worker would: it fails on the disabled wallet entry, its target built.
    assert execute_one(arena.sessions, copy.id, gateways=gateways) == Outcome.FAILED
    with arena.sessions.begin() as s:
        s.execute(
            update(CustomerPaymentSource)
            .where(CustomerPaymentSource.id == entry.id)
            .values(disabled=False)
        )
        first_target = s.get_one(OrderCopy, copy.id).target_order_id
    retry = patch("order_copies", copy.id, {"_retry": True}, what="_retry")
    calls = [retry] * rng.randint(1, 2) + [delete("order_copies", copy.id)] * rng.randint(1, 2)
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies)
    problems += expect(replies, {"_retry": {200, 404, 409}, "DELETE": {204, 404, 409}})
    problems += arena.settle_and_check({sku.code: STOCK})
    with arena.sessions.begin() as s:
        row = s.get(OrderCopy, copy.id)
        events = s.scalar(
            select(func.count())
            .select_from(OrderCopyEvent)
            .where(OrderCopyEvent.order_copy_id == copy.id)
        )
        target = s.get(Order, first_target) if first_target else None
        deleted = any(r.call.what.startswith("DELETE") and r.status == 204 for r in replies)
        if deleted != (row is None):
            problems.append(
                f"copy {copy.id} is {'gone' if row is None else row.status}, yet a DELETE"
                f" answered {'204' if deleted else 'no 204'}"
            )
        if row is None:
            if events:
                problems.append(f"copy {copy.id} is deleted but {events} events of it are left")
            if target is not None and target.status != OrderStatus.PENDING:
                problems.append(
                    f"copy {copy.id} is deleted, yet its target {target.id} went on to"
                    f" {target.status}"
                )
        elif row.status == CopyStatus.COMPLETED and (
            target is None or target.status != OrderStatus.PLACED
        ):
            problems.append(f"copy {copy.id} completed, its target is {target and target.status}")
    assert not problems, round_.report(problems, replies)
