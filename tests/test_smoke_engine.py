from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing
from copying.runs import Outcome
from models import CopyStatus, Mode, Order, OrderCopy
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.runs import execute_one


def test_copy_place_and_cancel(sessions, gateways, published):
    with sessions.begin() as s:
        sku = make_sku(s, stock=10)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(sku, 2)], customer=customer, wallet_entry=entry)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with unit_of_work(sessions, published) as s:
        copy = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            options=CopyOptions(place_target_order=True, cancel_source_order=True),
        )
    assert published == [copy.id]
    outcome = execute_one(sessions, copy.id, gateways=gateways)
    assert outcome == Outcome.COMPLETED
    with sessions.begin() as s:
        row = s.get(OrderCopy, copy.id)
        assert row.status == CopyStatus.COMPLETED
        target = s.get(Order, row.target_order_id)
        assert target.status == "placed"
        assert s.get(Order, source.id).status == "cancelled"
