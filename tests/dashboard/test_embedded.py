"""The dashboard on the embedded default (SQLite, no services): a database migrated under
the data dir with a few copies and a key, then ``uvicorn api.app:app`` as ``make run``
starts it, with no database or broker URL set; signing in with the key's form lists the
copies."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_key
from models import Mode
from tests.api.web import _stop, _wait_for
from tests.chaos.processes import UVICORN
from tests.factories import create_copy, make_shop
from tests.services import free_port
from tests.test_embedded import ROOT, embedded_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboard")]


def test_signing_in_on_the_embedded_default_lists_the_copies(
    tmp_path: Path, sqlite: tuple[sessionmaker[Session], object]
) -> None:
    sessions, _ = sqlite  # the embedded default's database: <data dir>/ordercopy.db
    env = embedded_env(tmp_path)
    with sessions.begin() as s:
        source = make_shop(s).source.id
        _, token = issue_key(s, name="dashboard", mode=Mode.TEST)
    copy_ids = {create_copy(sessions, source).id for _ in range(3)}

    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen(
            [UVICORN, "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, log)
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with browser.open(f"{url}/dashboard/copies") as answer:  # sent to sign in first
            assert "/dashboard/sign-in?next=%2Fdashboard%2Fcopies" in answer.url
            csrf = re.search(r'name="csrf" value="([^"]+)"', answer.read().decode())
        assert csrf is not None
        form = {"csrf": csrf.group(1), "next": "/dashboard/copies", "api_key": token}
        with browser.open(
            f"{url}/dashboard/sign-in", urllib.parse.urlencode(form).encode()
        ) as answer:
            assert answer.url == f"{url}/dashboard/copies"
            page = answer.read().decode()
        listed = set(re.findall(r'class="copy-link">(\w+)<', page))
        assert listed, page
        assert listed <= copy_ids
        assert listed == copy_ids
        assert "test mode" in page

        bearer = urllib.request.Request(
            f"{url}/dashboard/copies", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(bearer) as answer:
            assert set(re.findall(r'class="copy-link">(\w+)<', answer.read().decode())) == listed
        # Every other page answers on SQLite too (its own spelling of the charts' buckets
        # and of the failure groups' ids).
        for path in ("/dashboard", "/dashboard/failures", "/dashboard/subscriptions"):
            asked = urllib.request.Request(f"{url}{path}", headers=bearer.headers)
            with urllib.request.urlopen(asked) as answer:
                assert answer.status == 200
                if path == "/dashboard":
                    assert answer.read().decode().count('data-series="created"') == 2
        wrong = urllib.request.Request(
            f"{url}/dashboard", headers={"Authorization": "Bearer oc_test_nope"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        _stop(web)
