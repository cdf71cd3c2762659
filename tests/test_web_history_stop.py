"""The history and STOP list pages over real HTTP (httpx against the gateway's own
port): filters kept in the URL, forward and backward pages, a CSV streamed with the
same filters, a delete and a STOP removal after a confirmation (audited with the
customer as actor), clear errors for bad filters, and "not found" for every route of
an account the customer does not own."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from gw_helpers import admin, new_account
from web_helpers import csrf as _csrf
from web_helpers import customer as _customer
from web_helpers import login as _login

from store import tables

_ids = count(50_000_000)


@pytest.fixture
async def panel(make_gateway):
    gw = await make_gateway()
    host, port = gw.endpoints.web
    return gw, f"http://{host}:{port}"


async def insert_messages(gw, system_id: str, *specs: dict) -> list[int]:
    """History rows written through the store's tables, as the message pipeline would;
    each spec overrides the defaults of one row. Returns their ids, in order."""
    account_id = gw.accounts.get(system_id).id
    now = datetime.now(UTC)
    rows = []
    for spec in specs:
        row = {
            "id": next(_ids), "account_id": account_id, "direction": "MT",
            "source_addr": "ovh123", "source_ton": 5, "source_npi": 0,
            "dest_addr": "33600000000", "dest_ton": 1, "dest_npi": 1, "esm_class": 0,
            "registered_delivery": 1, "data_coding": 0, "body": b"hello", "segments": 1,
            "cost": 100, "status": "DELIVERED", "error_code": 0, "upstream": "sim",
            "upstream_id": None, "created_at": now - timedelta(hours=1), "sent_at": None,
            "done_at": None,
        }
        row.update(spec)
        rows.append(row)
    async with gw.engine.begin() as conn:
        await conn.execute(tables.messages.insert(), rows)
    return [r["id"] for r in rows]


def _shown_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r"/history/(\d+)/delete", page)]


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@contextlib.asynccontextmanager
async def _logged_in(gw, base: str, email: str, *accounts: str
                     ) -> AsyncIterator[httpx.AsyncClient]:
    me = await _customer(gw, email, *accounts)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await _login(client, email, me["password"])).status_code == 303
        yield client


async def test_history_filters_stay_in_the_url_and_select_the_messages(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    day = datetime.now(UTC).replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(
        days=3)
    ids = await insert_messages(
        gw, sid,
        {"source_addr": "ACME", "dest_addr": "33611111111", "created_at": day},
        {"source_addr": "ovh123", "dest_addr": "33622222222", "status": "UNDELIVERABLE",
         "error_code": 11, "created_at": day + timedelta(hours=2)},
        {"direction": "MO", "source_addr": "33633333333", "dest_addr": "ovh123",
         "body": b"STOP", "cost": 0, "created_at": day + timedelta(hours=3)},
    )
    async with _logged_in(gw, base, "h@example.test", sid) as client:
        page = await client.get(f"/accounts/{sid}/history")
        assert page.status_code == 200 and _shown_ids(page.text) == ids
        assert '<a href="/accounts/' + sid + '/history" aria-current="page">History</a>' \
            in page.text
        assert f'<time datetime="{day.isoformat()}">' in page.text
        for params, expected in (
            ({"sender": "ACME"}, [ids[0]]),
            ({"receiver": "33622222222"}, [ids[1]]),
            ({"status": "undeliverable"}, [ids[1]]),
            ({"direction": "MO"}, [ids[2]]),
            ({"direction": "MT", "status": "DELIVERED"}, [ids[0]]),
            # A day is the browser's day: 23:30 UTC is the next day at UTC+1.
            ({"from": day.date().isoformat(), "to": day.date().isoformat()}, [ids[0]]),
            ({"from": day.date().isoformat(), "to": day.date().isoformat(), "tz": "60"},
             []),
            ({"from": (day + timedelta(days=1)).date().isoformat(), "tz": "60"}, ids),
        ):
            filtered = await client.get(f"/accounts/{sid}/history", params=params)
            assert filtered.status_code == 200, (params, filtered.text)
            assert _shown_ids(filtered.text) == expected, params
        kept = await client.get(f"/accounts/{sid}/history",
                                params={"sender": "ACME", "direction": "MT"})
        assert 'name="sender" value="ACME"' in kept.text
        assert '<option value="MT" selected>' in kept.text
        # The CSV link carries the same filters.
        assert f'/accounts/{sid}/history/export?sender=ACME&amp;direction=MT' in kept.text


async def test_history_pages_forward_and_back(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    start = datetime.now(UTC) - timedelta(days=2)
    ids = await insert_messages(gw, sid, *(
        {"created_at": start + timedelta(minutes=i), "dest_addr": f"336{i:08d}"}
        for i in range(120)))
    async with _logged_in(gw, base, "p@example.test", sid) as client:
        url = f"/accounts/{sid}/history?sender=ovh123"
        for expected in (ids[:50], ids[50:100]):
            page = await client.get(url)
            assert _shown_ids(page.text) == expected
            url = re.search(r'<a rel="next" href="([^"]+)"', page.text).group(1)
            url = url.replace("&amp;", "&")
            assert "sender=ovh123" in url
        page = await client.get(url)
        assert _shown_ids(page.text) == ids[100:] and 'rel="next"' not in page.text
        for expected in (ids[50:100], ids[:50]):
            prev = re.search(r'<a rel="prev" href="([^"]+)"', page.text)
            page = await client.get(prev.group(1).replace("&amp;", "&"))
            assert _shown_ids(page.text) == expected
        assert 'rel="prev"' not in page.text


async def test_the_csv_is_streamed_with_the_filters_of_the_page(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    other = (await new_account(gw))["system_id"]
    start = datetime.now(UTC) - timedelta(days=1)
    # More than one page of the export stream (1,000 rows), half of it matching.
    wanted = await insert_messages(gw, sid, *(
        {"created_at": start + timedelta(seconds=i), "dest_addr": f"337{i:08d}",
         "source_addr": "ACME" if i % 2 else "ovh123"} for i in range(2400)))
    await insert_messages(gw, sid, {"direction": "MO", "source_addr": "33699999999",
                                    "dest_addr": "ovh", "body": b"=HYPERLINK(1)",
                                    "cost": 0})
    await insert_messages(gw, other, {"source_addr": "ACME"})
    async with _logged_in(gw, base, "csv@example.test", sid) as client:
        async with client.stream("GET", f"/accounts/{sid}/history/export",
                                 params={"sender": "ACME"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/csv")
            assert response.headers["content-disposition"] == (
                f'attachment; filename="history-{sid}.csv"')
            assert "content-length" not in response.headers  # streamed, not built whole
            chunks = [chunk async for chunk in response.aiter_raw()]
        rows = _csv_rows(b"".join(chunks))
        assert [int(r["id"]) for r in rows] == wanted[1::2]
        assert {r["source_addr"] for r in rows} == {"ACME"}
        assert {r["system_id"] for r in rows} == {sid}
        assert rows[0]["body"] == "hello" and rows[0]["cost"] == "1.00"
        # An incoming message's text that reads like a formula is quoted.
        incoming = _csv_rows((await client.get(f"/accounts/{sid}/history/export",
                                               params={"direction": "MO"})).content)
        assert [r["body"] for r in incoming] == ["'=HYPERLINK(1)"]
        assert incoming[0]["source_addr"] == "33699999999"
        empty = await client.get(f"/accounts/{sid}/history/export",
                                 params={"from": "2001-01-01", "to": "2001-01-02"})
        assert empty.status_code == 200 and _csv_rows(empty.content) == []


async def test_bad_history_filters_are_explained_on_the_page(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    async with _logged_in(gw, base, "bad@example.test", sid) as client:
        for params, message in (
            ({"from": "yesterday"}, "The &#39;from&#39; date must be a date"),
            ({"from": "2026-02-10", "to": "2026-02-01"}, "before the &#39;from&#39; date"),
            ({"status": "LOST"}, "Status must be one of"),
            ({"direction": "sideways"}, "Direction must be"),
            ({"sender": "x" * 30}, "sender"),
            ({"after": "abc"}, "page link is not valid"),
            ({"tz": "9999"}, "time zone"),
        ):
            for path in ("history", "history/export"):
                page = await client.get(f"/accounts/{sid}/{path}", params=params)
                assert page.status_code == 400, (params, path)
                assert message in page.text and "Traceback" not in page.text, params
                assert 'role="alert"' in page.text
        kept = await client.get(f"/accounts/{sid}/history",
                                params={"from": "yesterday", "sender": "ACME"})
        assert 'value="yesterday"' in kept.text and 'value="ACME"' in kept.text


async def test_deleting_a_message_asks_first_and_is_audited(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    done, moving = await insert_messages(gw, sid, {"source_addr": "ACME"},
                                         {"status": "ENROUTE", "source_addr": "ACME"})
    async with _logged_in(gw, base, "del@example.test", sid) as client:
        page = await client.get(f"/accounts/{sid}/history", params={"sender": "ACME"})
        assert _shown_ids(page.text) == [done]  # no delete link for a message on its way
        link = re.search(r'href="(/accounts/[^"]+/history/\d+/delete\?[^"]+)"', page.text)
        confirm = await client.get(link.group(1).replace("&amp;", "&"))
        assert confirm.status_code == 200 and "Delete this message" in confirm.text
        back = re.search(r'name="back" value="([^"]*)"', confirm.text).group(1)
        assert back == "sender=ACME"
        url = f"/accounts/{sid}/history/{done}/delete"
        assert (await client.post(url, data={"back": back})).status_code == 403
        deleted = await client.post(url, data={"back": back, "csrf": _csrf(confirm.text)})
        assert deleted.status_code == 303
        assert deleted.headers["location"] == (
            f"/accounts/{sid}/history?sender=ACME&done=deleted")
        after = await client.get(deleted.headers["location"])
        assert "was deleted" in after.text and _shown_ids(after.text) == []
        assert (await client.get(url)).status_code == 404
        kept = await client.post(f"/accounts/{sid}/history/{moving}/delete",
                                 data={"csrf": _csrf(confirm.text)})
        assert kept.status_code == 400 and "still on its way" in kept.text
    remaining = await admin(gw, "history.query", system_id=sid)
    assert [r["id"] for r in remaining] == [moving]
    audit = await admin(gw, "audit.list", target=sid, limit=1)
    assert audit[0]["action"] == "history.delete"
    assert audit[0]["actor"] == "customer:del@example.test"


async def test_stop_list_shows_numbers_and_removes_one_after_a_confirmation(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    for number in ("33611111111", "33622222222"):
        await admin(gw, "stop.add", system_id=sid, destination=number, note="STOP reply")
    async with _logged_in(gw, base, "stop@example.test", sid) as client:
        page = await client.get(f"/accounts/{sid}/stop")
        assert page.status_code == 200
        assert "33611111111" in page.text and "33622222222" in page.text
        assert "2 numbers listed" in page.text and "<time datetime=" in page.text
        search = await client.get(f"/accounts/{sid}/stop", params={"q": "+33622"})
        assert "33622222222" in search.text and "33611111111" not in search.text
        confirm = await client.get(f"/accounts/{sid}/stop/remove",
                                   params={"destination": "33611111111"})
        assert confirm.status_code == 200 and "consent" in confirm.text
        form = {"destination": "33611111111"}
        assert (await client.post(f"/accounts/{sid}/stop/remove", data=form)
                ).status_code == 403
        removed = await client.post(f"/accounts/{sid}/stop/remove",
                                    data={**form, "csrf": _csrf(confirm.text)})
        assert removed.status_code == 303
        assert removed.headers["location"] == f"/accounts/{sid}/stop?done=removed"
        after = await client.get(removed.headers["location"])
        assert "was removed" in after.text and "33611111111" not in after.text
        # Not listed (any more): not found, the form is not shown.
        assert (await client.get(f"/accounts/{sid}/stop/remove",
                                 params={"destination": "33611111111"})).status_code == 404
        assert (await client.post(f"/accounts/{sid}/stop/remove",
                                  data={**form, "csrf": _csrf(confirm.text)})
                ).status_code == 404
        # Account holders do not add numbers.
        assert (await client.post(f"/accounts/{sid}/stop",
                                  data={**form, "csrf": _csrf(confirm.text)})
                ).status_code == 405
    assert [e["destination"] for e in await admin(gw, "stop.list", system_id=sid)] == [
        "33622222222"]
    audit = await admin(gw, "audit.list", target=sid, limit=1)
    assert audit[0]["action"] == "stop.remove"
    assert audit[0]["actor"] == "customer:stop@example.test"


async def test_the_stop_list_pages(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    account_id = gw.accounts.get(sid).id
    async with gw.engine.begin() as conn:  # the store's table: 105 ops would be slow
        await conn.execute(tables.stop_list.insert(), [
            {"account_id": account_id, "destination": f"3361{i:07d}",
             "created_at": datetime.now(UTC)} for i in range(105)])
    async with _logged_in(gw, base, "stops@example.test", sid) as client:
        first = await client.get(f"/accounts/{sid}/stop")
        assert "Page 1 of 2" in first.text and first.text.count("/stop/remove?") == 100
        second = await client.get(f"/accounts/{sid}/stop", params={"page": "2"})
        assert second.text.count("/stop/remove?") == 5 and "33610000104" in second.text
        assert (await client.get(f"/accounts/{sid}/stop", params={"page": "x"})
                ).status_code == 200


async def test_another_customer_gets_not_found_on_every_route(panel):
    gw, base = panel
    sid = (await new_account(gw))["system_id"]
    mine = (await new_account(gw))["system_id"]
    [message] = await insert_messages(gw, sid, {})
    await admin(gw, "stop.add", system_id=sid, destination="33611111111")
    await _customer(gw, "owner@example.test", sid)
    async with _logged_in(gw, base, "intruder@example.test", mine) as client:
        token = _csrf((await client.get("/")).text)
        for target in (sid, "smpp-nosuchaccount"):
            for method, path, data in (
                ("GET", f"/accounts/{target}/history", None),
                ("GET", f"/accounts/{target}/history?sender=ovh123", None),
                ("GET", f"/accounts/{target}/history/export", None),
                ("GET", f"/accounts/{target}/history/{message}/delete", None),
                ("POST", f"/accounts/{target}/history/{message}/delete", {"csrf": token}),
                ("GET", f"/accounts/{target}/stop", None),
                ("GET", f"/accounts/{target}/stop/remove?destination=33611111111", None),
                ("POST", f"/accounts/{target}/stop/remove",
                 {"csrf": token, "destination": "33611111111"}),
            ):
                answer = await client.request(method, path, data=data)
                assert answer.status_code == 404, (method, path)
                assert "among yours" in answer.text and "33611111111" not in answer.text
        # Nor can a message of another account be reached through one's own account.
        assert (await client.get(f"/accounts/{mine}/history/{message}/delete")
                ).status_code == 404
        assert (await client.post(f"/accounts/{mine}/history/{message}/delete",
                                  data={"csrf": token})).status_code == 404
    assert len(await admin(gw, "history.query", system_id=sid)) == 1
    assert len(await admin(gw, "stop.list", system_id=sid)) == 1
