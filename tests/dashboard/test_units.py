"""The dashboard's pieces without a browser: failure groups (on PostgreSQL and on the
embedded default's SQLite), the session cookie and its CSRF token, the copies query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from copying import runs
from dashboard import copies, failures, sessions
from dashboard.sessions import CsrfRefused, SignInRequired
from models import ApiKey, Mode, utcnow
from tests.factories import Line, create_copy, make_order, make_sku

OUT_OF_STOCK = "SKU … is out of stock (… requested, … left)"


@pytest.mark.parametrize(
    ("message", "normalized"),
    [
        ("SKU BLUE-TEE is out of stock (2 requested, 0 left)", OUT_OF_STOCK),
        ("SKU RED-CAP is out of stock (5 requested, 1 left)", OUT_OF_STOCK),
        ("wallet entry ABCD expired on 2026-10-31", "wallet entry … expired on …"),
        ("wallet entry XAyRWNUzyN expired on 2026-10-31", "wallet entry … expired on …"),
        ("payment declined: card declined", "payment declined: card declined"),
        ("SKU 'ZZ' does not exist in test mode", "SKU … does not exist in test mode"),
        ("SKU X1 is priced in USD, the order is in EUR", "SKU … is priced in …, the order is in …"),
        ("SKU SKU-abcDEFghij is discontinued", "SKU … is discontinued"),
        ("SKU SKU-abcdefgh is unknown", "SKU … is unknown"),
        ("Re-priced: the e-mail was sent", "Re-priced: the e-mail was sent"),
    ],
)
def test_normalize_replaces_the_particulars(message: str, normalized: str) -> None:
    assert failures.normalize(message) == normalized


def test_a_cause_counts_once_per_copy() -> None:
    log = {
        "line_items": [
            "SKU A-1 is out of stock (2 requested, 0 left)",
            "SKU B-2 is out of stock (1 requested, 0 left)",
        ],
        "payment": "payment declined: card declined",
    }
    assert [(k, m) for k, m, _ in failures.causes(log)] == [
        ("line_items", OUT_OF_STOCK),
        ("payment", "payment declined: card declined"),
    ]


def _fail(sessions_: Any, gateways: Any, mode: Mode = Mode.TEST) -> list[str]:
    """Two copies of a two-SKU order, both SKUs short; one copy of a discontinued SKU."""
    with sessions_.begin() as s:
        short = make_order(
            s,
            [Line(make_sku(s, stock=0, mode=mode), 2), Line(make_sku(s, stock=0, mode=mode), 1)],
            mode=mode,
        )
        gone = make_order(s, [Line(make_sku(s, discontinued=True, mode=mode), 1)], mode=mode)
        sources = [short.id, short.id, gone.id]
    ids = [create_copy(sessions_, source, mode=mode).id for source in sources]
    runs.execute(sessions_, ids, gateways=gateways)
    return ids


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_failures_are_grouped_by_cause_on_both_databases(
    database: str, request: pytest.FixtureRequest, gateways: Any
) -> None:
    if database == "sqlite":
        sessions_, gateways = request.getfixturevalue("sqlite")
    else:
        sessions_ = request.getfixturevalue("sessions")
    short_a, short_b, gone = _fail(sessions_, gateways)
    _fail(sessions_, gateways, Mode.LIVE)  # never counted in test mode
    with sessions_.begin() as s:
        found = {(g.key, g.message): g for g in failures.groups(s, Mode.TEST)}
        assert found[("line_items", OUT_OF_STOCK)].failed == 2  # not 4: two messages each
        assert found[("line_items", "SKU … is discontinued")].failed == 1
        group = failures.group(s, Mode.TEST, "line_items", OUT_OF_STOCK)
        assert sorted(group.failed_ids) == sorted([short_a, short_b])
        assert group.newest_at is not None
        assert failures.group(s, Mode.TEST, "line_items", "SKU … is discontinued").failed_ids == [
            gone
        ]
        assert failures.group(s, Mode.TEST, "line_items", "no such message").failed_ids == []


def test_the_session_cookie_is_signed_expires_and_dies_with_its_key(committed: Any) -> None:
    from api.auth import issue_key

    with committed.begin() as s:
        key, _ = issue_key(s, name="ops", mode=Mode.LIVE)
        cookie = sessions.session_cookie(key)
        old = sessions.session_cookie(key, now=utcnow() - sessions.LIFETIME - timedelta(1))
    viewer = sessions.viewer(None, cookie, "/dashboard")
    assert (viewer.mode, viewer.key_name) == (Mode.LIVE, "ops")
    sessions.check_csrf(viewer, viewer.csrf)
    for token in (None, "", viewer.csrf[:-1] + "x"):
        with pytest.raises(CsrfRefused):
            sessions.check_csrf(viewer, token)
    key_id, expires, nonce, signature = cookie.split(".")
    forged = [
        f"{key_id}.{int(expires) + 3600}.{nonce}.{signature}",  # a longer life
        f"{key_id}.{expires}.{nonce}x.{signature}",
        "not-a-cookie",
    ]
    for value in forged:
        with pytest.raises(SignInRequired) as refused:
            sessions.viewer(None, value, "/dashboard/copies")
        assert refused.value.next_url == "/dashboard/copies"
        assert not refused.value.expired
    with pytest.raises(SignInRequired) as refused:
        sessions.viewer(None, old, "/dashboard")
    assert refused.value.expired
    with committed.begin() as s:
        s.execute(update(ApiKey).values(revoked_at=utcnow()))
    with pytest.raises(SignInRequired):
        sessions.viewer(None, cookie, "/dashboard")


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/dashboard/copies?status=failed", "/dashboard/copies?status=failed"),
        ("/dashboard", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("https://evil.example/dashboard", "/dashboard"),
        ("/dashboardx", "/dashboard"),
        ("/dashboard/\\evil", "/dashboard"),
        (None, "/dashboard"),
    ],
)
def test_after_signing_in_only_a_dashboard_page_is_a_destination(
    asked: str | None, goes_to: str
) -> None:
    assert sessions.safe_next(asked) == goes_to


def test_the_copies_query_ignores_what_it_cannot_use_and_says_so() -> None:
    query = copies.parse(
        {
            "status": "failed",
            "error_key": "payment",
            "created_from": "2026-13-40",
            "source_order_number": "12; drop",
            "sort": "-password",
            "page": "0",
            "colour": "blue",
            "reference": "a\x00b",
            "customer_email": "x" * 300,
        }
    )
    assert query.filters == {"status": "failed", "error_key": "payment"}
    assert (query.sort, query.page) == ("-created_at", 1)
    assert len(query.ignored) == 7
    assert copies.parse({"error_key": 'x"]'}).filters == {}
    assert query.url(page=2) == "/dashboard/copies?status=failed&error_key=payment&page=2"


NASTY = [
    "/dashboard/copies/%00",
    "/dashboard/copies/x%27%22%3C",
    "/dashboard/orders/%00abc",
    "/dashboard/subscriptions/%E2%80%A6",
    "/dashboard/bulk-jobs/..%2F..",
    "/dashboard/copies?reference=%00&error_text=%00&customer_email=%00",
    "/dashboard/copies?error_key=%22%5D&sort=%00&page=99999999999999999999",
    "/dashboard/failures/group?key=%00&message=%00&action=retry",
    "/dashboard/subscriptions?status=%00&page=-1",
    "/dashboard/static/..%2Fsessions.py",
]


def test_bad_input_is_never_a_500(committed: Any) -> None:
    from fastapi.testclient import TestClient

    from api.app import app
    from api.auth import issue_key

    with committed.begin() as s:
        _, token = issue_key(s, name="ops", mode=Mode.TEST)
    bearer = {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in NASTY:
            answer = client.get(path, headers=bearer)
            assert answer.status_code in (200, 404), (path, answer.status_code)
        for path in ("/dashboard/copies/%00/retry", "/dashboard/subscriptions/%00/cancel"):
            answer = client.post(path, headers=bearer, content=b"\xff\x00=%%%")
            assert answer.status_code == 404, (path, answer.status_code)
        answer = client.post("/dashboard/bulk-jobs", headers=bearer, data={"action": "explode"})
        assert answer.status_code == 400
