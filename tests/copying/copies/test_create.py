"""Creating a copy: its defaults, its announcement after commit, and input that writes nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from copying.copies import lifecycle
from copying.copies.dispatch import pending_announcements, unit_of_work
from copying.copies.options import CopyOptions
from copying.errors import CopyInputError
from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from tests.factories import Line, copy_events, make_order, make_shop, make_sku


@pytest.fixture
def source(sessions):
    with sessions.begin() as s:
        return make_order(s, [Line(make_sku(s), 1)])


def _copies_and_events(sessions, source_order_id: str) -> tuple[int, int]:
    of_source = OrderCopy.source_order_id == source_order_id
    with sessions.begin() as s:
        copies = s.scalar(select(func.count()).select_from(OrderCopy).where(of_source))
        events = s.scalar(
            select(func.count()).select_from(OrderCopyEvent).join(OrderCopy).where(of_source)
        )
    return copies, events


def test_defaults(sessions, source, clock):
    with sessions.begin() as s:
        copy = lifecycle.create(s, mode=Mode.TEST, source_order_id=source.id, now=clock.now)

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        events = copy_events(s, copy.id)
    assert row.status == CopyStatus.PENDING
    assert row.mode == Mode.TEST
    assert row.source_order_id == source.id
    assert row.target_order_id is None
    assert (row.reuse_wallet, row.skip_errors) == (True, False)
    assert (row.apply_promotions, row.ignore_invalid_coupon) == (False, False)
    assert (row.place_target_order, row.cancel_source_order) == (False, False)
    assert (row.errors_log, row.errors_count) == ({}, 0)
    assert (row.started_at, row.completed_at, row.failed_at) == (None, None, None)
    assert (row.reference, row.reference_origin, row.metadata_) == (None, None, {})
    assert (row.attempt, row.claims, row.step) == (0, 0, None)
    assert row.created_at == row.dispatched_at == clock.now
    assert [(e.kind, e.attempt, e.data) for e in events] == [
        (
            "created",
            0,
            {
                "place_target_order": False,
                "cancel_source_order": False,
                "reuse_wallet": True,
                "skip_errors": False,
                "apply_promotions": False,
                "ignore_invalid_coupon": False,
            },
        )
    ]


def test_keeps_options_reference_and_metadata(sessions, source):
    with sessions.begin() as s:
        copy = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            reference="ERP-42",
            reference_origin="erp",
            metadata={"channel": "phone", "agent": {"id": 7}},
            options=CopyOptions(
                place_target_order=True,
                cancel_source_order=True,
                reuse_wallet=False,
                skip_errors=True,
            ),
        )

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert (row.place_target_order, row.cancel_source_order) == (True, True)
    assert (row.reuse_wallet, row.skip_errors) == (False, True)
    assert (row.reference, row.reference_origin) == ("ERP-42", "erp")
    assert row.metadata_ == {"channel": "phone", "agent": {"id": 7}}


def test_announced_only_after_commit(sessions, source, published):
    with unit_of_work(sessions, published) as s:
        copy = lifecycle.create(s, mode=Mode.TEST, source_order_id=source.id)
        assert pending_announcements(s) == [copy.id]
        assert published == []

    assert published == [copy.id]


class Abort(Exception):
    pass


def _create_then_abort(sessions, published, source_id: str, created: list[str]) -> None:
    with unit_of_work(sessions, published) as s:
        created.append(lifecycle.create(s, mode=Mode.TEST, source_order_id=source_id).id)
        raise Abort


def test_nothing_announced_or_written_on_rollback(sessions, source, published):
    created: list[str] = []

    with pytest.raises(Abort):
        _create_then_abort(sessions, published, source.id, created)

    assert published == []
    with sessions.begin() as s:
        assert s.get(OrderCopy, created[0]) is None
    assert _copies_and_events(sessions, source.id) == (0, 0)


def test_input_at_the_limits_is_accepted(sessions, source):
    # json.dumps({"k": ""}) is 9 bytes: pad the value to land exactly on 16 KiB.
    metadata = {"k": "x" * (lifecycle.MAX_METADATA_BYTES - 9)}
    assert len(json.dumps(metadata).encode()) == lifecycle.MAX_METADATA_BYTES

    with sessions.begin() as s:
        copy = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            reference="r" * 255,
            reference_origin="o" * 255,
            metadata=metadata,
        )

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert (len(row.reference), len(row.reference_origin)) == (255, 255)
    assert row.metadata_ == metadata


BAD_INPUT = [
    pytest.param(
        {"metadata": ["a", "b"]}, "metadata", "must be an object of key-value pairs", id="list"
    ),
    pytest.param(
        {"metadata": "k=v"}, "metadata", "must be an object of key-value pairs", id="string"
    ),
    pytest.param(
        {"metadata": {"k": "x" * (16 * 1024 - 8)}},
        "metadata",
        "is 16385 bytes, the limit is 16384",
        id="metadata-over-16KiB",
    ),
    pytest.param(
        {"reference": "r" * 256},
        "reference",
        "is 256 characters long, the limit is 255",
        id="reference-too-long",
    ),
    pytest.param(
        {"reference_origin": "o" * 256},
        "reference_origin",
        "is 256 characters long, the limit is 255",
        id="reference-origin-too-long",
    ),
    pytest.param({"reference": 42}, "reference", "must be a string", id="reference-not-text"),
    pytest.param({"mode": "test"}, "mode", "'test' is not one of test, live", id="mode-string"),
]


BAD_OPTIONS = [
    pytest.param(
        {"place_target_order": "yes"},
        "place_target_order",
        "must be true or false, not 'yes'",
        id="place-string",
    ),
    pytest.param(
        {"cancel_source_order": 1},
        "cancel_source_order",
        "must be true or false, not 1",
        id="cancel-int",
    ),
    pytest.param(
        {"reuse_wallet": None}, "reuse_wallet", "must be true or false, not None", id="reuse-none"
    ),
    pytest.param(
        {"skip_errors": "false"},
        "skip_errors",
        "must be true or false, not 'false'",
        id="skip-string",
    ),
]


@pytest.mark.parametrize(("bad", "field", "message"), BAD_OPTIONS)
def test_bad_options_are_refused_by_name(bad, field, message):
    with pytest.raises(CopyInputError) as raised:
        CopyOptions.parse(bad)

    assert (raised.value.field, raised.value.message) == (field, message)


def test_options_not_given_take_their_defaults():
    assert CopyOptions.parse({"place_target_order": True, "reference": "x"}) == CopyOptions(
        place_target_order=True, cancel_source_order=False, reuse_wallet=True, skip_errors=False
    )


@pytest.mark.parametrize(("bad", "field", "message"), BAD_INPUT)
def test_bad_input_raises_and_writes_nothing(sessions, source, published, bad, field, message):
    arguments = {"mode": Mode.TEST, "source_order_id": source.id, **bad}

    # The caller's unit of work commits anyway: create itself must have written nothing.
    with unit_of_work(sessions, published) as s, pytest.raises(CopyInputError) as raised:
        lifecycle.create(s, **arguments)

    assert (raised.value.field, raised.value.message) == (field, message)
    assert published == []
    assert _copies_and_events(sessions, source.id) == (0, 0)


def test_metadata_that_is_not_json_is_refused(sessions, source):
    with sessions.begin() as s, pytest.raises(CopyInputError) as raised:
        lifecycle.create(s, mode=Mode.TEST, source_order_id=source.id, metadata={"at": object()})

    assert raised.value.field == "metadata"
    assert raised.value.message.startswith("is not JSON: ")


def test_unknown_source_order_is_refused(sessions, published):
    with unit_of_work(sessions, published) as s, pytest.raises(CopyInputError) as raised:
        lifecycle.create(s, mode=Mode.TEST, source_order_id="NoSuchOrdr")

    assert raised.value.field == "source_order"
    assert raised.value.message == "order 'NoSuchOrdr' does not exist in test mode"
    assert published == []


def test_source_order_of_the_other_mode_is_refused(sessions, published):
    with sessions.begin() as s:
        live = make_order(s, [Line(make_sku(s, mode=Mode.LIVE), 1)], mode=Mode.LIVE)

    with unit_of_work(sessions, published) as s, pytest.raises(CopyInputError) as raised:
        lifecycle.create(s, mode=Mode.TEST, source_order_id=live.id)

    assert raised.value.field == "source_order"
    assert raised.value.message == f"order {live.id!r} does not exist in test mode"
    assert published == []
    assert _copies_and_events(sessions, live.id) == (0, 0)


def test_copy_in_live_mode_of_a_live_order(sessions, published):
    with sessions.begin() as s:
        live = make_order(s, [Line(make_sku(s, mode=Mode.LIVE), 1)], mode=Mode.LIVE)

    with unit_of_work(sessions, published) as s:
        copy = lifecycle.create(s, mode=Mode.LIVE, source_order_id=live.id)

    assert published == [copy.id]
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).mode == Mode.LIVE


def test_metadata_with_nan_or_text_with_nul_is_refused(sessions):
    with sessions.begin() as s:
        source = make_shop(s).source
    for bad in ({"metadata": {"x": float("nan")}}, {"reference": "a\x00b"}):
        with sessions.begin() as s, pytest.raises(CopyInputError):
            lifecycle.create(s, mode=Mode.TEST, source_order_id=source.id, **bad)
