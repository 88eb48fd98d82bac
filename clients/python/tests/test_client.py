"""The client against a real reco server (see conftest.py): every route family, the API key,
errors as exceptions carrying reco's code and field, and retries on 503 honouring Retry-After."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from typing import Iterator

import pytest

from conftest import Server, psql
from reco_client import RecoClient, RecoError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_health(server: Server) -> None:
    reco = server.client()
    assert reco.live() and reco.ready()
    assert not RecoClient("http://127.0.0.1:9", timeout=2).live()


def test_items_users_and_feedback(server: Server) -> None:
    reco = server.client()
    item = unique("item")
    stored = reco.upsert_item(item, categories=["film"], labels={"year": 1977}, title="Star Wars (1977)")
    assert stored["title"] == "Star Wars (1977)" and stored["categories"] == ["film"]
    assert reco.patch_item(item, hidden=True)["hidden"] is True
    assert reco.get_item(item)["labels"] == {"year": 1977}
    assert reco.upsert_items([{"id": unique("batch")}, {"id": unique("batch")}]) == 2
    assert item in {i["id"] for i in reco.items(page_size=2)}, "pages are followed"

    user = unique("user")
    assert reco.upsert_user(user, labels={"plan": "pro"})["labels"] == {"plan": "pro"}
    assert reco.patch_user(user, labels={"plan": "free"})["labels"] == {"plan": "free"}
    assert reco.upsert_users([{"id": unique("u")}]) == 1
    assert user in {u["id"] for u in reco.users()}

    assert reco.feedback(user, item, "like") == 1
    assert reco.insert_feedback([{"user_id": user, "item_id": item, "type": "view", "value": 2.5,
                                  "timestamp": "2024-01-01T00:00:00Z"}]) == 1
    rows = list(reco.user_feedback(user))
    assert {(r["type"], r["value"]) for r in rows} == {("like", 1.0), ("view", 2.5)}
    assert len(list(reco.item_feedback(item))) == 2
    assert reco.delete_feedback(user, item, type="view") == 1
    reco.delete_item(item)
    with pytest.raises(RecoError) as e:
        reco.get_item(item)
    assert (e.value.status, e.value.code, e.value.field) == (404, "not_found", "id")
    reco.delete_user(user)


def test_recommendations_similar_and_sessions(server: Server) -> None:
    reco = server.client()
    tag = uuid.uuid4().hex[:6]
    items = [f"rec-{tag}-{i}" for i in range(6)]
    reco.upsert_items([{"id": i, "title": f"Title {i}", "categories": [f"cat-{tag}"]} for i in items])
    rows = [{"user_id": f"ru-{tag}-{u}", "item_id": items[(u + k) % 6], "type": "like"}
            for u in range(8) for k in range(3)]
    assert reco.insert_feedback(rows) == len(rows)
    user = f"ru-{tag}-0"
    seen = {items[0], items[1], items[2]}
    # The popularity order is re-ranked in the background: wait until it holds the new items.
    deadline = time.monotonic() + 60
    while len(reco.popular(n=6, category=[f"cat-{tag}"])["items"]) < 6:
        assert time.monotonic() < deadline, "the new items never entered the popularity order"
        time.sleep(0.05)

    recs = reco.recommend(user, n=3, category=[f"cat-{tag}"], fields=["title", "categories"])
    got = [r["id"] for r in recs["items"]]
    assert got and not seen & set(got), recs
    assert all(r["title"] == f"Title {r['id']}" for r in recs["items"]), recs
    assert recs["items"][0]["categories"] == [f"cat-{tag}"]
    assert reco.recommend(user, engine="popularity", exclude=got)["engine"] == "popularity"

    similar = reco.similar(items[0], n=3, fields=["title"])
    assert similar["item_id"] == items[0] and items[0] not in [s["id"] for s in similar["items"]]
    session = reco.session([items[0], items[1]], n=3, category=[f"cat-{tag}"])
    assert session["items"] and not {items[0], items[1]} & {s["id"] for s in session["items"]}
    assert reco.popular(n=2)["items"] and reco.latest(n=2)["items"]


def test_errors_carry_reco_code_and_field(server: Server) -> None:
    reco = server.client()
    with pytest.raises(RecoError) as e:
        reco.recommend("someone", n=0)
    assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_query", "n")
    with pytest.raises(RecoError) as e:
        reco.insert_feedback([{"user_id": "u", "item_id": "", "type": "like"}])
    assert (e.value.code, e.value.field) == ("invalid_field", "[0].item_id")
    with pytest.raises(RecoError) as e:
        server.client(api_key="wrong").recommend("someone")
    assert (e.value.status, e.value.code) == (401, "unauthorized")
    with pytest.raises(RecoError) as e:
        RecoClient("http://127.0.0.1:9", timeout=2).popular()
    assert e.value.status is None and e.value.code == "unreachable"


@contextlib.contextmanager
def table_lock(server: Server, table: str) -> Iterator[str]:
    """Holds an exclusive lock on ``table`` from a psql session named by the returned application
    name, until the block ends or the session is terminated."""
    holder = "pyclient_lock_" + uuid.uuid4().hex[:8]
    lock = subprocess.Popen(
        ["psql", server.db_url, "-c",
         f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);"],
        env=dict(os.environ, PGAPPNAME=holder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while psql(server.db_url,
                   "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                   f"WHERE a.application_name = '{holder}' AND l.mode = 'AccessExclusiveLock' "
                   "AND l.granted").stdout.strip() != "1":
            assert time.monotonic() < deadline, "the lock was never taken"
            time.sleep(0.05)
        yield holder
    finally:
        release(server, holder)
        lock.kill()
        lock.wait()


def release(server: Server, holder: str) -> None:
    psql(server.db_url,
         f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{holder}'")


def test_a_busy_database_is_retried_after_what_retry_after_says(server: Server) -> None:
    """A lock on the items table makes reco's write wait past its statement timeout, so reco
    answers 503 with Retry-After; the lock is released when the client reports its first retry,
    and the retried write succeeds."""
    with table_lock(server, "items") as holder:
        retries = []

        def on_retry(attempt: int, error: RecoError, wait: float) -> None:
            retries.append((attempt, error.status, error.code, error.retry_after, wait))
            release(server, holder)

        reco = server.client(on_retry=on_retry, retries=3)
        item = unique("busy")
        assert reco.upsert_item(item, title="after the lock")["id"] == item
        assert retries and retries[0][:3] == (1, 503, "database_busy"), retries
        assert retries[0][3] is not None and retries[0][4] == retries[0][3], "waited Retry-After"
        assert reco.get_item(item)["title"] == "after the lock"


def test_retries_stop_and_raise(server: Server) -> None:
    """Without retries the 503 is raised as it came."""
    with table_lock(server, "users"):
        with pytest.raises(RecoError) as e:
            server.client(retries=0).upsert_user(unique("user"))
        assert e.value.status == 503 and e.value.retry_after is not None
