"""``page[number]``, ``page[size]``: ``meta.record_count``/``page_count`` and
``links.first/prev/next/last`` on every list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import insert, select, update

from api.cursors import Cursor
from api.pages import EXACT_COUNT
from copying.copies import copy_states
from copying.copies.options import CopyOptions
from models import Mode, OrderCopy, db
from tests.api.errors import assert_error
from tests.factories import create_copy, make_shop

COPIES = 23


@pytest.fixture
def copy_ids(api, committed) -> list[str]:
    """23 copies, newest first (the default order)."""
    with committed.begin() as session:
        source = make_shop(session).source.id
    for n in range(COPIES):
        create_copy(committed, source, reference=f"R{n:02}")
    return api.ids("/api/order_copies", **{"page[size]": "25"})


def query_of(link: str) -> dict[str, str]:
    parts = urlsplit(link)
    assert parts.path == "/api/order_copies"
    return dict(parse_qsl(parts.query))


def test_the_default_page_is_10_records_with_counts_and_links(api, copy_ids):
    document = api.get("/api/order_copies").json()

    assert [c["id"] for c in document["data"]] == copy_ids[:10]
    assert document["meta"] == {"record_count": COPIES, "page_count": 3}
    links = document["links"]
    assert set(links) == {"first", "next", "last"}
    assert query_of(links["first"]) == {"page[number]": "1"}
    assert query_of(links["next"]) == {"page[number]": "2"}
    assert query_of(links["last"]) == {"page[number]": "3"}


def test_a_middle_page_links_both_ways(api, copy_ids):
    document = api.get("/api/order_copies", **{"page[number]": "2"}).json()

    assert [c["id"] for c in document["data"]] == copy_ids[10:20]
    assert query_of(document["links"]["prev"])["page[number]"] == "1"
    assert query_of(document["links"]["next"])["page[number]"] == "3"


def test_the_last_page_has_the_rest_and_no_next(api, copy_ids):
    document = api.get("/api/order_copies", **{"page[number]": "3"}).json()

    assert [c["id"] for c in document["data"]] == copy_ids[20:]
    assert "next" not in document["links"]
    assert query_of(document["links"]["prev"])["page[number]"] == "2"


def test_following_next_visits_every_record_once_in_order(api, copy_ids):
    seen, url = [], "/api/order_copies?page[size]=4&sort=-id"
    for _ in range(COPIES):  # bounded: at most one page per record
        document = api.client.get(url, headers=api.headers()).json()
        seen += [c["id"] for c in document["data"]]
        if "next" not in document["links"]:
            break
        url = document["links"]["next"]

    assert seen == sorted(copy_ids, reverse=True)
    assert document["meta"] == {"record_count": COPIES, "page_count": 6}


def test_links_keep_the_filters_sort_and_page_size(api, copy_ids):
    params = {
        "filter[q][reference_start]": "R1",
        "sort": "-id",
        "page[size]": "3",
        "page[number]": "2",
    }
    tens = api.get("/api/order_copies", **{"filter[q][reference_start]": "R1"}).json()["data"]
    ids = sorted((c["id"] for c in tens), reverse=True)

    document = api.get("/api/order_copies", **params).json()

    assert [c["id"] for c in document["data"]] == ids[3:6]
    assert document["meta"] == {"record_count": 10, "page_count": 4}
    for name, number in (("first", "1"), ("prev", "1"), ("next", "3"), ("last", "4")):
        assert query_of(document["links"][name]) == {**params, "page[number]": number}, name


@pytest.mark.parametrize("size", ["1", "25"])
def test_page_size_from_1_to_25(api, copy_ids, size):
    document = api.get("/api/order_copies", **{"page[size]": size}).json()

    assert len(document["data"]) == min(int(size), COPIES)
    assert document["meta"]["page_count"] == -(-COPIES // int(size))


def test_a_page_past_the_last_is_empty_and_links_back(api, copy_ids):
    document = api.get("/api/order_copies", **{"page[number]": "9"}).json()

    assert document["data"] == []
    assert document["meta"] == {"record_count": COPIES, "page_count": 3}
    assert query_of(document["links"]["prev"])["page[number]"] == "3"
    assert "next" not in document["links"]


def test_an_empty_list_has_one_page_of_nothing(api):
    document = api.get("/api/order_copies").json()

    assert document["data"] == []
    assert document["meta"] == {"record_count": 0, "page_count": 0}
    assert query_of(document["links"]["first"]) == query_of(document["links"]["last"])
    assert set(document["links"]) == {"first", "last"}


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("page[size]", "26"),
        ("page[size]", "0"),
        ("page[size]", "-1"),
        ("page[size]", "ten"),
        ("page[number]", "0"),
        ("page[number]", "1.5"),
        ("page[number]", "²"),  # a digit to str.isdigit, not to int()
        ("page[number]", str(2**31)),
        ("page[cursor]", "abc"),
    ],
)
def test_a_bad_page_parameter_is_a_400(api, parameter, value):
    assert_error(api.get("/api/order_copies", **{parameter: value}), 400, parameter=parameter)


# --- keyset pages (page[after], page[before]) and lists past the exact count -----------------


def walk(api, url: str, link: str) -> list[str]:
    """Every id from ``url`` on, following ``links.<link>`` (prev: in the list's order)."""
    pages: list[list[str]] = []
    for _ in range(COPIES + 1):  # bounded: at most one page per record
        document = api.client.get(url, headers=api.headers()).json()
        pages.append([c["id"] for c in document["data"]])
        if link not in document["links"]:
            break
        url = document["links"][link]
    return [i for page in (pages if link == "next" else pages[::-1]) for i in page]


def cursor(sort: str, copy_id: str) -> str:
    """The API's cursor of the copy ``copy_id`` in ``sort``, from its stored values."""
    name = sort.removeprefix("-")
    with db.sessions().begin() as session:
        value = session.scalar(select(getattr(OrderCopy, name)).where(OrderCopy.id == copy_id))
    return Cursor(sort, (value, copy_id)).encode()


@pytest.fixture
def half_completed(copy_ids, committed) -> list[str]:
    """Every other copy completed, at moments that repeat (ties broken by id); the ids in
    ``sort=completed_at`` order as PostgreSQL has it (NULLs last)."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with committed.begin() as session:
        for n, copy_id in enumerate(copy_ids[::2]):
            session.execute(
                update(OrderCopy)
                .where(OrderCopy.id == copy_id)
                .values(completed_at=start + timedelta(minutes=n // 3))
            )
        return list(
            session.scalars(
                select(OrderCopy.id).order_by(
                    OrderCopy.completed_at.asc().nulls_last(), OrderCopy.id
                )
            )
        )


@pytest.mark.parametrize("sort", ["completed_at", "-completed_at", "-created_at"])
def test_keyset_pages_visit_every_record_once_in_order_both_ways(api, half_completed, sort):
    numbered = api.ids("/api/order_copies", sort=sort, **{"page[size]": "25"})
    if sort == "completed_at":
        assert numbered == half_completed
    url = "/api/order_copies?" + urlencode(
        {"sort": sort, "page[size]": "4", "page[after]": cursor(sort, numbered[0])}
    )

    forward = walk(api, url, "next")
    last_page = api.client.get(url, headers=api.headers()).json()
    for _ in range(COPIES):
        if "next" not in last_page["links"]:
            break
        last_page = api.client.get(last_page["links"]["next"], headers=api.headers()).json()
    backward = walk(api, last_page["links"]["prev"], "prev") + [c["id"] for c in last_page["data"]]

    assert forward == numbered[1:]
    assert backward == numbered


def test_a_keyset_page_keeps_counts_filters_and_links(api, copy_ids):
    params = {"filter[q][reference_start]": "R1", "sort": "-id", "page[size]": "3"}
    tens = sorted(
        (
            c["id"]
            for c in api.get("/api/order_copies", **{**params, "page[size]": "25"}).json()["data"]
        ),
        reverse=True,
    )

    document = api.get(
        "/api/order_copies", **params, **{"page[after]": cursor("-id", tens[2])}
    ).json()

    assert [c["id"] for c in document["data"]] == tens[3:6]
    assert document["meta"] == {"record_count": 10, "page_count": 4}
    links = {name: query_of(link) for name, link in document["links"].items()}
    assert set(links) == {"first", "last", "prev", "next"}
    assert links["first"] == {**params, "page[number]": "1"}
    assert links["last"] == {**params, "page[number]": "4"}
    assert links["next"] == {**params, "page[after]": cursor("-id", tens[5])}
    assert links["prev"] == {**params, "page[before]": cursor("-id", tens[3])}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"page[after]": "not a cursor"}, "page[after]"),
        ({"page[before]": "e30"}, "page[before]"),  # {} in base64
        ({"page[after]": Cursor("-created_at", ("yesterday", "x")).encode()}, "page[after]"),
        ({"page[after]": Cursor("-created_at", (None, "x")).encode()}, "page[after]"),
        (
            {"page[after]": Cursor("-created_at", ("2030-01-01T00:00:00+00:00", "a\x00")).encode()},
            "page[after]",
        ),
        (
            {"page[after]": Cursor("-created_at", ("0001-01-01T00:00:00+14:00", "a")).encode()},
            "page[after]",
        ),
        ({"page[after]": base64.urlsafe_b64encode(b"[" * 3_000).decode()}, "page[after]"),
        # Made for another sort than the request's (the default, -created_at).
        ({"page[after]": Cursor("-id", ("x",)).encode()}, "page[after]"),
        ({"page[after]": Cursor("-id", ("x",)).encode(), "sort": "-id"}, "page[after]"),
        (
            {"page[after]": Cursor("-id", ("x",)).encode(), "page[number]": "2", "sort": "-id"},
            "page[after]",
        ),
        (
            {"page[after]": Cursor("-id", ("x",)).encode(), "page[before]": "x", "sort": "-id"},
            "page[before]",
        ),
    ],
)
def test_a_cursor_the_api_did_not_make_for_this_sort_is_a_400(api, params, parameter):
    assert_error(api.get("/api/order_copies", **params), 400, parameter=parameter)


#: More copies than a list counts exactly.
LONG = EXACT_COUNT + 5


@pytest.fixture
def long_list(committed) -> list[str]:
    """``LONG`` test copies (and a live one), inserted by SQL, one second apart; their ids
    newest first (the default order)."""
    with committed.begin() as session:
        source = make_shop(session).source.id
        start = datetime(2030, 1, 1, tzinfo=UTC)
        rows = [
            copy_states.new_row(
                mode=Mode.LIVE if n == LONG else Mode.TEST,
                source_order_id=source,
                options=CopyOptions(),
                now=start + timedelta(seconds=n),
            )
            for n in range(LONG + 1)
        ]
        session.execute(insert(OrderCopy.__table__), rows)
    return [row["id"] for row in reversed(rows) if row["mode"] == Mode.TEST]


def test_past_the_exact_count_the_count_is_an_estimate_and_deep_pages_go_by_keyset(api, long_list):
    first = api.get("/api/order_copies").json()

    assert [c["id"] for c in first["data"]] == long_list[:10]
    assert first["meta"]["record_count_estimated"] is True
    assert first["meta"]["record_count"] > EXACT_COUNT
    assert first["meta"]["page_count"] == -(-first["meta"]["record_count"] // 10)
    assert set(first["links"]) == {"first", "next"}  # no last: the count is not known
    assert query_of(first["links"]["next"]) == {"page[number]": "2"}

    deepest = api.get("/api/order_copies", **{"page[number]": str(EXACT_COUNT // 10)}).json()
    assert [c["id"] for c in deepest["data"]] == long_list[EXACT_COUNT - 10 : EXACT_COUNT]
    assert set(query_of(deepest["links"]["next"])) == {"page[after]"}
    following = api.client.get(deepest["links"]["next"], headers=api.headers()).json()
    assert [c["id"] for c in following["data"]] == long_list[EXACT_COUNT:]
    assert "next" not in following["links"]
    assert_error(
        api.get("/api/order_copies", **{"page[number]": str(EXACT_COUNT // 10 + 1)}),
        400,
        parameter="page[number]",
    )


def test_a_filtered_list_within_the_exact_count_counts_exactly(api, long_list):
    document = api.get(
        "/api/order_copies", **{"filter[q][created_at_gteq]": "2030-01-01T02:46:00Z"}
    ).json()

    assert document["meta"] == {"record_count": LONG - 9960, "page_count": 5}
    assert query_of(document["links"]["last"]) == {
        "filter[q][created_at_gteq]": "2030-01-01T02:46:00Z",
        "page[number]": "5",
    }
