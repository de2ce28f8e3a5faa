"""``page[number]``, ``page[size]``: ``meta.record_count``/``page_count`` and
``links.first/prev/next/last`` on every list."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

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
