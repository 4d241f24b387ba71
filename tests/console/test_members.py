"""The member directory, member profiles, export and erasure — pages and API, on both databases.

Expected values are read from the database here with SQL of the test's own
(profile state, ledger, memberships), never from the page code.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, Text, select, text, type_coerce
from typer.testing import CliRunner

import qunyun.cli  # noqa: F401  (registers the commands)
from qunyun.cli.app import app as cli
from qunyun.store import models as m
from qunyun.store.db import open_engine
from qunyun.store.types import JSONText
from tests.console.conftest import Site, csrf_of

PRIVATE = {"position", "company", "career", "age_band"}  # private_in_community in the default fields
XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


# ------------------------------------------------------------------ helpers


def _sql(site: Site, sql: str, **params: Any) -> list[Any]:
    engine = open_engine(site.db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _profiles(site: Site) -> dict[str, dict[str, Any]]:
    """user id → stored profile (the profile playbook's state), for the demo community."""
    rows = _sql(site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'profile'")
    return {key[2:]: json.loads(value) for key, value in rows if key.startswith("m:")}


def _members(site: Site) -> dict[str, tuple[int, str]]:
    """user id → (members.id, name) of the demo's members not erased."""
    rows = _sql(site, "SELECT user_id, id, name FROM members WHERE community_id = 'demo' AND erased = :f", f=False)
    return {uid: (int(mid), name) for uid, mid, name in rows}


def _ids_on(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-testid="member-row" data-member-id="(\d+)"', page)]


def _rows_on(page: str) -> int:
    return page.count('data-testid="member-row"')


def _total_on(page: str) -> int:
    found = re.search(r"(?:of|/)\s*\d+\s*(?:页)?\s*·\s*(?:共\s*)?([\d,]+)", page)
    assert found, "no pager on the page"
    return int(found.group(1).replace(",", ""))


def _api(client: TestClient, path: str, token: str, method: str = "GET") -> tuple[int, Any]:
    answer = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    return answer.status_code, answer.json()


def _token(site: Site, user: str, scopes: list[str]) -> str:
    from qunyun.console.accounts import Accounts

    engine = open_engine(site.db_url)
    try:
        return Accounts(engine, site.clock).create_token(user, f"{user}-{'-'.join(scopes)}", scopes)
    finally:
        engine.dispose()


def _engine_of(client: TestClient) -> Any:
    return client.app.state.console.engine  # type: ignore[attr-defined]


# ---------------------------------------------------------------- directory


def test_directory_lists_every_member_for_an_admin(demo_site: Site) -> None:
    members = _members(demo_site)
    page = demo_site.client("adam").get("/c/demo/members?lang=en&sort=name&dir=asc")
    assert page.status_code == 200
    assert _total_on(page.text) == len(members)
    assert _rows_on(page.text) == min(50, len(members))
    # sorted by name: the first rows are the alphabetically first names
    first = sorted(members.values(), key=lambda v: ((v[1] or "").lower(), v[0]))[:3]
    ids = _ids_on(page.text)
    assert ids[:3] == [mid for mid, _ in first]
    assert 'data-testid="members-table"' in page.text and "Last seen" in page.text


def test_search_by_city_tag_and_text_finds_the_right_members(demo_site: Site) -> None:
    profiles = _profiles(demo_site)
    members = _members(demo_site)
    client = demo_site.client("adam")
    city = next(p["fields"]["city"] for p in profiles.values() if p.get("fields", {}).get("city"))

    def expected(pred: Any) -> set[int]:
        return {members[uid][0] for uid, p in profiles.items() if uid in members and pred(p)}

    by_city = client.get("/c/demo/members", params={"city": city})
    want = expected(lambda p: city.lower() in (p.get("fields", {}).get("city") or "").lower())
    assert want and set(_ids_on(by_city.text)) == want and _total_on(by_city.text) == len(want)

    tag = f"city:{city.lower()}"
    by_tag = client.get("/c/demo/members", params={"tag": tag})
    assert set(_ids_on(by_tag.text)) == expected(lambda p: tag in p.get("tags", []))

    expertise = next(t for p in profiles.values() for t in p.get("tags", []) if ":" not in t)
    by_exp = client.get("/c/demo/members", params={"expertise": expertise})
    assert set(_ids_on(by_exp.text)) == expected(
        lambda p: expertise in (p.get("fields", {}).get("expertise") or "").lower()
    )

    # free text: every word in the name or a field (an admin sees them all)
    word = next(p["fields"]["position"] for p in profiles.values() if p.get("fields", {}).get("position"))
    by_text = client.get("/c/demo/members", params={"q": f"{word} {city}"})
    want = {
        mid for uid, (mid, name) in members.items()
        if all(any(w.lower() in v.lower() for v in [name or "", uid, *profiles.get(uid, {}).get("fields", {}).values()])
               for w in (word, city))
    }
    assert set(_ids_on(by_text.text)) == want


def test_sql_looking_input_matches_only_honestly(demo_site: Site) -> None:
    members = _members(demo_site)
    profiles = _profiles(demo_site)
    client = demo_site.client("adam")
    for probe in ("' OR 1=1 --", "%", "_", "\\", '"'):
        answer = client.get("/c/demo/members", params={"q": probe})
        assert answer.status_code == 200
        want = {
            mid for uid, (mid, name) in members.items()
            if any(probe in v.lower() for v in [name or "", uid, *profiles.get(uid, {}).get("fields", {}).values()])
        }
        assert set(_ids_on(answer.text)) == want, probe
        assert _total_on(answer.text) == len(want), probe
    # the user ids all hold "-" and "u": an honest match, not a wildcard
    assert _total_on(client.get("/c/demo/members", params={"q": "u-0"}).text) == len(
        [u for u in members if "u-0" in u]
    )


def test_sorting_and_paging(demo_site: Site) -> None:
    client = demo_site.client("adam")
    points = {
        int(mid): int(bal)
        for mid, bal in _sql(demo_site, """SELECT m.id, coalesce(sum(a.balance), 0) FROM members m
                LEFT JOIN ledger_accounts a ON a.member_id = m.id AND a.currency = 'POINTS'
                WHERE m.community_id = 'demo' AND m.erased = :f GROUP BY m.id""", f=False)
    }
    top = client.get("/c/demo/members?sort=points&dir=desc")
    ids = _ids_on(top.text)
    assert [points[i] for i in ids] == sorted((points[i] for i in ids), reverse=True)
    assert points[ids[0]] == max(points.values())
    low = _ids_on(client.get("/c/demo/members?sort=points&dir=asc").text)
    assert points[low[0]] == min(points.values())
    second = _ids_on(client.get("/c/demo/members?sort=points&dir=desc&page=2").text)
    assert second and not set(second) & set(ids)
    assert points[second[0]] <= points[ids[-1]]
    messages = {
        int(mid): int(n) for mid, n in _sql(
            demo_site, "SELECT member_id, sum(messages) FROM member_groups WHERE community_id = 'demo' GROUP BY member_id"
        )
    }
    by_msgs = _ids_on(client.get("/c/demo/members?sort=messages&dir=desc").text)
    assert messages.get(by_msgs[0], 0) == max(messages.get(i, 0) for i in _members(demo_site).values() for i in [i[0]])


def test_filters_by_group_status_and_level(demo_site: Site) -> None:
    client = demo_site.client("adam")
    removed = {int(r[0]) for r in _sql(demo_site, """SELECT DISTINCT ms.member_id FROM memberships ms
        JOIN groups g ON g.id = ms.group_id WHERE g.community_id = 'demo' AND ms.status = 'removed'
        AND ms.member_id NOT IN (SELECT member_id FROM memberships WHERE status = 'active')""")}
    page = client.get("/c/demo/members?status=removed")
    assert _total_on(page.text) == len(removed) and set(_ids_on(page.text)) <= removed
    group, count = _sql(demo_site, """SELECT g.key, count(*) FROM memberships ms JOIN groups g ON g.id = ms.group_id
        WHERE g.community_id = 'demo' GROUP BY g.key ORDER BY g.key""")[0]
    assert _total_on(client.get(f"/c/demo/members?group={group}").text) == count
    levels = [json.loads(v).get("level", 0) for (v,) in _sql(
        demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'levels'")]
    top = max(levels)
    assert _total_on(client.get(f"/c/demo/members?level={top}").text) == levels.count(top)


def test_archetype_filter_matches_member_values(demo_site: Site) -> None:
    from datetime import date

    from qunyun.analytics.value import member_values

    engine = open_engine(demo_site.db_url)
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(day) FROM rollups WHERE community_id = 'demo'")).scalar()
        day = last if isinstance(last, date) else date.fromisoformat(str(last)[:10])
        values = member_values(conn, "demo", day)
    engine.dispose()
    lurkers = {v.member_id for v in values if v.archetype == "lurker"}
    page = demo_site.client("adam").get("/c/demo/members?archetype=lurker")
    assert _total_on(page.text) == len(lurkers) and set(_ids_on(page.text)) <= lurkers


def test_a_viewer_sees_the_community_level(demo_site: Site) -> None:
    profiles = _profiles(demo_site)
    members = _members(demo_site)
    page = demo_site.client("vera").get("/c/demo/members?lang=en")
    assert page.status_code == 200
    visible = [uid for uid, p in profiles.items()
               if uid in members and not p.get("opt_out") and (p.get("sharing") or "community") != "admins"
               and ((p.get("sharing") == "open") or any(k not in PRIVATE for k in p.get("fields", {})))]
    assert _total_on(page.text) == len(visible)
    for uid, p in profiles.items():
        if p.get("sharing") == "open" or uid not in members:
            continue
        assert f'data-member-id="{members[uid][0]}"' not in page.text
        for fid, value in p.get("fields", {}).items():
            if fid in PRIVATE and len(value) > 3 and not any(
                value in str(q.get("fields", {}).get(f, "")) for q in profiles.values() for f in q.get("fields", {})
                if f not in PRIVATE
            ):
                assert html.escape(value) not in page.text, (fid, value)
    assert "names and private fields are hidden" in page.text
    # a private field is not searchable for a viewer: a position finds nobody who hides it
    position = next(p["fields"]["position"] for p in profiles.values()
                    if p.get("fields", {}).get("position") and p.get("sharing") != "open")
    hidden_hits = [uid for uid, p in profiles.items() if p.get("sharing") == "open"
                   and position in " ".join(p.get("fields", {}).values())]
    answer = demo_site.client("vera").get("/c/demo/members", params={"q": position})
    assert _rows_on(answer.text) == len([u for u in hidden_hits if u in members]) + len([
        uid for uid, p in profiles.items() if uid in members and p.get("sharing") != "open"
        and any(position in v for k, v in p.get("fields", {}).items() if k not in PRIVATE)
    ])
    # the admin's page shows private values that the viewer's does not
    admin = demo_site.client("adam").get("/c/demo/members?lang=en&per_page=200")
    assert 'data-member-id="' in admin.text and "(name hidden)" not in admin.text


def test_opted_out_members_are_hidden_from_viewers_and_marked_for_admins(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    profiles = _profiles(fresh_site)
    members = _members(fresh_site)
    uid = next(u for u, p in profiles.items() if u in members and p.get("fields", {}).get("city"))
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "opt_out": True, "sharing": "open"},
                             actor="test")
    mid, name = members[uid]
    vera = fresh_site.client("vera").get("/c/demo/members", params={"q": name})
    assert f'data-member-id="{mid}"' not in vera.text and _rows_on(vera.text) == 0
    seen = adam.get("/c/demo/members", params={"q": name, "lang": "en"})
    assert f'data-member-id="{mid}"' in seen.text and 'data-testid="opted-out"' in seen.text
    # open again, in the directory again: the viewer sees the name
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "opt_out": False}, actor="test")
    again = fresh_site.client("vera").get("/c/demo/members", params={"q": name})
    assert f'data-member-id="{mid}"' in again.text


def test_admins_level_shows_nobody_to_a_viewer(fresh_site: Site) -> None:
    import yaml

    config = yaml.safe_load(fresh_site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo.setdefault("playbooks", {}).setdefault("profile", {})
    demo["playbooks"]["profile"] = {**(demo["playbooks"]["profile"] or {}), "sharing": "admins"}
    fresh_site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    vera = fresh_site.client("vera").get("/c/demo/members?lang=en")
    assert 'data-testid="members-admins-only"' in vera.text and _rows_on(vera.text) == 0
    adam = fresh_site.client("adam").get("/c/demo/members")
    assert _total_on(adam.text) == len(_members(fresh_site))


def test_both_languages(demo_site: Site) -> None:
    client = demo_site.client("adam")
    assert "First seen" in client.get("/c/demo/members?lang=en").text
    zh = client.get("/c/demo/members?lang=zh-CN").text
    assert "首次出现" in zh and "名片" in zh
    member_id = next(iter(_members(demo_site).values()))[0]
    assert "Timeline" in client.get(f"/c/demo/members/{member_id}?lang=en").text
    assert "时间线" in client.get(f"/c/demo/members/{member_id}?lang=zh-CN").text


# ------------------------------------------------------------------ profile


def test_profile_shows_real_points_level_and_records(demo_site: Site) -> None:
    uid, mid, points = _sql(demo_site, """SELECT m.user_id, m.id, a.balance FROM members m
        JOIN ledger_accounts a ON a.member_id = m.id AND a.currency = 'POINTS'
        WHERE m.community_id = 'demo' ORDER BY a.balance DESC, m.id LIMIT 1""")[0]
    level = json.loads(_sql(demo_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                       "AND playbook = 'levels' AND key = :k", k=f"m:{uid}")[0][0])["level"]
    from qunyun.playbooks.levels import LevelsConfig

    level_name = LevelsConfig().levels[level].title("en")
    page = demo_site.client("vera").get(f"/c/demo/members/{mid}?lang=en")
    assert page.status_code == 200
    points_block = re.search(r'data-testid="member-points".*?class="value">([^<]+)<', page.text, re.S)
    assert points_block and points_block.group(1) == f"{int(points):,}"
    assert level_name in page.text
    records = _sql(demo_site, "SELECT count(*) FROM records WHERE community_id = 'demo' AND member = :u", u=uid)[0][0]
    assert page.text.count('data-testid="record-row"') == min(20, records)
    assert _total_on(page.text) == records
    # a viewer has no export or erase buttons
    assert 'data-testid="member-erase"' not in page.text and 'data-testid="member-export"' not in page.text
    admin = demo_site.client("adam").get(f"/c/demo/members/{mid}")
    assert 'data-testid="member-erase"' in admin.text and 'data-confirm="' in admin.text


def test_profile_of_another_community_is_a_404(demo_site: Site) -> None:
    mid = next(iter(_members(demo_site).values()))[0]
    otto = demo_site.client("otto")
    assert otto.get("/c/demo/members").status_code == 404
    assert otto.get(f"/c/demo/members/{mid}").status_code == 404
    assert otto.get(f"/c/other/members/{mid}").status_code == 404
    assert otto.get("/c/other/members").status_code == 200
    assert demo_site.client("adam").get("/c/demo/members/999999999").status_code == 404


def test_export_equals_the_cli(demo_site: Site) -> None:
    uid, mid = _sql(demo_site, "SELECT user_id, id FROM members WHERE community_id = 'demo' ORDER BY id LIMIT 1")[0]
    client = demo_site.client("adam")
    answer = client.get(f"/c/demo/members/{mid}/export")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    result = CliRunner().invoke(cli, ["members", "export", uid, "--config", str(demo_site.config),
                                      "--db", demo_site.db_url, "--community", "demo"])
    assert result.exit_code == 0, result.output
    assert json.loads(answer.text) == json.loads(result.stdout)
    assert demo_site.client("vera").get(f"/c/demo/members/{mid}/export").status_code == 403
    audited = _sql(demo_site, "SELECT actor, target FROM audit_log WHERE action = 'member.export' AND target = :t",
                   t=str(mid))
    assert audited and audited[-1][0] == "adam"


def _every_text(site: Site) -> list[tuple[str, str, str]]:
    out = []
    engine = open_engine(site.db_url)
    with engine.connect() as conn:
        for table in m.Base.metadata.sorted_tables:
            for col in table.columns:
                if isinstance(col.type, JSONText):
                    expr: Any = type_coerce(col, Text)
                elif isinstance(col.type, String | Text):
                    expr = col
                else:
                    continue
                for (value,) in conn.execute(select(expr).where(col.is_not(None))):
                    out.append((table.name, col.name, str(value)))
    engine.dispose()
    return out


def test_erase_removes_the_name_everywhere_and_is_audited_without_it(fresh_site: Site) -> None:
    uid, mid, name = _sql(fresh_site, """SELECT m.user_id, m.id, m.name FROM members m
        JOIN playbook_state p ON p.community_id = 'demo' AND p.playbook = 'profile' AND p.key = 'm:' || m.user_id
        WHERE m.community_id = 'demo' AND length(m.name) >= 4 ORDER BY m.id LIMIT 1""")[0]
    assert any(name in v for _, _, v in _every_text(fresh_site))
    vera = fresh_site.client("vera")
    assert vera.post(f"/c/demo/members/{mid}/erase", data={"csrf_token": csrf_of(vera)}).status_code == 403
    adam = fresh_site.client("adam")
    assert adam.post(f"/c/demo/members/{mid}/erase").status_code == 403  # no CSRF token
    done = adam.post(f"/c/demo/members/{mid}/erase", data={"csrf_token": csrf_of(adam)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"/c/demo/members/{mid}")
    leaks = [(t, c) for t, c, v in _every_text(fresh_site) if name.casefold() in v.casefold()]
    assert leaks == []
    after = _sql(fresh_site, "SELECT name, erased FROM members WHERE id = :m", m=mid)[0]
    assert after[1] and after[0] == f"erased-{mid}"
    audit = _sql(fresh_site, "SELECT actor, target, before, after FROM audit_log WHERE action = 'member.erase'")
    assert len(audit) == 1
    actor, target, before, after_json = audit[0]
    assert actor == "adam" and target == str(mid)
    assert json.loads(before)["erased"] is False and json.loads(after_json)["erased"] is True
    assert uid not in f"{target}{before}{after_json}"
    page = adam.get(done.headers["location"] + "&lang=en")
    assert 'data-testid="member-erased"' in page.text and name not in page.text


def test_hostile_text_is_escaped(fresh_site: Site) -> None:
    adam = fresh_site.client("adam")
    uid, mid = _sql(fresh_site, "SELECT user_id, id FROM members WHERE community_id = 'demo' ORDER BY id LIMIT 1")[0]
    engine = open_engine(fresh_site.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE members SET name = :n, title = :t WHERE id = :m"), {"n": XSS[1], "t": XSS[0], "m": mid})
    engine.dispose()
    _engine_of(adam).command("demo", "profile", "set", {"member": uid, "sharing": "open", "fields": {
        "city": XSS[0], "expertise": XSS[1], "hobbies": "<b>bold</b>"}}, actor="test")
    for client in (fresh_site.client("adam"), fresh_site.client("vera")):
        for path in ("/c/demo/members?sort=name", f"/c/demo/members/{mid}", "/c/demo/members?q=script"):
            body = client.get(path).text
            assert "<script>alert(1)</script>" not in body, path
            assert "<img src=x onerror" not in body and "<b>bold</b>" not in body, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, path
    hits = fresh_site.client("vera").get("/c/demo/members", params={"q": "<script>"})
    assert f'data-member-id="{mid}"' in hits.text


# ---------------------------------------------------------------------- API


def test_api_directory_and_member(demo_site: Site) -> None:
    client = demo_site.client()
    admin, viewer = _token(demo_site, "adam", ["read"]), _token(demo_site, "vera", ["read"])
    members = _members(demo_site)
    status, body = _api(client, "/api/v1/communities/demo/members?sort=points&per_page=10", admin)
    assert status == 200 and body["ok"] is True and body["data"]["total"] == len(members)
    assert len(body["data"]["rows"]) == 10 and body["data"]["rows"][0]["name"]
    status, body = _api(client, "/api/v1/communities/demo/members?per_page=200", viewer)
    assert status == 200 and all(r["name"] is None for r in body["data"]["rows"] if r["id"] is None)
    assert not any(set(r["fields"]) & PRIVATE for r in body["data"]["rows"] if r["id"] is None)
    mid = body["data"]["rows"][0]["id"] or next(iter(members.values()))[0]
    status, one = _api(client, f"/api/v1/communities/demo/members/{mid}", admin)
    assert status == 200 and one["data"]["id"] == mid
    ledger = _sql(demo_site, "SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE member_id = :m "
                             "AND currency = 'POINTS'", m=mid)[0][0]
    assert one["data"]["points"] == ledger
    for bad in ("?per_page=0", "?page=0", "?level=-1", "?sort=evil", "?status=gone"):
        status, err = _api(client, f"/api/v1/communities/demo/members{bad}", admin)
        assert status == 422 and err["ok"] is False and err["code"] == "invalid_request"
    status, err = _api(client, "/api/v1/communities/demo/members/999999999", admin)
    assert status == 404 and err["code"] == "not_found"
    otto = _token(demo_site, "otto", ["read"])
    assert _api(client, f"/api/v1/communities/demo/members/{mid}", otto)[0] == 404
    assert _api(client, f"/api/v1/communities/other/members/{mid}", otto)[0] == 404
    status, exported = _api(client, f"/api/v1/communities/demo/members/{mid}/export", admin)
    assert status == 200 and exported["data"]["member"]["name"] == one["data"]["name"]
    assert _api(client, f"/api/v1/communities/demo/members/{mid}/export", viewer)[0] == 403


def test_api_erase_needs_write_scope_and_admin(fresh_site: Site) -> None:
    client = fresh_site.client()
    _uid, mid, name = _sql(fresh_site, "SELECT user_id, id, name FROM members WHERE community_id = 'demo' "
                                      "ORDER BY id DESC LIMIT 1")[0]
    read_only = _token(fresh_site, "adam", ["read"])
    viewer = _token(fresh_site, "vera", ["read", "write"])
    writer = _token(fresh_site, "adam", ["read", "write"])
    path = f"/api/v1/communities/demo/members/{mid}/erase"
    assert _api(client, path, read_only, "POST")[0] == 403
    assert _api(client, path, viewer, "POST")[0] == 403
    status, body = _api(client, path, writer, "POST")
    assert status == 200 and body["data"] == {"id": mid, "name": f"erased-{mid}", "failed": []}
    audit = _sql(fresh_site, "SELECT actor, target, after FROM audit_log WHERE action = 'member.erase'")
    assert [(a.split()[0], t) for a, t, _ in audit] == [("adam", str(mid))] and name not in audit[0][2]


@pytest.mark.parametrize("path", ["/api/v1/communities/demo/members", "/api/v1/communities/demo/referrals"])
def test_api_needs_a_token(demo_site: Site, path: str) -> None:
    answer = demo_site.client().get(path)
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
