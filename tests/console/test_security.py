"""Security sweeps over every route the console has, whatever pages exist.

One community of the module's own is filled with hostile text through the
real paths — events through the engine (a member's name, a question, an
answer, an introduction, an essence entry), the console's own forms (a
session topic, a challenge name, a digest edit, the configuration editor's
community and group names), and SQL only where there is no event path (a
group's stored name, an audit entry's target). Then:

1. every GET route is crawled as the owner with its path parameters taken
   from the database: no page carries a payload unescaped, and a template
   expression typed by a member is never evaluated;
2. the owner of another community gets 404 on every route of this one, and
   a viewer gets 403 on every state change (with a valid CSRF token);
3. every state change refuses a missing or wrong CSRF token and changes nothing;
4. SQL-looking and oversized input in every query parameter never makes a
   500, and the members table is intact afterwards.

The routes are read from ``app.routes`` at run time, so a page added later
is swept without touching this file; a route whose path parameter this file
cannot fill fails the sweep (add its values to ``_values``).
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text

from qunyun.console.pages.overview import CHARTS
from qunyun.core.events import parse_event
from qunyun.store.db import open_engine
from tests.console.conftest import Site, build_site, csrf_of, login

X1 = '<script>alert("x1")</script>'
X2 = '"><img src=x onerror=alert("x2")>'
X3 = 'javascript:alert("x3")'
#: a template expression: Jinja (or anything like it) would print 49 and 54444439
X4 = "{{7*7}}{{7*7777777}}"
X5 = '</textarea><script>alert("x5")</script>'
HOSTILE = X1 + X2 + X4
#: a challenge name is at most 20 characters without spaces
SHORT = '"><svg/onload=x6()>'

#: what must never reach a page as markup
RAW = ('<script>alert("x1")', "<img src=x onerror", '<script>alert("x5")', "<svg/onload")
LINK = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I)
EVALUATED = "54444439"
ESCAPED = "&lt;script&gt;alert("

#: query parameters the pages and the API read (search, filters, paging, sorting, periods)
PARAMS = (
    "q", "tag", "expertise", "city", "group", "level", "archetype", "status", "sort", "dir", "page", "per_page",
    "kind", "member", "since", "until", "actor", "action", "week", "month", "period", "account", "as_of",
    "against", "from", "to", "kpage", "ppage", "top", "weeks", "offset", "limit", "error", "msg", "next", "lang",
)
SQLISH = (
    "' OR 1=1 --", "%", "_", "\\", '"; DROP TABLE members; --', "x" * 10_000, "a\x00b", "🙂👨‍👩‍👧", HOSTILE,
)


@dataclass
class Hostile:
    """The module's community, the values to fill path parameters with, what was planted."""

    site: Site
    values: dict[str, list[str]] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)
    session: str = ""
    challenge: str = ""
    digest: str = ""


def client(site: Site, username: str) -> TestClient:
    """A signed-in client that answers a crash with its 500 (so a sweep lists every one) instead of raising."""
    made = TestClient(site.app(), base_url="http://127.0.0.1", raise_server_exceptions=False)
    login(made, username)
    return made


def sql(site: Site, query: str, **params: Any) -> list[Any]:
    engine = open_engine(site.db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(text(query), params).all())
    engine.dispose()
    return rows


def write(site: Site, query: str, **params: Any) -> None:
    engine = open_engine(site.db_url)
    with engine.begin() as conn:
        conn.execute(text(query), params)
    engine.dispose()


def _require_approval(site: Site) -> None:
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    demo = next(c for c in config["communities"] if c["id"] == "demo")
    demo["playbooks"].setdefault("elimination", {})["require_approval"] = True
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _plant_events(site: Site) -> tuple[str, dict[str, str]]:
    """Hostile names, a question, an answer, an introduction and an essence entry, through the engine."""
    engine = site.app().state.console.engine
    due = sql(site, "SELECT due_at FROM jobs WHERE id = 'demo/sim/g-main/elimination/period'")[0][0]
    due = datetime.fromisoformat(due) if isinstance(due, str) else due
    due = due.replace(tzinfo=UTC) if due.tzinfo is None else due
    engine.advance_to(due)  # prepares the g-main warning batch (require_approval)
    batch = str(sql(site, "SELECT key FROM playbook_state WHERE community_id = 'demo' AND playbook = 'elimination' "
                          "AND key LIKE 'batch:warn-%-g-main'")[0][0]).removeprefix("batch:")
    listed = json.loads(sql(site, "SELECT value FROM playbook_state WHERE community_id = 'demo' "
                                  "AND playbook = 'elimination' AND key = :k", k=f"batch:{batch}")[0][0])["members"]
    uids = [r[0] for r in sql(site, "SELECT user_id FROM members WHERE community_id = 'demo' AND user_id LIKE 'u-%' "
                                    "ORDER BY user_id LIMIT 3 OFFSET 10")]
    asker, answerer, intro = uids
    removable = listed[0]["member"]
    start = due + timedelta(minutes=5)
    counter = itertools.count(1)

    def say(actor: str, name: str, words: str, **extra: Any) -> str:
        n = next(counter)
        engine.handle(parse_event({
            "v": 1, "id": f"hostile-{n}", "ts": (start + timedelta(minutes=n)).isoformat(), "platform": "sim",
            "group": "g-main", "type": "message", "actor": {"id": actor, "name": name}, "msg_id": f"hostile-m{n}",
            "text": words, "content_type": "text", **extra,
        }))
        return f"hostile-m{n}"

    question = say(asker, "Q" + HOSTILE, "#提问 " + HOSTILE + " 私域社群怎么做冷启动呢")
    answer = say(answerer, "A" + HOSTILE, HOSTILE + " 先找种子用户，再做内容", reply_to=question)
    say(intro, "P" + HOSTILE, f"#自我介绍\n城市：{HOSTILE}\n擅长：{HOSTILE}\n职位：{X3}\n来源：{X3}")
    say("u-0002", "管理员", "精华", reply_to=answer)
    say(removable, "R" + HOSTILE, "我还在，" + HOSTILE)
    return batch, {"asker": asker, "answerer": answerer, "intro": intro, "removable": removable}


def _plant_console(site: Site) -> tuple[str, str, str]:
    """A session topic, a challenge name, a digest edit and the configuration, through the console's forms."""
    olivia = client(site, "olivia")
    token = csrf_of(olivia)
    made = olivia.post("/c/demo/sessions", data={"topic": HOSTILE, "speaker": "u-0003", "host": "u-0001",
                                                 "starts_at": "2026-12-20 20:00", "duration": "60", "csrf_token": token},
                       follow_redirects=False)
    assert made.status_code == 303, made.text
    sid = made.headers["location"].split("/sessions/")[1].split("?")[0]
    made = olivia.post("/c/demo/challenges", data={"name": SHORT, "start": "2026-12-24", "days": "7",
                                                   "deposit": "10.00", "deadline": "07:00", "csrf_token": token},
                       follow_redirects=False)
    assert made.status_code == 303, made.text
    ref = made.headers["location"].split("/challenges/")[1].split("?")[0]
    label = "2026-W48"
    edited = olivia.post(f"/c/demo/digests/{label}/edit", data={
        "md": f"# {HOSTILE}\n\n{X5}\n\n[x3]({X3}) <a href=\"{X3}\">x3</a>\n\n![x]({X3})\n",
        "csrf_token": token}, follow_redirects=False)
    assert edited.status_code == 303 and "error" not in edited.headers["location"], edited.headers
    # the configuration editor: the community's and a group's display names, and a comment that closes the textarea
    got = olivia.get("/api/v1/communities/demo/config").json()["data"]
    section = yaml.safe_load(got["text"])
    section["name"] = HOSTILE
    for g in section["groups"]:
        if g["id"] == "g-reading":
            g["name"] = HOSTILE
    lines = yaml.safe_dump(section, allow_unicode=True, sort_keys=False).splitlines()
    new_text = "\n".join([lines[0], f"# {X5}", *lines[1:]]) + "\n"
    saved = olivia.post("/c/demo/config", data={"text": new_text, "note": HOSTILE, "base": got["sha256"],
                                                "csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303, saved.text[:2000]
    return sid, ref, label


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hostile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            _pg_schemas: list[str]) -> Iterator[Hostile]:
    site = build_site(request.param, tmp_path_factory.mktemp(f"security-{request.param}"), _pg_schemas,
                      members=80, days=21)
    _require_approval(site)
    batch, who = _plant_events(site)
    sid, ref, label = _plant_console(site)
    # no event path: a group's stored name and an audit entry's target
    write(site, "UPDATE groups SET name = :n WHERE key = 'g-writing'", n=HOSTILE)
    write(site, "INSERT INTO audit_log (community_id, actor, action, target, before, after, at, ip) "
                "VALUES ('demo', :a, 'hostile.entry', :t, :b, :b, :at, '127.0.0.1')",
          a="console:" + HOSTILE, t=HOSTILE, b=json.dumps({"v": HOSTILE}), at=datetime(2026, 3, 1, tzinfo=UTC))
    found = Hostile(site)
    found.members = {
        role: int(sql(site, "SELECT id FROM members WHERE community_id = 'demo' AND user_id = :u", u=uid)[0][0])
        for role, uid in who.items()
    }
    found.session, found.challenge, found.digest = sid, ref, label
    found.values = {
        "community": ["demo"],
        "key": [r[0] for r in sql(site, "SELECT key FROM groups g JOIN communities c ON c.id = g.community_id "
                                        "WHERE c.id = 'demo' ORDER BY key")],
        "member_id": [str(v) for v in found.members.values()],
        "sid": [sid],
        "label": [label] + [str(r[0]).removeprefix("published:") for r in sql(
            site, "SELECT key FROM playbook_state WHERE community_id = 'demo' AND playbook = 'digest' "
                  "AND key LIKE 'published:%'")],
        "fmt": ["md", "html"],
        "ref": [ref],
        "batch_id": [batch],
        "vid": [str(r[0]) for r in sql(site, "SELECT id FROM config_versions WHERE community_id = 'demo'")],
        "lang": ["en"],
        "token_id": ["1"],
    }
    found.values["period"] = found.values["label"]
    yield found


def _values(h: Hostile, route: Route, name: str) -> list[str]:
    if name == "name":
        return list(CHARTS) if "/overview/chart/" in route.path else [h.challenge, SHORT]
    assert name in h.values, f"{route.path}: the sweep cannot fill {{{name}}}: add its values to the hostile fixture"
    return h.values[name]


def _paths(h: Hostile, route: Route, *, every: bool = True) -> list[str]:
    """``route``'s path with its parameters filled (every combination, or just the first)."""
    names = re.findall(r"\{(\w+)(?::\w+)?\}", route.path)
    options = [_values(h, route, n) for n in names]
    out = []
    for combo in itertools.product(*options):
        path = route.path
        for n, v in zip(names, combo, strict=True):
            path = re.sub(r"\{" + n + r"(?::\w+)?\}", v, path)
        out.append(path)
        if not every:
            break
    return out


@dataclass
class Route:
    """One route of the app, with its full path (routers are included under prefixes)."""

    path: str
    methods: set[str]
    api: APIRoute


def _flatten(routes: list[Any], prefix: str = "") -> Iterator[Route]:
    for r in routes:
        if isinstance(r, APIRoute):
            yield Route(prefix + r.path, set(r.methods), r)
        elif hasattr(r, "original_router"):  # FastAPI's lazily included router
            yield from _flatten(r.original_router.routes, prefix + r.include_context.prefix)


def _routes(app: Any, methods: set[str]) -> list[Route]:
    found = [r for r in _flatten(app.routes) if r.methods & methods]
    assert found, "no routes found in the app: has FastAPI changed how routers are included?"
    return found


def _in_community(route: Route) -> bool:
    return route.path.startswith(("/c/{community}", "/api/v1/communities/{community}"))


def _problems(url: str, answer: Any) -> list[str]:
    """What is wrong with one answer of the crawl."""
    found: list[str] = []
    if answer.status_code >= 500:
        return [f"{url}: {answer.status_code}"]
    if 300 <= answer.status_code < 400:
        where = answer.headers.get("location", "")
        if not where.startswith("/") or where.startswith("//"):
            found.append(f"{url}: redirects off the site, to {where!r}")
        return found
    ctype = answer.headers.get("content-type", "")
    if url.startswith("/api/"):
        if "application/json" not in ctype:
            found.append(f"{url}: API answer is {ctype!r}, not JSON")
        return found
    body = answer.text
    if "text/html" in ctype or "svg" in ctype:
        found += [f"{url}: raw {raw!r}" for raw in RAW if raw in body]
        if LINK.search(body):
            found.append(f"{url}: a javascript: link: {LINK.search(body).group(0)!r}")  # type: ignore[union-attr]
    elif "attachment" not in answer.headers.get("content-disposition", ""):
        found.append(f"{url}: {ctype!r} served inline")
    if EVALUATED in body:
        found.append(f"{url}: a member's template expression was evaluated")
    return found


def test_stored_xss_is_escaped_on_every_page(hostile: Hostile) -> None:
    site = hostile.site
    olivia = client(site, "olivia")
    problems: list[str] = []
    escaped_on: set[str] = set()
    crawled = 0
    for route in _routes(olivia.app, {"GET"}):
        for path in _paths(hostile, route):
            for query in ({"lang": "en"}, {"lang": "zh-CN", "status": "all", "q": HOSTILE}):
                url = f"{path}?{urlencode(query)}"
                answer = olivia.get(url, follow_redirects=False)
                crawled += 1
                problems += _problems(url, answer)
                if ESCAPED in answer.text:
                    escaped_on.add(route.path)
    assert problems == [], "\n".join(problems[:40])
    assert crawled > 100
    # the payloads did reach the pages (escaped): the sweep looked at real hostile data
    expected = {
        "/c/{community}/overview", "/c/{community}/groups", "/c/{community}/members",
        "/c/{community}/members/{member_id}", "/c/{community}/qa", "/c/{community}/sessions/{sid}",
        "/c/{community}/digests/{label}", "/c/{community}/config", "/c/{community}/audit",
        "/c/{community}/elimination/batch/{batch_id}",
    }
    assert expected - escaped_on == set(), f"no escaped payload on {sorted(expected - escaped_on)}"
    # the member's "{{7*7}}" is shown as typed
    profile = olivia.get(f"/c/demo/members/{hostile.members['intro']}").text
    assert "{{7*7}}" in profile and EVALUATED not in profile
    # the challenge's short payload is escaped where the challenge is shown
    board = olivia.get(f"/c/demo/challenges/{hostile.challenge}").text
    assert "&#34;&gt;&lt;svg/onload=x6()&gt;" in board or "&quot;&gt;&lt;svg/onload=x6()&gt;" in board
    # the config editor's textarea is not closed by the comment
    editor = olivia.get("/c/demo/config").text
    assert "&lt;/textarea&gt;&lt;script&gt;alert(" in editor and editor.count("</textarea>") == editor.count("<textarea")


def test_api_answers_json_for_hostile_data(hostile: Hostile) -> None:
    olivia = client(hostile.site, "olivia")
    problems: list[str] = []
    for route in _routes(olivia.app, {"GET"}):
        if not route.path.startswith("/api/"):
            continue
        for path in _paths(hostile, route):
            answer = olivia.get(path)
            if answer.status_code >= 500 or "application/json" not in answer.headers.get("content-type", ""):
                problems.append(f"{path}: {answer.status_code} {answer.headers.get('content-type')}")
    assert problems == [], problems
    # JSON carries the text as it is (escaping is the page's job)
    member = olivia.get(f"/api/v1/communities/demo/members/{hostile.members['asker']}").json()
    assert member["data"]["name"] == "Q" + HOSTILE


#: a body that passes validation, for API routes whose role check comes after it
BODIES = {"/config/validate": {"text": "id: demo\n"}}


def _post(client: TestClient, route: Route, path: str, token: str | None) -> Any:
    method = "PUT" if "PUT" in route.methods else "POST"
    headers = {"X-CSRF-Token": token} if token and path.startswith("/api/") else {}
    if path.startswith("/api/"):
        body = next((b for end, b in BODIES.items() if path.endswith(end)), {})
        return client.request(method, path, json=body, headers=headers, follow_redirects=False)
    data = {"csrf_token": token} if token else {}
    return client.request(method, path, data=data, follow_redirects=False)


def test_other_community_is_404_and_viewer_cannot_change(hostile: Hostile) -> None:
    site = hostile.site
    otto, vera = client(site, "otto"), client(site, "vera")
    otto_token, vera_token = csrf_of(otto), csrf_of(vera)
    before = sql(site, "SELECT count(*) FROM audit_log")[0][0]
    wrong: list[str] = []
    routes = [r for r in _routes(otto.app, {"GET", "POST", "PUT", "PATCH", "DELETE"}) if _in_community(r)]
    assert len(routes) > 40
    for route in routes:
        for path in _paths(hostile, route, every=False):
            if "GET" in route.methods:
                got = otto.get(path, follow_redirects=False).status_code
                if got != 404:
                    wrong.append(f"otto GET {path}: {got}")
                continue
            got = _post(otto, route, path, otto_token).status_code
            if got != 404:
                wrong.append(f"otto POST {path}: {got}")
            got = _post(vera, route, path, vera_token).status_code
            if got != 403:
                wrong.append(f"vera POST {path}: {got}")
    assert wrong == [], "\n".join(wrong)
    assert sql(site, "SELECT count(*) FROM audit_log")[0][0] == before


def test_every_state_change_needs_the_csrf_token(hostile: Hostile) -> None:
    site = hostile.site
    olivia = client(site, "olivia")
    csrf_of(olivia)
    counts = "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM records), (SELECT count(*) FROM actions)"
    before = sql(site, counts)[0]
    wrong: list[str] = []
    routes = [r for r in _routes(olivia.app, {"POST", "PUT", "PATCH", "DELETE"}) if r.path.startswith("/c/")]
    assert len(routes) > 20
    for route in routes:
        for path in _paths(hostile, route, every=False):
            for token in (None, "forged-token"):
                got = _post(olivia, route, path, token).status_code
                if got != 403:
                    wrong.append(f"{path} with token {token!r}: {got}")
    # the API refuses a session cookie's state change without the header as well
    for route in _routes(olivia.app, {"POST", "PUT"}):
        if route.path.startswith("/api/v1/communities/"):
            for path in _paths(hostile, route, every=False):
                got = olivia.request("PUT" if "PUT" in route.methods else "POST", path, json={}).status_code
                if got != 403:
                    wrong.append(f"API {path} without the header: {got}")
    assert wrong == [], "\n".join(wrong)
    assert sql(site, counts)[0] == before


def _reads(route: Route) -> set[str]:
    """The query parameters ``route`` reads: declared ones, and the names its function looks up."""
    declared = {p.alias for p in route.api.dependant.query_params}
    for dep in route.api.dependant.dependencies:
        declared |= {p.alias for p in dep.query_params}
    try:
        source = inspect.getsource(route.api.endpoint)
    except (OSError, TypeError):
        source = ""
    looked_up = {name for name in PARAMS if re.search(rf"""["']{re.escape(name)}["']""", source)}
    return declared | looked_up


def test_sql_looking_input_in_every_query_parameter(hostile: Hostile) -> None:
    site = hostile.site
    olivia = client(site, "olivia")
    members_before = sql(site, "SELECT count(*), min(id), max(id) FROM members")[0]
    crashed: list[str] = []
    requests = 0
    for route in _routes(olivia.app, {"GET"}):
        params = _reads(route)
        path = _paths(hostile, route, every=False)[0]
        for payload in SQLISH:
            # every parameter at once (the pages), then each one the route reads on its own
            tries = [{name: payload} for name in sorted(params)]
            if len(payload) < 1000:  # all at once would pass the URL's length limit
                tries.append(dict.fromkeys(PARAMS, payload))
            for query in tries:
                answer = olivia.get(path, params=query, follow_redirects=False)
                requests += 1
                if answer.status_code >= 500:
                    crashed.append(f"{path} {sorted(query)[:3]}={payload[:30]!r}: {answer.status_code}")
                elif path.startswith("/api/") and "application/json" not in answer.headers.get("content-type", ""):
                    crashed.append(f"{path}: not JSON")
    assert crashed == [], "\n".join(crashed[:40])
    assert requests > 500
    assert sql(site, "SELECT count(*), min(id), max(id) FROM members")[0] == members_before
    # a NUL byte is refused at the edge, in the API's one error shape
    nul = olivia.get("/api/v1/communities/demo/members", params={"group": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["code"] == "bad_request" and "NUL" in nul.json()["error"]
    assert olivia.get("/c/demo/members", params={"q": "a\x00b"}).status_code == 400
    # and the search still finds people afterwards
    found = olivia.get("/api/v1/communities/demo/members", params={"q": "Q<script>"}).json()
    assert found["ok"] is True


def test_sweeps_cover_the_whole_app(hostile: Hostile) -> None:
    """Every route of the app has its path parameters known to the sweeps (a new route fails here first)."""
    app = hostile.site.app()
    missing = []
    for route in _routes(app, {"GET", "POST", "PUT", "PATCH", "DELETE"}):
        try:
            assert _paths(hostile, route, every=False)
        except AssertionError as exc:
            missing.append(str(exc))
    assert missing == []


class _Answer:
    def __init__(self, body: str, ctype: str = "text/html; charset=utf-8", status: int = 200, **headers: str) -> None:
        self.text, self.status_code = body, status
        self.headers = {"content-type": ctype, **headers}


def test_the_checks_catch_what_they_look_for() -> None:
    """The crawl's checks fail on the mistakes they exist for (and pass escaped text)."""
    assert _problems("/c/demo/x", _Answer(f"<p>{X1}</p>"))
    assert _problems("/c/demo/x", _Answer('<a href="javascript:alert(1)">x</a>'))
    assert _problems("/c/demo/x", _Answer("<p>54444439</p>"))
    assert _problems("/c/demo/x", _Answer("", status=500))
    assert _problems("/c/demo/x", _Answer("", status=303, location="//evil.example/"))
    assert _problems("/c/demo/x.md", _Answer(X1, "text/markdown"))
    assert _problems("/api/v1/x", _Answer("<p>", "text/html"))
    assert _problems("/c/demo/x", _Answer("<p>&lt;script&gt;alert(&#34;x1&#34;)&lt;/script&gt; {{7*7}}</p>")) == []
    assert _problems("/c/demo/x.md", _Answer(X1, "text/markdown", **{"content-disposition": "attachment"})) == []
