"""``filter[q][<attribute>_<predicate>]`` on order copies, and ``sort``.

Four copies with known values (times are fixed: created by the engine with
``now=``, run with a fixed clock). ``done`` has a target order, ``waiting`` none;
whether a failed copy keeps the target it started is the engine's business, so
the tests read that back):

=======  =========  ===========  =======  ======  =========  ======  ======
name     status     created      started  errors  reference  origin  source
=======  =========  ===========  =======  ======  =========  ======  ======
done     completed  01-01 10:00  +5 min   0       ERP-001    erp     good
broke    failed     01-02 10:00  +5 min   1       ERP-010    crm     bad1
broke2   failed     01-03 10:00  +5 min   2       ERP-100    erp     bad2
waiting  pending    01-04 10:00  -        0       (none)     ""      good
=======  =========  ===========  =======  ======  =========  ======  ======
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.errors import assert_error
from tests.factories import Line, create_copy, make_order, make_shop, make_sku
from tests.runs import execute_one

DAY1 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
RUN = timedelta(minutes=5)
ALL = {"done", "broke", "broke2", "waiting"}


def at(day: int, run: bool = False) -> str:
    """The API's rendering of 10:00 (or 10:05, ``run``) on January ``day``, 2030."""
    moment = DAY1 + timedelta(days=day - 1) + (RUN if run else timedelta())
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Copies:
    ids: dict[str, str]  # name → id
    good: str
    bad1: str
    bad2: str
    target: str  # done's target order
    with_target: set[str]  # the copies that have one

    def names(self, ids: list[str]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


@pytest.fixture
def copies(api, committed, gateways) -> Copies:
    with committed.begin() as session:
        shop = make_shop(session, stock=100)
        gone = make_sku(session, discontinued=True)
        also_gone = make_sku(session, discontinued=True)
        bad1 = make_order(session, [Line(gone)], customer=shop.customer)
        bad2 = make_order(session, [Line(gone), Line(also_gone)], customer=shop.customer)
    plan = [
        ("done", shop.source.id, "ERP-001", "erp", True),
        ("broke", bad1.id, "ERP-010", "crm", True),
        ("broke2", bad2.id, "ERP-100", "erp", True),
        ("waiting", shop.source.id, None, "", False),
    ]
    ids = {}
    for day, (name, source_id, reference, origin, runs) in enumerate(plan, start=1):
        created = DAY1 + timedelta(days=day - 1)
        copy = create_copy(
            committed, source_id, now=created, reference=reference, reference_origin=origin
        )
        ids[name] = copy.id
        if runs:
            clock = lambda created=created: created + RUN  # noqa: E731
            execute_one(committed, copy.id, gateways=gateways, clock=clock)
    target = api.retrieve("order_copies", ids["done"], include="target_order")
    return Copies(
        ids=ids,
        good=shop.source.id,
        bad1=bad1.id,
        bad2=bad2.id,
        target=target["relationships"]["target_order"]["data"]["id"],
        with_target={
            name
            for name, copy_id in ids.items()
            if api.get(f"/api/order_copies/{copy_id}/target_order").json()["data"] is not None
        },
    )


def listed(api, copies, **params) -> set[str]:
    return copies.names(api.ids("/api/order_copies", **params))


def test_the_copies_are_as_the_table_says(api, copies):
    rows = {
        name: api.retrieve("order_copies", copy_id)["attributes"]
        for name, copy_id in copies.ids.items()
    }

    assert {n: r["status"] for n, r in rows.items()} == {
        "done": "completed",
        "broke": "failed",
        "broke2": "failed",
        "waiting": "pending",
    }
    assert {n: r["errors_count"] for n, r in rows.items()} == {
        "done": 0,
        "broke": 1,
        "broke2": 2,
        "waiting": 0,
    }
    assert [rows[n]["created_at"] for n in ("done", "broke", "broke2", "waiting")] == [
        at(1),
        at(2),
        at(3),
        at(4),
    ]
    assert rows["done"]["started_at"] == rows["done"]["completed_at"] == at(1, run=True)
    assert rows["broke2"]["failed_at"] == at(3, run=True)
    assert rows["waiting"]["started_at"] is None


CASES = [
    # status (text: completed < failed < pending)
    ("status_eq", "failed", {"broke", "broke2"}),
    ("status_not_eq", "failed", {"done", "waiting"}),
    ("status_in", "completed,pending", {"done", "waiting"}),
    ("status_not_in", "failed,pending", {"done"}),
    ("status_lt", "failed", {"done"}),
    ("status_lteq", "failed", {"done", "broke", "broke2"}),
    ("status_gt", "failed", {"waiting"}),
    ("status_gteq", "failed", {"broke", "broke2", "waiting"}),
    ("status_null", "true", set()),
    ("status_null", "false", ALL),
    ("status_present", "true", ALL),
    ("status_present", "false", set()),
    ("status_cont", "AIL", {"broke", "broke2"}),
    ("status_start", "comp", {"done"}),
    ("status_end", "ing", {"waiting"}),
    # created_at
    ("created_at_eq", at(2), {"broke"}),
    ("created_at_eq", "2030-01-02T10:00:00", {"broke"}),  # no offset: UTC
    ("created_at_not_eq", at(2), {"done", "broke2", "waiting"}),
    ("created_at_in", f"{at(1)},{at(3)}", {"done", "broke2"}),
    ("created_at_not_in", f"{at(1)},{at(3)}", {"broke", "waiting"}),
    ("created_at_lt", at(2), {"done"}),
    ("created_at_lteq", at(2), {"done", "broke"}),
    ("created_at_gt", at(3), {"waiting"}),
    ("created_at_gt", "2030-01-02T11:00:00+02:00", {"broke", "broke2", "waiting"}),
    ("created_at_gteq", at(3), {"broke2", "waiting"}),
    ("created_at_null", "true", set()),
    ("created_at_present", "true", ALL),
    # started_at
    ("started_at_eq", at(3, run=True), {"broke2"}),
    ("started_at_not_eq", at(3, run=True), {"done", "broke", "waiting"}),
    ("started_at_in", f"{at(1, run=True)},{at(3, run=True)}", {"done", "broke2"}),
    ("started_at_not_in", at(1, run=True), {"broke", "broke2", "waiting"}),
    ("started_at_lt", at(2, run=True), {"done"}),
    ("started_at_lteq", at(2, run=True), {"done", "broke"}),
    ("started_at_gt", at(2, run=True), {"broke2"}),
    ("started_at_gteq", at(2, run=True), {"broke", "broke2"}),
    ("started_at_null", "true", {"waiting"}),
    ("started_at_null", "false", {"done", "broke", "broke2"}),
    ("started_at_present", "true", {"done", "broke", "broke2"}),
    ("started_at_present", "false", {"waiting"}),
    # completed_at and failed_at
    ("completed_at_eq", at(1, run=True), {"done"}),
    ("completed_at_present", "true", {"done"}),
    ("completed_at_null", "true", {"broke", "broke2", "waiting"}),
    ("completed_at_gt", at(1), {"done"}),
    ("completed_at_lt", at(1), set()),
    ("failed_at_eq", at(2, run=True), {"broke"}),
    ("failed_at_not_eq", at(2, run=True), {"done", "broke2", "waiting"}),
    ("failed_at_in", f"{at(2, run=True)},{at(3, run=True)}", {"broke", "broke2"}),
    ("failed_at_not_in", at(2, run=True), {"done", "broke2", "waiting"}),
    ("failed_at_lt", at(3, run=True), {"broke"}),
    ("failed_at_lteq", at(3, run=True), {"broke", "broke2"}),
    ("failed_at_gt", at(2, run=True), {"broke2"}),
    ("failed_at_gteq", at(2, run=True), {"broke", "broke2"}),
    ("failed_at_null", "false", {"broke", "broke2"}),
    ("failed_at_present", "false", {"done", "waiting"}),
    # errors_count
    ("errors_count_eq", "0", {"done", "waiting"}),
    ("errors_count_not_eq", "0", {"broke", "broke2"}),
    ("errors_count_in", "1,2", {"broke", "broke2"}),
    ("errors_count_not_in", "0,1", {"broke2"}),
    ("errors_count_lt", "1", {"done", "waiting"}),
    ("errors_count_lteq", "1", {"done", "broke", "waiting"}),
    ("errors_count_gt", "1", {"broke2"}),
    ("errors_count_gteq", "1", {"broke", "broke2"}),
    ("errors_count_gt", "-1", ALL),
    ("errors_count_lt", str(2**40), ALL),  # past a 4-byte integer: no error, every row
    ("errors_count_null", "false", ALL),
    ("errors_count_present", "true", ALL),
    # reference
    ("reference_eq", "ERP-001", {"done"}),
    ("reference_not_eq", "ERP-001", {"broke", "broke2", "waiting"}),
    ("reference_in", "ERP-001,ERP-100", {"done", "broke2"}),
    ("reference_not_in", "ERP-001", {"broke", "broke2", "waiting"}),
    ("reference_lt", "ERP-010", {"done"}),
    ("reference_lteq", "ERP-010", {"done", "broke"}),
    ("reference_gt", "ERP-010", {"broke2"}),
    ("reference_gteq", "ERP-010", {"broke", "broke2"}),
    ("reference_null", "true", {"waiting"}),
    ("reference_null", "false", {"done", "broke", "broke2"}),
    ("reference_present", "true", {"done", "broke", "broke2"}),
    ("reference_present", "false", {"waiting"}),
    ("reference_cont", "rp-1", {"broke2"}),
    ("reference_cont", "%", set()),  # a literal %, not a wildcard
    ("reference_cont", "_", set()),
    ("reference_start", "ERP-01", {"broke"}),
    ("reference_end", "00", {"broke2"}),
    # reference_origin ("" is not present, but not null either)
    ("reference_origin_eq", "erp", {"done", "broke2"}),
    ("reference_origin_not_eq", "erp", {"broke", "waiting"}),
    ("reference_origin_in", "crm", {"broke"}),
    ("reference_origin_not_in", "erp,crm", {"waiting"}),
    ("reference_origin_lt", "d", {"broke", "waiting"}),
    ("reference_origin_lteq", "crm", {"broke", "waiting"}),
    ("reference_origin_gt", "crm", {"done", "broke2"}),
    ("reference_origin_gteq", "erp", {"done", "broke2"}),
    ("reference_origin_null", "true", set()),
    ("reference_origin_present", "false", {"waiting"}),
    ("reference_origin_present", "true", {"done", "broke", "broke2"}),
    ("reference_origin_cont", "R", {"done", "broke", "broke2"}),
    ("reference_origin_start", "c", {"broke"}),
    ("reference_origin_end", "p", {"done", "broke2"}),
]


def mismatches(api, copies, cases):
    """The cases whose list differs from the expected one: (filter, value, got, expected)."""
    wrong = []
    for filter_, value, expected in cases:
        got = listed(api, copies, **{f"filter[q][{filter_}]": value})
        if got != expected:
            wrong.append((filter_, value, got, expected))
    return wrong


def test_every_predicate_on_status_timestamps_errors_count_and_references(api, copies):
    assert mismatches(api, copies, CASES) == []


def test_every_predicate_on_the_order_ids(api, copies):
    good, bad1, bad2, target = copies.good, copies.bad1, copies.bad2, copies.target
    cases = [
        ("source_order_id_eq", good, {"done", "waiting"}),
        ("source_order_id_not_eq", good, {"broke", "broke2"}),
        ("source_order_id_in", f"{bad1},{bad2}", {"broke", "broke2"}),
        ("source_order_id_not_in", good, {"broke", "broke2"}),
        ("source_order_id_null", "false", ALL),
        ("source_order_id_present", "true", ALL),
        ("source_order_id_cont", good[2:8], {"done", "waiting"}),
        ("source_order_id_start", bad1[:8], {"broke"}),
        ("source_order_id_end", bad2[-8:], {"broke2"}),
        ("target_order_id_eq", target, {"done"}),
        ("target_order_id_not_eq", target, {"broke", "broke2", "waiting"}),
        ("target_order_id_in", f"{target},{good}", {"done"}),
        ("target_order_id_not_in", target, {"broke", "broke2", "waiting"}),
        ("target_order_id_null", "true", ALL - copies.with_target),
        ("target_order_id_present", "true", copies.with_target),
        ("target_order_id_cont", target[2:9].lower(), {"done"}),
        ("target_order_id_start", target[:8], {"done"}),
        ("target_order_id_end", target[-8:], {"done"}),
    ]

    assert mismatches(api, copies, cases) == []


@pytest.mark.parametrize("column", ["source_order_id", "target_order_id"])
def test_ordering_predicates_on_an_order_id_split_the_copies_at_it(api, copies, column):
    """Which ids sort before another depends on the collation; where they split must not."""
    if column == "source_order_id":
        pivot, holders, non_null = copies.good, {"done", "waiting"}, ALL
    else:
        pivot, holders, non_null = copies.target, {"done"}, copies.with_target

    def split(predicate):
        return listed(api, copies, **{f"filter[q][{column}_{predicate}]": pivot})

    assert not split("lt") & holders
    assert not split("gt") & holders
    assert split("lteq") == split("lt") | holders
    assert split("gteq") == split("gt") | holders
    assert split("lt") | split("gteq") == non_null


def test_updated_at_filters(api, copies):
    stamps = {
        name: api.retrieve("order_copies", copy_id)["attributes"]["updated_at"]
        for name, copy_id in copies.ids.items()
    }
    pivot = stamps["broke"]

    assert listed(api, copies, **{"filter[q][updated_at_eq]": pivot}) == {
        n for n, s in stamps.items() if s == pivot
    }
    assert listed(api, copies, **{"filter[q][updated_at_lt]": pivot}) == {
        n for n, s in stamps.items() if s < pivot
    }
    assert listed(api, copies, **{"filter[q][updated_at_gteq]": pivot}) == {
        n for n, s in stamps.items() if s >= pivot
    }
    assert listed(api, copies, **{"filter[q][updated_at_present]": "true"}) == ALL


def test_filters_combine_with_and(api, copies):
    assert listed(
        api,
        copies,
        **{"filter[q][status_eq]": "failed", "filter[q][reference_origin_eq]": "erp"},
    ) == {"broke2"}


def test_filters_on_the_options(api, copies):
    assert listed(api, copies, **{"filter[q][reuse_wallet_eq]": "true"}) == ALL
    assert listed(api, copies, **{"filter[q][place_target_order_not_eq]": "false"}) == set()


def test_filter_by_id(api, copies):
    wanted = f"{copies.ids['done']},{copies.ids['waiting']}"

    assert listed(api, copies, **{"filter[q][id_in]": wanted}) == {"done", "waiting"}


def test_meta_record_count_follows_the_filter(api, copies):
    response = api.get("/api/order_copies", **{"filter[q][status_eq]": "failed"})

    assert response.json()["meta"] == {"record_count": 2, "page_count": 1}


# --- sort -------------------------------------------------------------------------------


SORTS = [
    ("created_at", ["done", "broke", "broke2", "waiting"]),
    ("-created_at", ["waiting", "broke2", "broke", "done"]),
    ("status,created_at", ["done", "broke", "broke2", "waiting"]),
    ("-status,-created_at", ["waiting", "broke2", "broke", "done"]),
    ("errors_count,-created_at", ["waiting", "done", "broke", "broke2"]),
    ("-errors_count,created_at", ["broke2", "broke", "done", "waiting"]),
    ("started_at", ["done", "broke", "broke2", "waiting"]),  # nulls last
    ("-started_at", ["waiting", "broke2", "broke", "done"]),  # PostgreSQL: nulls first
    ("completed_at,created_at", ["done", "broke", "broke2", "waiting"]),
    ("-failed_at,created_at", ["done", "waiting", "broke2", "broke"]),
]


def test_sort_ascending_and_descending_on_status_timestamps_and_errors_count(api, copies):
    got = {
        sort: [copies.names([i]).pop() for i in api.ids("/api/order_copies", sort=sort)]
        for sort, _ in SORTS
    }

    assert got == dict(SORTS)


def test_sort_by_updated_at_and_ties_broken_by_id(api, copies):
    stamps = {
        name: api.retrieve("order_copies", copy_id)["attributes"]["updated_at"]
        for name, copy_id in copies.ids.items()
    }

    by_update = copies.names(api.ids("/api/order_copies", sort="updated_at"))
    ordered = [copies.names([i]).pop() for i in api.ids("/api/order_copies", sort="updated_at")]
    tied = [copies.names([i]).pop() for i in api.ids("/api/order_copies", sort="-errors_count")]

    assert by_update == ALL
    assert ordered == sorted(stamps, key=lambda n: (stamps[n], copies.ids[n]))
    assert tied[:2] == ["broke2", "broke"]
    assert tied[2:] == sorted(["done", "waiting"], key=lambda n: copies.ids[n])


def test_sort_by_id_both_ways(api, copies):
    ascending = api.ids("/api/order_copies", sort="id")
    descending = api.ids("/api/order_copies", sort="-id")

    assert len(ascending) == 4
    assert descending == list(reversed(ascending))
    assert set(ascending) == set(copies.ids.values())


def test_the_default_order_is_newest_first(api, copies):
    assert api.ids("/api/order_copies") == api.ids("/api/order_copies", sort="-created_at")


@pytest.mark.parametrize("sort", ["colour", "-metadata", "errors_log", "", "status,", "--id"])
def test_an_unknown_sort_field_is_a_400(api, copies, sort):
    assert_error(
        api.get("/api/order_copies", sort=sort), 400, parameter="sort", code="INVALID_SORT"
    )


def test_mode_is_not_a_filter(api, copies):
    """The key's mode decides what a list holds."""
    assert_error(api.get("/api/order_copies", **{"filter[q][mode_eq]": "live"}), 400)
