"""Elimination: the preview against the rollups, and approving a batch end to end."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.console.conftest import Site, csrf_of, sql


def _members(html: str, kind: str) -> list[str]:
    return re.findall(rf'data-testid="elimination-{kind}-row" data-member="([^"]+)"', html)


def test_preview_matches_the_rollups(demo_site: Site) -> None:
    """Everyone listed is below `messages + checkins >= 1` over the last 10 days; nobody active is listed."""
    client = demo_site.client("vera")
    last = sql(demo_site, "SELECT max(day) FROM community_days WHERE community_id = 'demo'")[0][0]
    day = date.fromisoformat(str(last)[:10])
    page = client.get("/c/demo/elimination?group=g-main&lang=en")
    assert page.status_code == 200
    assert f'value="{day.isoformat()}"' in page.text, "the preview measures as of the last day with activity"
    warned = _members(page.text, "warn")
    assert warned, "the demo has inactive members in g-main"
    start = day - timedelta(days=9)
    active = {r.user_id for r in sql(
        demo_site,
        "SELECT m.user_id FROM rollups r JOIN members m ON m.id = r.member_id JOIN groups g ON g.id = r.group_id "
        "WHERE g.key = 'g-main' AND r.day >= :a AND r.day <= :b GROUP BY m.user_id "
        "HAVING sum(r.messages) + sum(r.checkins) >= 1",
        a=start, b=day,
    )}
    assert active and not (set(warned) & active)
    assert "messages + checkins &gt;= 1" in page.text and "over the last 10 days" in page.text
    # the same answer as the playbook's own command (read-only, through the API)
    api = client.get(f"/api/v1/communities/demo/elimination/preview?as_of={day}&group=g-main").json()
    assert api["ok"] is True
    assert [r["member"] for r in api["data"]["groups"][0]["warn"]] == warned
    # nothing was written by looking
    assert sql(demo_site, "SELECT count(*) FROM records WHERE playbook = 'elimination' AND kind = 'command'")[0][0] == 0
    zh = client.get("/c/demo/elimination?group=g-main&lang=zh-CN")
    assert "末位淘汰" in zh.text and _members(zh.text, "warn") == warned


def test_preview_as_of_another_day_and_bad_input(demo_site: Site) -> None:
    client = demo_site.client("vera")
    early = client.get("/c/demo/elimination?as_of=2026-11-03&group=g-main")
    assert early.status_code == 200
    # two days into the community everyone is in the grace period: nobody would be warned
    assert _members(early.text, "warn") == []
    assert client.get("/c/demo/elimination?as_of=garbage").status_code == 200
    assert client.get("/api/v1/communities/demo/elimination/preview?as_of=garbage").status_code == 422
    assert client.get("/api/v1/communities/demo/elimination/preview?group=nope").status_code == 404
    assert demo_site.client("otto").get("/c/demo/elimination").status_code == 404


def _require_approval(site: Site) -> None:
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo["playbooks"]["elimination"]["require_approval"] = True
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _due(site: Site, group: str) -> datetime:
    """When the group's next elimination period job is due (the demo leaves it just after its last day)."""
    due = sql(site, "SELECT due_at FROM jobs WHERE id = :j", j=f"demo/sim/{group}/elimination/period")[0].due_at
    due = datetime.fromisoformat(due) if isinstance(due, str) else due
    return due.replace(tzinfo=UTC) if due.tzinfo is None else due


def _pending(site: Site, group: str, kind: str) -> str:
    rows = sql(site, "SELECT key FROM playbook_state WHERE community_id = 'demo' AND playbook = 'elimination' "
                      "AND key LIKE :k", k=f"batch:{kind}-%-{group}")
    assert len(rows) == 1, rows
    return str(rows[0].key).removeprefix("batch:")


def _approve(client: TestClient, batch: str, exclude: list[str]) -> Any:
    return client.post(f"/c/demo/elimination/batch/{batch}/approve",
                       data={"exclude": exclude, "csrf_token": csrf_of(client)})


def test_approve_a_warning_batch_then_a_removal_batch(fresh_site: Site) -> None:
    _require_approval(fresh_site)
    # the engine fires the period job (moving the clock to it); then the operators sign in
    engine = fresh_site.app().state.console.engine
    due = _due(fresh_site, "g-main")
    engine.advance_to(due)
    adam = fresh_site.client("adam")
    warn = _pending(fresh_site, "g-main", "warn")

    # the batch is listed; a viewer sees it but cannot act
    listing = adam.get("/c/demo/elimination?lang=en")
    assert f'data-batch="{warn}"' in listing.text
    vera = fresh_site.client("vera")
    seen = vera.get(f"/c/demo/elimination/batch/{warn}?lang=en")
    assert seen.status_code == 200 and 'data-testid="elimination-approve"' not in seen.text
    assert _approve(vera, warn, []).status_code == 403
    assert fresh_site.client("otto").get(f"/c/demo/elimination/batch/{warn}").status_code == 404
    # without the CSRF token nothing happens
    assert adam.post(f"/c/demo/elimination/batch/{warn}/approve", data={"exclude": []}).status_code == 403

    page = adam.get(f"/c/demo/elimination/batch/{warn}?lang=en")
    listed = re.findall(r'name="exclude" value="([^"]+)"', page.text)
    assert len(listed) >= 2
    spared = listed[0]
    done = _approve(adam, warn, [spared])
    assert done.status_code == 200, done.text
    warned = re.search(r'data-testid="elimination-result-warned">(.*?)</span></p>', done.text, re.S)
    assert warned and spared not in warned.group(1) and listed[1] in warned.group(1)
    cause = sql(fresh_site, "SELECT cause FROM records WHERE playbook = 'elimination' AND kind = 'command' "
                             "ORDER BY id DESC LIMIT 1")[0].cause
    direct = {json.loads(r.payload)["member"] for r in sql(
        fresh_site, "SELECT payload FROM actions WHERE cause = :c AND type = 'direct'", c=cause)}
    assert direct == set(listed) - {spared}
    assert 'data-testid="elimination-actions"' in done.text
    status = sql(fresh_site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND key = :k",
                  k=f"batch:{warn}")[0].value
    assert '"approved"' in status and '"console:adam"' in status
    audit = sql(fresh_site, "SELECT actor, action, after FROM audit_log WHERE action = 'elimination.approve'")
    assert len(audit) == 1 and audit[0].actor == "adam" and warn in audit[0].after and spared in audit[0].after
    # approving again is refused: the batch is no longer pending
    assert _approve(adam, warn, []).status_code == 409

    # at the deadline a removal batch is prepared for those still below the KPI
    deadline = due + timedelta(days=3, minutes=1)
    engine.advance_to(deadline)
    adam = fresh_site.client("adam")  # a new session: the clock moved three days
    remove = _pending(fresh_site, "g-main", "remove")
    page = adam.get(f"/c/demo/elimination/batch/{remove}?lang=en")
    doomed = re.findall(r'name="exclude" value="([^"]+)"', page.text)
    assert set(doomed) == set(listed) - {spared}
    kept = doomed[0]
    # through the API this time (token-less session + CSRF header), leaving one member out
    api = adam.post("/api/v1/communities/demo/elimination/approve", json={"batch": remove, "exclude": [kept]},
                    headers={"X-CSRF-Token": csrf_of(adam)})
    assert api.status_code == 200, api.text
    data = api.json()["data"]
    assert set(data["removed"]) == set(doomed) - {kept}
    assert {"member": kept, "why": "excluded"} in data["skipped"]
    removes = {a["member"] for a in data["actions"] if a["type"] == "remove"}
    assert removes == set(data["removed"])
    invites = [a for a in data["actions"] if a["type"] == "invite"]
    assert len(invites) == len(data["invited"]) and len(invites) <= len(data["removed"])
    outbox = sql(fresh_site, "SELECT count(*) FROM actions WHERE type = 'remove' AND status = 'pending' "
                              "AND playbook = 'elimination' AND group_key = 'g-main' AND cause LIKE 'cmd:approve-remove-%'")
    assert outbox[0][0] == len(data["removed"])
    # the removed are no longer measured; the one left out is still a member and still measured
    after = adam.get("/api/v1/communities/demo/elimination/preview?group=g-main").json()["data"]["groups"][0]
    measured = {r["member"] for r in after["warn"] + after["remove"]}
    assert not (measured & set(data["removed"]))
    # the moderation log shows who was removed and who was left out
    log = adam.get("/c/demo/moderation?kind=elimination.excluded&lang=en")
    assert kept in log.text
    api_audit = adam.get("/api/v1/communities/demo/audit?action=elimination").json()["data"]
    assert api_audit["total"] == 2


def test_discard(fresh_site: Site) -> None:
    _require_approval(fresh_site)
    fresh_site.app().state.console.engine.advance_to(_due(fresh_site, "g-reading"))
    adam = fresh_site.client("adam")
    batch = _pending(fresh_site, "g-reading", "warn")
    gone = adam.post(f"/c/demo/elimination/batch/{batch}/discard", data={"csrf_token": csrf_of(adam)},
                     follow_redirects=False)
    assert gone.status_code == 303
    value = sql(fresh_site, "SELECT value FROM playbook_state WHERE key = :k", k=f"batch:{batch}")[0].value
    assert '"discarded"' in value
    assert sql(fresh_site, "SELECT count(*) FROM actions WHERE cause LIKE 'cmd:%' AND type = 'direct'")[0][0] == 0
    assert adam.post("/api/v1/communities/demo/elimination/approve", json={"batch": batch},
                     headers={"X-CSRF-Token": csrf_of(adam)}).json()["code"] == "refused"
    assert adam.post("/api/v1/communities/demo/elimination/approve", json={"batch": "warn-x-nope"},
                     headers={"X-CSRF-Token": csrf_of(adam)}).status_code == 404
