"""The operators' journeys in a real Chromium, checked on the screen and in the database.

Sign in; find an expert in the directory and open the profile; approve an
elimination batch; award the week's best answers; edit and validate the
community's configuration; erase a member. Journeys that change data run on a
community of their own (``fresh_site``) served for the test; each takes a
screenshot at its key steps (SQLite half) and ends with no error in the
browser's console.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import text

from qunyun.store.db import open_engine
from tests.console.browser import serve, shot, sign_in
from tests.console.conftest import PASSWORD, Site


def sql(site: Site, query: str, **params: Any) -> list[Any]:
    engine = open_engine(site.db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(text(query), params).all())
    engine.dispose()
    return rows


def state(site: Site, playbook: str, key: str) -> Any:
    rows = sql(site, "SELECT value FROM playbook_state WHERE community_id = 'demo' AND playbook = :p AND key = :k",
               p=playbook, k=key)
    return json.loads(rows[0][0]) if rows else None


def enter(chromium: Any, url: str, username: str, lang: str = "en") -> Any:
    """The sign-in journey: the form, then the community's overview."""
    page = sign_in(chromium, url, username, PASSWORD, lang=lang)
    assert page.url.endswith("/c/demo/overview"), page.url
    return page


def snap(site: Site, page: Any, name: str) -> None:
    if site.backend == "sqlite":
        shot(page, f"journey-{name}")


def done(page: Any) -> None:
    assert page.errors == [], page.errors
    page.context.close()


def test_find_an_expert_and_open_the_profile(chromium: Any, fresh_site: Site) -> None:
    profiles = {str(k)[2:]: json.loads(v) for k, v in sql(
        fresh_site, "SELECT key, value FROM playbook_state WHERE community_id = 'demo' AND playbook = 'profile' "
                    "AND key LIKE 'm:%'")}
    experts = sorted((p["fields"]["expertise"], uid) for uid, p in profiles.items()
                     if p.get("fields", {}).get("expertise") and not p.get("opt_out"))
    assert experts, "the demo has no expertise to look for"
    word = experts[0][0].split("、")[0].split(",")[0].strip()
    expected = {uid for uid, p in profiles.items()
                if word.casefold() in str(p.get("fields", {}).get("expertise", "")).casefold() and not p.get("opt_out")}
    with serve(fresh_site.app()) as url:
        page = enter(chromium, url, "adam")
        page.click("nav.side a[href='/c/demo/members']")
        page.fill("[data-testid=member-expertise]", word)
        page.click("[data-testid=member-search-submit]")
        page.wait_for_load_state("networkidle")
        rows = page.locator("[data-testid=member-row]")
        assert rows.count() >= 1
        snap(fresh_site, page, "directory-search")
        shown = {int(i) for i in page.locator("[data-testid=member-row]").evaluate_all(
            "rows => rows.map(r => r.dataset.memberId).filter(Boolean)")}
        ids = {int(r[0]): r[1] for r in sql(fresh_site, "SELECT id, user_id FROM members WHERE community_id = 'demo'")}
        assert {ids[i] for i in shown} == expected
        first = rows.first.locator("[data-testid=member-link]")
        name = first.inner_text().strip()
        first.click()
        page.wait_for_load_state("networkidle")
        assert page.locator("[data-testid=member-name]").inner_text().strip().startswith(name)
        assert word in page.locator("[data-testid=member-profile]").inner_text()
        # the tag search finds the same person by one of their tags
        member_id = int(re.search(r"/members/(\d+)", page.url).group(1))  # type: ignore[union-attr]
        tag = next(t for t in profiles[ids[member_id]]["tags"] if t.startswith("city:"))
        page.goto(f"{url}/c/demo/members")
        page.fill("[data-testid=member-tag]", tag)
        page.click("[data-testid=member-search-submit]")
        page.wait_for_load_state("networkidle")
        tagged = page.locator(f"[data-testid=member-row][data-member-id='{member_id}']")
        assert tagged.count() == 1
        snap(fresh_site, page, "directory-tag")
        done(page)


def _require_approval(site: Site) -> None:
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo["playbooks"].setdefault("elimination", {})["require_approval"] = True
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_approve_an_elimination_batch(chromium: Any, fresh_site: Site) -> None:
    _require_approval(fresh_site)
    app = fresh_site.app()
    due = sql(fresh_site, "SELECT due_at FROM jobs WHERE id = 'demo/sim/g-main/elimination/period'")[0][0]
    due = datetime.fromisoformat(due) if isinstance(due, str) else due
    app.state.console.engine.advance_to(due.replace(tzinfo=UTC) if due.tzinfo is None else due)
    batch = str(sql(fresh_site, "SELECT key FROM playbook_state WHERE community_id = 'demo' "
                                "AND playbook = 'elimination' AND key LIKE 'batch:warn-%-g-main'")[0][0])[6:]
    listed = [e["member"] for e in state(fresh_site, "elimination", f"batch:{batch}")["members"]]
    assert len(listed) >= 2
    with serve(app) as url:
        page = enter(chromium, url, "adam")
        page.goto(f"{url}/c/demo/elimination")
        page.click(f"[data-testid=elimination-batch-row][data-batch='{batch}'] [data-testid=elimination-batch-link]")
        page.wait_for_load_state("networkidle")
        assert page.locator("[data-testid=elimination-batch-member]").count() == len(listed)
        spared = page.locator("[data-testid=elimination-exclude]").first
        spared_uid = spared.get_attribute("value")
        spared.check()
        snap(fresh_site, page, "elimination-batch")
        page.click("[data-testid=elimination-approve]")
        page.wait_for_load_state("networkidle")
        assert page.locator("[data-testid=elimination-result]").count() == 1
        warned = page.locator("[data-testid=elimination-result-warned]").inner_text()
        snap(fresh_site, page, "elimination-approved")
        done(page)
    assert spared_uid in listed
    after = state(fresh_site, "elimination", f"batch:{batch}")
    assert after["status"] == "approved" and after["approved_by"] == "console:adam"
    cause = sql(fresh_site, "SELECT cause FROM records WHERE playbook = 'elimination' AND kind = 'command' "
                            "ORDER BY id DESC LIMIT 1")[0][0]
    direct = {json.loads(r[0])["member"] for r in sql(
        fresh_site, "SELECT payload FROM actions WHERE cause = :c AND type = 'direct'", c=cause)}
    assert direct == set(listed) - {spared_uid}
    names = dict(sql(fresh_site, "SELECT user_id, name FROM members WHERE community_id = 'demo'"))
    assert all((names.get(uid) or uid) in warned for uid in direct)
    audit = sql(fresh_site, "SELECT actor, after FROM audit_log WHERE action = 'elimination.approve'")
    assert len(audit) == 1 and audit[0][0] == "adam" and spared_uid in audit[0][1]


def test_award_the_weeks_best_answers(chromium: Any, fresh_site: Site) -> None:
    week = "2026-W47"
    assert state(fresh_site, "fund", f"award:{week}") is None
    fund = "SELECT balance FROM ledger_accounts WHERE community_id = 'demo' AND code = 'community:fund:CNY'"
    before = sql(fresh_site, fund)[0][0]
    with serve(fresh_site.app()) as url:
        page = enter(chromium, url, "adam")
        page.goto(f"{url}/c/demo/qa?week={week}&status=answered")
        # pick the best answer of the first question waiting for one
        form = page.locator("[data-testid=qa-pick-form]").first
        qid = form.locator("input[name=question]").get_attribute("value")
        answer = form.locator("[data-testid=qa-pick-answer] option").first.get_attribute("value")
        form.locator("[data-testid=qa-pick-answer]").select_option(answer)
        form.locator("[data-testid=qa-pick]").click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".flash").count() >= 1
        page.goto(f"{url}/c/demo/qa?week={week}")
        lines = page.locator("[data-testid=qa-award-line]").count()
        total_shown = page.locator("[data-testid=qa-award-total]").inner_text().strip()
        assert lines > 0
        snap(fresh_site, page, "qa-award-preview")
        page.click("[data-testid=qa-award-pay]")
        page.wait_for_load_state("networkidle")
        assert page.dialogs and total_shown in page.dialogs[-1]
        assert page.locator("[data-testid=qa-award-status]").get_attribute("data-status") == "paid"
        assert page.locator("[data-testid=qa-award-pay]").count() == 0
        snap(fresh_site, page, "qa-award-paid")
        done(page)
    picked = state(fresh_site, "qa", f"q:{qid}")
    assert picked["best"] == answer and picked["status"] == "resolved"
    award = state(fresh_site, "fund", f"award:{week}")
    assert award["status"] == "paid" and len(award["lines"]) == lines
    assert before - sql(fresh_site, fund)[0][0] == sum(award["paid"].values()) > 0
    assert [r[0] for r in sql(fresh_site, "SELECT action FROM audit_log WHERE actor = 'adam' "
                                                    "AND action <> 'login' ORDER BY id")][:2] == [
        "qa.pick", "fund.award"]


def _line_of(section: str, needle: str) -> int:
    return next(i for i, line in enumerate(section.splitlines(), 1) if needle in line)


def test_edit_and_validate_the_configuration(chromium: Any, fresh_site: Site) -> None:
    with serve(fresh_site.app()) as url:
        page = enter(chromium, url, "olivia")
        page.goto(f"{url}/c/demo/config")
        box = page.locator("[data-testid=config-text]")
        original = box.input_value()
        broken = original.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus_Mons")
        assert broken != original
        box.fill(broken)
        page.click("[data-testid=config-validate]")
        problem = page.locator("[data-testid=config-problem]").first
        problem.wait_for()
        line = _line_of(broken, "Mars/Olympus_Mons")
        shown = problem.inner_text()
        assert "timezone" in shown and "Mars/Olympus_Mons" in shown and str(line) in shown
        snap(fresh_site, page, "config-invalid")
        # saving the broken text is refused with the same problem, and nothing is written
        page.click("[data-testid=config-save]")
        page.wait_for_load_state("networkidle")
        assert "timezone" in page.locator("[data-testid=config-problem]").first.inner_text()
        # the refused save answers 422 (the browser logs that status; it is the only error expected)
        assert len(page.errors) == 1 and "422" in page.errors[0] and page.errors[0].endswith("/c/demo/config)")
        page.errors.clear()
        assert "Mars" not in fresh_site.config.read_text(encoding="utf-8")
        # a good edit validates, saves and is listed in the history with its note
        page.locator("[data-testid=config-text]").fill(original.replace("name: 晨光成长营", "name: 晨光成长营·二期"))
        page.click("[data-testid=config-validate]")
        page.locator("[data-testid=config-valid]").wait_for()
        page.fill("[data-testid=config-note]", "rename for the second season")
        page.click("[data-testid=config-save]")
        page.wait_for_load_state("networkidle")
        rows = page.locator("[data-testid=config-version-row]")
        assert "rename for the second season" in rows.first.inner_text()
        snap(fresh_site, page, "config-saved")
        done(page)
    assert "name: 晨光成长营·二期" in fresh_site.config.read_text(encoding="utf-8")
    versions = sql(fresh_site, "SELECT actor, note, text FROM config_versions WHERE community_id = 'demo' ORDER BY id")
    assert versions[-1][0] == "olivia" and versions[-1][1] == "rename for the second season"
    assert "晨光成长营·二期" in versions[-1][2]
    assert not any("Mars" in v[2] for v in versions)


def test_erase_a_member(chromium: Any, fresh_site: Site) -> None:
    member_id, uid, name = sql(fresh_site, "SELECT m.id, m.user_id, m.name FROM members m WHERE community_id = 'demo' "
                                           "AND user_id = 'u-0020'")[0]
    assert sql(fresh_site, "SELECT count(*) FROM messages WHERE member_id = :m AND text <> ''", m=member_id)[0][0] > 0
    with serve(fresh_site.app()) as url:
        page = enter(chromium, url, "adam")
        page.goto(f"{url}/c/demo/members/{member_id}")
        assert page.locator("[data-testid=member-name]").inner_text().strip().startswith(name)
        snap(fresh_site, page, "erase-before")
        page.click("[data-testid=member-erase]")
        page.wait_for_load_state("networkidle")
        assert len(page.dialogs) == 1 and page.dialogs[0].strip()
        assert page.locator("[data-testid=member-erased]").count() == 1
        assert page.locator("[data-testid=member-erase]").count() == 0
        assert name not in page.locator("[data-testid=member-header]").inner_text()
        snap(fresh_site, page, "erase-after")
        done(page)
    erased, new_name = sql(fresh_site, "SELECT erased, name FROM members WHERE id = :m", m=member_id)[0]
    assert erased and new_name != name
    assert sql(fresh_site, "SELECT count(*) FROM messages WHERE member_id = :m AND text <> ''", m=member_id)[0][0] == 0
    audit = sql(fresh_site, "SELECT actor, target FROM audit_log WHERE action = 'member.erase'")
    assert audit == [("adam", str(member_id))]
    assert uid  # the member is kept by id (the ledger still balances)


def test_a_dismissed_confirmation_erases_nothing(chromium: Any, fresh_site: Site) -> None:
    member_id, name = sql(fresh_site, "SELECT id, name FROM members WHERE community_id = 'demo' "
                                      "AND user_id = 'u-0021'")[0]
    audit = "SELECT count(*) FROM audit_log WHERE action <> 'login'"
    before = sql(fresh_site, audit)[0][0]
    with serve(fresh_site.app()) as url:
        page = enter(chromium, url, "adam", lang="zh-CN")
        page.accept_dialogs = False
        page.goto(f"{url}/c/demo/members/{member_id}")
        page.click("[data-testid=member-erase]")
        page.wait_for_load_state("networkidle")
        assert len(page.dialogs) == 1 and page.url.endswith(f"/c/demo/members/{member_id}")
        assert page.locator("[data-testid=member-erased]").count() == 0
        done(page)
    assert sql(fresh_site, "SELECT erased, name FROM members WHERE id = :m", m=member_id)[0] == (False, name)
    assert sql(fresh_site, audit)[0][0] == before
