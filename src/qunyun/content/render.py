"""Markdown and HTML documents from the Jinja2 templates in ``templates/``.

Two environments, both sandboxed (an operator's own templates can read the
values they are given and nothing else):

- HTML: autoescape on — a member who writes ``<script>`` gets the text
  ``&lt;script&gt;`` in the page;
- Markdown: every ``{{ value }}`` is escaped by the environment's
  ``finalize`` (each Markdown control character gets a backslash), unless a
  filter of ours already made it safe (``quote`` escapes, then prefixes
  each line with ``> ``). A member's ``# heading``, ``[link](…)`` or raw
  ``<b>`` stays text.

In both, member text loses control characters and bidi overrides first.
Operators may override any template by putting a file of the same name in
the digest's ``template_dir``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from qunyun.content.collect import KINDS, Entry, Period, authors

# Characters that mean something anywhere in a line (emphasis, code, links,
# raw HTML, entities, tables, strike-through), and those that mean something
# only at the start of a line (headings, lists, quotes, setext underlines).
_MD_ANYWHERE = re.compile(r"([\\`*_\[\]<>&|~])")
_MD_LINE_START = re.compile(r"^([ \t]*)([#+\-=])", re.M)
_MD_ORDERED = re.compile(r"^([ \t]*\d+)([.)])", re.M)
_UNSAFE = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")

LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "digest_day": "{community} · {period} 精华",
        "digest_week": "{community} · {period} 周精华",
        "summary": "共 {entries} 条精华，来自 {authors} 位成员。",
        "message": "精选发言",
        "answer": "最佳回答",
        "share": "分享",
        "question": "问题",
        "topic": "主题",
        "credits": "本期作者",
        "entries_n": "{n} 条",
        "book": "{community} · 精华集",
        "book_summary": "共 {chapters} 章，{entries} 条精华，{authors} 位作者。",
        "contents": "目录",
        "index": "作者索引",
        "chapters_of": "见：{chapters}",
        "footer": "由群运（qunyun）整理，感谢每一位作者。",
        "month": "{year} 年 {month} 月",
    },
    "en": {
        "digest_day": "{community} · essence of {period}",
        "digest_week": "{community} · essence of the week {period}",
        "summary": "{entries} pieces of essence by {authors} members.",
        "message": "Highlights",
        "answer": "Best answers",
        "share": "Talks",
        "question": "Question",
        "topic": "Topic",
        "credits": "Contributors",
        "entries_n": "{n} entries",
        "book": "{community} · the book of essence",
        "book_summary": "{chapters} chapters, {entries} pieces of essence, {authors} authors.",
        "contents": "Contents",
        "index": "Author index",
        "chapters_of": "in: {chapters}",
        "footer": "Compiled by qunyun, with thanks to every author.",
        "month": "{month_name} {year}",
    },
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def clean(text: str) -> str:
    """Member text fit for a document: no control characters or bidi overrides."""
    return _UNSAFE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def md_escape(value: Any) -> str:
    """``value`` as literal Markdown text: every control character backslash-escaped (line-start ones only there)."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    text = _MD_ANYWHERE.sub(r"\\\1", clean(str(value)))
    text = _MD_LINE_START.sub(r"\1\\\2", text)
    return _MD_ORDERED.sub(r"\1\\\2", text)


def _md_finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    return md_escape(value)


def _quote(value: Any) -> Markup:
    lines = md_escape(value).split("\n") or [""]
    return Markup("\n".join("> " + line if line.strip() else ">" for line in lines))


def _environment(fmt: str, template_dir: str | None) -> SandboxedEnvironment:
    loaders: list[Any] = []
    if template_dir:
        loaders.append(FileSystemLoader(template_dir))
    loaders.append(PackageLoader("qunyun.content", "templates"))
    loader = ChoiceLoader(loaders)
    if fmt == "html":
        env = SandboxedEnvironment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                   undefined=StrictUndefined)
    else:
        env = SandboxedEnvironment(loader=loader, autoescape=False, finalize=_md_finalize, trim_blocks=True,
                                   lstrip_blocks=True, undefined=StrictUndefined, keep_trailing_newline=True)
        env.filters["quote"] = _quote
    return env


def labels(locale: str) -> dict[str, str]:
    return LABELS.get(locale, LABELS["en"])


def month_label(month: str, locale: str) -> str:
    """``2026-11`` as ``2026 年 11 月`` / ``November 2026``."""
    try:
        year, num = int(month[:4]), int(month[5:7])
        name = _MONTHS[num - 1]
    except (ValueError, IndexError):
        return month
    return labels(locale)["month"].format(year=year, month=num, month_name=name)


class People:
    """Display names and titles of the authors (from ``ctx.name`` / ``ctx.title``)."""

    def __init__(self, name: Callable[[str], str], title: Callable[[str], str | None]) -> None:
        self._name = name
        self._title = title
        self._seen: dict[str, tuple[str, str]] = {}

    def __call__(self, uid: str) -> tuple[str, str]:
        found = self._seen.get(uid)
        if found is None:
            found = self._seen[uid] = (self._name(uid), self._title(uid) or "")
        return found


def _when(ts: str, tz: tzinfo, with_day: bool) -> str:
    try:
        local = datetime.fromisoformat(ts).astimezone(tz)
    except (TypeError, ValueError):
        return ""
    return local.strftime("%Y-%m-%d %H:%M" if with_day else "%H:%M")


def _entry_view(e: Entry, n: int, people: People, tz: tzinfo, lab: Mapping[str, str], with_day: bool) -> dict[str, Any]:
    name, title = people(e.by)
    return {
        "n": n,
        "anchor": f"e{n}",
        "kind": e.kind,
        "kind_label": lab[e.kind],
        "text": clean(e.text),
        "question": clean(e.question),
        "question_label": lab["topic"] if e.kind == "share" else lab["question"],
        "name": name,
        "title": title,
        "when": _when(e.ts, tz, with_day),
        "day": e.day,
        "group": e.group or "",
    }


def _credits(entries: list[Entry], people: People) -> list[dict[str, Any]]:
    out = []
    for uid, count in authors(entries):
        name, title = people(uid)
        out.append({"name": name, "title": title, "count": count})
    return out


def render_digest(entries: list[Entry], *, period: Period, community: str, locale: str, fmt: str,
                  people: People, tz: tzinfo, template_dir: str | None = None) -> str:
    """One digest document (``fmt`` ``md`` or ``html``)."""
    lab = labels(locale)
    views = [_entry_view(e, i + 1, people, tz, lab, period.kind != "day") for i, e in enumerate(entries)]
    sections = [
        {"kind": kind, "label": lab[kind], "entries": [v for v in views if v["kind"] == kind]}
        for kind in KINDS
    ]
    credits = _credits(entries, people)
    title = lab["digest_day" if period.kind == "day" else "digest_week"].format(
        community=clean(community), period=period.label
    )
    return _environment(fmt, template_dir).get_template(f"digest.{fmt}.j2").render(
        L=lab,
        lang=locale,
        title=title,
        period=period.label,
        summary=lab["summary"].format(entries=len(entries), authors=len(credits)),
        sections=[s for s in sections if s["entries"]],
        credits=credits,
    )


def chapters_of(entries: Iterable[Entry], by: str, locale: str) -> list[tuple[str, str, list[Entry]]]:
    """(chapter id, heading, entries): by month (oldest first) or by kind."""
    lab = labels(locale)
    grouped: dict[str, list[Entry]] = {}
    for e in entries:
        grouped.setdefault(e.month if by == "month" else e.kind, []).append(e)
    if by == "month":
        keys = sorted(grouped)
        return [(k, month_label(k, locale), grouped[k]) for k in keys]
    return [(k, lab[k], grouped[k]) for k in KINDS if k in grouped]


def render_book(entries: list[Entry], *, by: str, community: str, locale: str, fmt: str, people: People,
                tz: tzinfo, template_dir: str | None = None) -> str:
    """All essence as one book: chapters by month or kind, and an author index."""
    lab = labels(locale)
    chapters = []
    appears: dict[str, list[str]] = {}
    n = 0
    for i, (cid, heading, items) in enumerate(chapters_of(entries, by, locale)):
        views = []
        for e in items:
            n += 1
            views.append(_entry_view(e, n, people, tz, lab, True))
            found = appears.setdefault(e.by, [])
            if heading not in found:
                found.append(heading)
        chapters.append({"id": cid, "n": i + 1, "anchor": f"c{i + 1}", "heading": heading, "entries": views,
                         "count": lab["entries_n"].format(n=len(items))})
    index = []
    for uid, count in sorted(authors(entries), key=lambda kv: (people(kv[0])[0].casefold(), kv[0])):
        name, title = people(uid)
        index.append({"name": name, "title": title, "count": count,
                      "chapters": lab["chapters_of"].format(chapters=", ".join(appears.get(uid, [])))})
    return _environment(fmt, template_dir).get_template(f"book.{fmt}.j2").render(
        L=lab,
        lang=locale,
        title=lab["book"].format(community=clean(community)),
        summary=lab["book_summary"].format(chapters=len(chapters), entries=len(entries), authors=len(index)),
        chapters=chapters,
        index=index,
    )


def file_name(kind: str, label: str, fmt: str) -> str:
    """``digest-2026-11-02.md``, ``digest-2026-W45.html``, ``book-month.html``."""
    return f"{kind}-{label}.{fmt}"

