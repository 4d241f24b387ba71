"""Console page: digests (``/c/{community}/digests``).

The periods published so far (and those with an operator's edit waiting),
a preview of any day or week (the ``digest`` playbook's ``render`` command
through ``Engine.query``: nothing is published by looking), editing (the
``edit`` command keeps the edited Markdown in ``digest`` state), publishing
(the ``publish`` command: documents, credits, the notice in the groups) and
export as ``.md`` or ``.html``.

The preview never puts the playbook's HTML into the page: it is made from the
Markdown by :func:`qunyun.content.markdown.to_html`, which escapes every text
and writes only its own tags — so neither a member's text nor an operator's
template can bring markup into the console.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection, select, text

from qunyun.config.model import CommunitySettings
from qunyun.console.web import Admin, ConsoleState, Viewer, refused
from qunyun.content.markdown import document, to_html
from qunyun.core.errors import CommandError
from qunyun.playbooks.qa import iso_week
from qunyun.store import models as m

router = APIRouter()

LABEL = re.compile(r"^(\d{4}-W\d{2}|\d{4}-\d{2}-\d{2})$")
WEEK = re.compile(r"^\d{4}-W\d{2}$")
MAX_MD = 200_000


def check_label(label: str) -> str:
    if not LABEL.match(label):
        raise HTTPException(404, f"{label[:20]!r} is not a period: write a week (2026-W45) or a day (2026-11-02)")
    return label


_LABELS = (
    "SELECT CASE WHEN key LIKE 'draft:%' THEN substr(key, 7) ELSE substr(key, 11) END AS label "
    "FROM playbook_state WHERE community_id = :c AND playbook = 'digest' "
    "AND (key LIKE 'published:%' OR key LIKE 'draft:%') GROUP BY 1"
)


def periods(conn: Connection, community: str, *, offset: int = 0, limit: int = 25) -> list[dict[str, Any]]:
    """Published and edited periods, newest first (paged in SQL): {label, published, draft}."""
    labels = [r[0] for r in conn.execute(
        text(f"SELECT label FROM ({_LABELS}) k ORDER BY label DESC LIMIT :n OFFSET :o"),
        {"c": community, "n": limit, "o": offset},
    )]
    if not labels:
        return []
    keys = {f"{kind}:{label}": (kind, label) for label in labels for kind in ("published", "draft")}
    marks = ", ".join(f":k{i}" for i in range(len(keys)))
    rows = conn.execute(
        text(f"SELECT key, value FROM playbook_state WHERE community_id = :c AND playbook = 'digest' "
             f"AND key IN ({marks})"),
        {"c": community, **{f"k{i}": k for i, k in enumerate(keys)}},
    )
    found: dict[str, dict[str, Any]] = {label: {"label": label, "published": None, "draft": None} for label in labels}
    for key, value in rows:
        kind, label = keys[key]
        found[label][kind] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [found[label] for label in labels]


def count_periods(conn: Connection, community: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM ({_LABELS}) k"), {"c": community}).scalar() or 0)


def render_period(state: ConsoleState, community: CommunitySettings, label: str) -> dict[str, Any]:
    """The ``render`` command's answer (read-only): entries, authors, published, draft and both documents."""
    with state.lock:
        return state.engine.query(community.id, "digest", "render", {"label": label, "formats": ["md", "html"]})


def documents(rendered: dict[str, Any], label: str, lang: str) -> dict[str, str]:
    """``{"md": …, "html": …}`` for export: the edited text if there is one, else the rendered digest."""
    draft = rendered.get("draft")
    if draft:
        md = str(draft["md"])
        title = md.lstrip().split("\n", 1)[0].lstrip("# ").strip() or label
        return {"md": md, "html": document(md, title=title, lang=lang)}
    files = rendered.get("files") or {}
    return {fmt: files.get(f"digest-{label}.{fmt}", "") for fmt in ("md", "html")}


def runs_digest(community: CommunitySettings) -> bool:
    return any("digest" in g.playbooks for g in community.groups.values())


def week_has_data(conn: Connection, community: str, week: str) -> bool:
    """Whether ``week`` has a digest (published or edited) or messages (two lookups by key and index)."""
    if conn.execute(
        text("SELECT 1 FROM playbook_state WHERE community_id = :c AND playbook = 'digest' AND key IN (:p, :d)"),
        {"c": community, "p": f"published:{week}", "d": f"draft:{week}"},
    ).first() is not None:
        return True
    monday = date.fromisocalendar(int(week[:4]), int(week[6:]), 1)
    gd = m.table(m.GroupDay)
    return conn.execute(
        select(gd.c.day).where(gd.c.community_id == community, gd.c.day >= monday,
                               gd.c.day <= monday + timedelta(days=6), gd.c.messages > 0).limit(1)
    ).first() is not None


def latest_week(conn: Connection, community: str) -> str | None:
    """The latest week with a digest (of the week or of one of its days) or messages; None without any."""
    gd = m.table(m.GroupDay)
    day = conn.execute(
        select(gd.c.day).where(gd.c.community_id == community, gd.c.messages > 0).order_by(gd.c.day.desc()).limit(1)
    ).scalar()
    found = [iso_week(day)] if day is not None else []
    for pattern in ("____-W__", "____-__-__"):
        label = conn.execute(
            text(f"SELECT label FROM ({_LABELS}) k WHERE label LIKE :p ORDER BY label DESC LIMIT 1"),
            {"c": community, "p": pattern},
        ).scalar()
        if label and LABEL.match(label):
            found.append(label if WEEK.match(label) else iso_week(date.fromisoformat(label)))
    return max(found, default=None)


def default_week(state: ConsoleState, community: CommunitySettings, conn: Connection) -> tuple[str, bool]:
    """(week, fell back): last week if it has a digest or messages, else the latest week that has
    (a replayed or imported community whose data ended weeks ago still opens on data), else last week."""
    last_week = iso_week(state.clock.now().astimezone(community.tz).date() - timedelta(days=7))
    if week_has_data(conn, community.id, last_week):
        return last_week, False
    latest = latest_week(conn, community.id)
    return (latest, True) if latest is not None and latest != last_week else (last_week, False)


# -------------------------------------------------------------------- pages


@router.get("/c/{community}/digests")
def digests_page(page: Viewer, week: str | None = None) -> Response:
    if week and not WEEK.match(week):
        raise HTTPException(422, f"week {week[:20]!r} is not an ISO week like 2026-W45")
    with page.read() as conn:
        chosen, fell_back = (week, False) if week else default_week(page.state, page.community, conn)
        total = count_periods(conn, page.community.id)
        paging = page.paging(total, per_page=25)
        rows = periods(conn, page.community.id, offset=paging.offset, limit=paging.per_page)
    return page.render("digests/index.html", rows=rows, paging=paging, week=chosen, fell_back=fell_back,
                       enabled=runs_digest(page.community))


@router.get("/c/{community}/digests/go")
def digests_go(page: Viewer, period: str = "") -> Response:
    """The "preview a period" form: to that period's page."""
    return page.redirect(f"digests/{check_label(period.strip())}")


@router.get("/c/{community}/digests/{label}")
def digest_page(page: Viewer, label: str) -> Response:
    check_label(label)
    if not runs_digest(page.community):
        raise HTTPException(404, "the digest does not run in this community")
    rendered = render_period(page.state, page.community, label)
    docs = documents(rendered, label, page.community.locale)
    return page.render(
        "digests/detail.html", label=label, rendered=rendered, md=docs["md"], preview=to_html(docs["md"]),
        draft=rendered.get("draft"), published=rendered.get("published"), error=page.flash_error(),
    )


@router.get("/c/{community}/digests/{label}/export.{fmt}")
def digest_export(page: Viewer, label: str, fmt: str) -> Response:
    check_label(label)
    if fmt not in ("md", "html") or not runs_digest(page.community):
        raise HTTPException(404, "export as .md or .html")
    docs = documents(render_period(page.state, page.community, label), label, page.community.locale)
    if not docs[fmt]:
        raise HTTPException(404, f"{label} has no digest: no essence, best answers or talks, and no edited text")
    media = "text/markdown; charset=utf-8" if fmt == "md" else "text/html; charset=utf-8"
    return Response(docs[fmt], media_type=media,
                    headers={"content-disposition": f'attachment; filename="digest-{label}.{fmt}"'})


@router.post("/c/{community}/digests/{label}/edit")
def digest_edit(page: Admin, label: str, md: str = Form(max_length=MAX_MD)) -> Response:
    check_label(label)
    try:
        page.command("digest", "edit", {"label": label, "md": md})
    except CommandError as exc:
        return page.redirect(f"digests/{label}", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect(f"digests/{label}", msg="digests.saved")


@router.post("/c/{community}/digests/{label}/discard")
def digest_discard(page: Admin, label: str) -> Response:
    check_label(label)
    page.command("digest", "edit", {"label": label, "discard": True})
    return page.redirect(f"digests/{label}", msg="digests.discarded")


@router.post("/c/{community}/digests/{label}/publish")
def digest_publish(page: Admin, label: str, notice: str = Form("yes", max_length=3)) -> Response:
    check_label(label)
    try:
        page.command("digest", "publish", {"label": label, "notice": notice == "yes"})
    except CommandError as exc:
        return page.redirect(f"digests/{label}", error=page.t("msg.refused", why=refused(exc, page.lang)))
    return page.redirect(f"digests/{label}", msg="digests.published")
