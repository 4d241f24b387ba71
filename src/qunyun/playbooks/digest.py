"""digest (精华日报/周报): the day's or week's essence, as Markdown and HTML.

A daily job (``daily``, community time zone) compiles the essence of the
previous local day; a weekly job (``weekly``) that of the previous ISO week.
The entries are the ``essence`` playbook's marked and voted messages plus, when
those playbooks run, the best answers of ``qa`` and the talks of ``sessions``
(see :mod:`qunyun.content.collect` for the exact rule). Each author is credited
by name (and conferred title).

When a period has entries, the first group whose job runs publishes it:
the documents are written to ``out_dir`` (if set) as
``digest-<period>.md`` / ``.html``, a ``digest_included`` record is written
for each author (the ``medals`` playbook counts them), and
``published:<period>`` remembers it. Every group running the playbook then
gets a short notice with the counts and the ``link``. An empty period makes
no document and says nothing.

Operator commands render on demand (``render``), compile all essence into a
book (``book``, chapters by month or by kind, with an author index) and show a
member's talent archive (``archive``); ``qunyun digest`` calls them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from qunyun.content.collect import Period, PeriodError, archive, authors, collect
from qunyun.content.markdown import document
from qunyun.content.render import People, file_name, render_book, render_digest
from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.engine.scheduler import validate_cron

Format = Literal["md", "html"]
Kind = Literal["message", "answer", "share"]


def _both() -> list[Format]:
    return ["md", "html"]


def _every_kind() -> list[Kind]:
    return ["message", "answer", "share"]


class DigestConfig(PlaybookConfig):
    daily: str | None = Field(
        default="0 9 * * *",
        description="Cron (community time zone) for the daily digest of the previous day; null for none.",
    )
    weekly: str | None = Field(
        default=None,
        description="Cron for the weekly digest of the previous ISO week (e.g. \"0 10 * * 1\"); null for none.",
    )
    formats: list[Format] = Field(
        default_factory=_both, min_length=1, description="Documents to write: md, html."
    )
    out_dir: str | None = Field(
        default=None,
        description="Directory the documents are written to (created if missing); null keeps only the state.",
    )
    link: str | None = Field(
        default=None,
        description="Where readers find the digest, put in the notice; {period} becomes the period "
        "(e.g. https://example.org/digest/{period}.html).",
    )
    notice: bool = Field(default=True, description="Post a short notice with the counts in the group.")
    min_entries: int = Field(default=1, ge=1, le=1000, description="Fewer entries than this: no digest.")
    max_entries: int = Field(default=200, ge=1, le=5000, description="At most this many entries in one digest.")
    kinds: list[Kind] = Field(
        default_factory=_every_kind, min_length=1,
        description="What goes in: message (marked or voted), answer (best answers), share (talks).",
    )
    template_dir: str | None = Field(
        default=None,
        description="A directory with your own digest.md.j2 / digest.html.j2 / book.*.j2 to use instead of ours.",
    )

    @field_validator("daily", "weekly")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("formats", "kinds")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the link is empty; write the address or null")
        return value


class Digest(Playbook):
    id = "digest"
    config_model = DigestConfig
    # no event of its own: the digest runs on its jobs and commands
    handles = frozenset({"member_joined"})
    emits = frozenset({"send"})
    commands: ClassVar[dict[str, str]] = {
        "render": "The digest of a period, as documents: period (day|week) and date (YYYY-MM-DD), "
        "or label (2026-11-02 / 2026-W45); formats (md, html).",
        "book": "All essence as one book: by (month|kind), formats (md, html).",
        "archive": "A member's talent archive: member (user id).",
        "edit": "Keep an operator's edited Markdown for a period (label or period+date): md (the text), "
        "or discard=true to drop the edit.",
        "publish": "Publish a period now (label or period+date): the documents (the edited text if there is one), "
        "the digest_included records the first time, and the notice in every group (notice=false: no notice).",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "精华日报/周报：把精华、最佳回答和分享整理成 Markdown 与 HTML，署名每位作者。",
        "en": "Daily or weekly essence digest in Markdown and HTML, crediting every author.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "notice_day": {
            "zh-CN": "📚 {period} 的精华已整理好：{entries} 条，来自 {authors} 位群友。{link}",
            "en": "📚 The essence of {period} is ready: {entries} pieces by {authors} members.{link}",
        },
        "notice_week": {
            "zh-CN": "📚 本周（{period}）精华合集已整理好：{entries} 条，来自 {authors} 位群友。{link}",
            "en": "📚 This week's essence ({period}) is ready: {entries} pieces by {authors} members.{link}",
        },
        "link": {
            "zh-CN": "\n阅读：{url}",
            "en": "\nRead it here: {url}",
        },
    }

    def setup(self, ctx: Context) -> None:
        cfg: DigestConfig = ctx.config
        for name, cron in (("day", cfg.daily), ("week", cfg.weekly)):
            if cron:
                ctx.schedule(name, cron=cron, payload={"period": name})
            else:
                ctx.cancel(name)

    def on_event(self, ctx: Context, event: Any) -> None:
        return  # nothing to do on events: everything happens on the jobs

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name not in ("day", "week"):
            return
        cfg: DigestConfig = ctx.config
        # the last complete period: yesterday, or the ISO week before this one
        period = Period.of(job.name, ctx.today - timedelta(days=1 if job.name == "day" else 7))
        published = ctx.state.get(f"published:{period.label}")
        if published is None:
            entries = collect(ctx, period, cfg.kinds)[: cfg.max_entries]
            if len(entries) < cfg.min_entries:
                return  # an empty period: no digest, nothing said
            files = self._files(ctx, entries, period, cfg.formats)
            if cfg.out_dir:
                _write(Path(cfg.out_dir), files)
            credited = authors(entries)
            for uid, count in credited:
                ctx.record("digest_included", uid, period=period.label, entries=count)
            published = {"ts": ctx.now.isoformat(), "entries": len(entries), "authors": len(credited),
                         "files": sorted(files)}
            ctx.state.put(f"published:{period.label}", published)
        if cfg.notice and published.get("entries"):
            link = ctx.render("link", url=cfg.link.replace("{period}", period.label)) if cfg.link else ""
            ctx.send(ctx.render(f"notice_{period.kind}", period=period.label, entries=published["entries"],
                                authors=published.get("authors", 0), link=link))

    def _files(self, ctx: Context, entries: list[Any], period: Period, formats: Sequence[str]) -> dict[str, str]:
        """The documents to publish: the operator's edited text if there is one, else the rendered digest."""
        draft = ctx.state.get(f"draft:{period.label}")
        if draft is None:
            return self._documents(ctx, entries, period, formats)
        md = str(draft["md"])
        title = md.lstrip().split("\n", 1)[0].lstrip("# ").strip() or period.label
        return {
            file_name("digest", period.label, fmt): md if fmt == "md" else document(md, title=title, lang=ctx.locale)
            for fmt in formats
        }

    def _documents(self, ctx: Context, entries: list[Any], period: Period, formats: Sequence[str]) -> dict[str, str]:
        cfg: DigestConfig = ctx.config
        people = People(ctx.name, ctx.title)
        return {
            file_name("digest", period.label, fmt): render_digest(
                entries, period=period, community=ctx.community.name, locale=ctx.locale, fmt=fmt,
                people=people, tz=ctx.community.tz, template_dir=cfg.template_dir,
            )
            for fmt in formats
        }

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: DigestConfig = ctx.config
        args = command.args
        name = command.name
        if name == "archive":
            member = str(args.get("member") or "").strip().lstrip("@")
            if not member:
                raise CommandError(Msg("archive needs a member"), hint=Msg("give the member's platform user id"))
            return archive(ctx, member)
        formats = _formats(args.get("formats"), cfg.formats)
        if name == "render":
            period = _period(ctx, args)
            entries = collect(ctx, period, cfg.kinds)[: cfg.max_entries]
            files = self._documents(ctx, entries, period, formats) if entries else {}
            return {"period": period.label, "entries": len(entries), "authors": len(authors(entries)),
                    "published": ctx.state.get(f"published:{period.label}"), "files": files,
                    "draft": ctx.state.get(f"draft:{period.label}")}
        if name == "edit":
            return self._edit(ctx, _period(ctx, args), args, command.actor)
        if name == "publish":
            return self._publish(ctx, _period(ctx, args), args, command.actor)
        if name == "book":
            by = str(args.get("by") or "month")
            if by not in ("month", "kind"):
                raise CommandError(Msg("a book's chapters are by month or by kind, not {by!r}", by=by))
            entries = collect(ctx, None, cfg.kinds)
            people = People(ctx.name, ctx.title)
            files = {
                file_name("book", by, fmt): render_book(
                    entries, by=by, community=ctx.community.name, locale=ctx.locale, fmt=fmt, people=people,
                    tz=ctx.community.tz, template_dir=cfg.template_dir,
                )
                for fmt in formats
            } if entries else {}
            chapters = len({e.month if by == "month" else e.kind for e in entries})
            return {"by": by, "entries": len(entries), "authors": len(authors(entries)), "chapters": chapters,
                    "files": files}
        raise CommandError(Msg("digest has no command {command!r}", command=name),
                           hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))))


    # ------------------------------------------------------- edit and publish

    def _edit(self, ctx: Context, period: Period, args: dict[str, Any], actor: str) -> dict[str, Any]:
        key = f"draft:{period.label}"
        if args.get("discard") is True:
            existed = ctx.state.get(key) is not None
            ctx.state.delete(key)
            return {"period": period.label, "draft": None, "discarded": existed}
        md = args.get("md")
        if not isinstance(md, str) or not md.strip():
            raise CommandError(Msg("edit needs md, the edited Markdown text"),
                               hint=Msg("or discard=true to go back to the rendered digest"))
        if len(md) > MAX_DRAFT:
            raise CommandError(Msg("the edited text has {length:,} characters; at most {limit:,} are kept",
                                   length=len(md), limit=MAX_DRAFT),
                               hint=Msg("shorten it, or leave entries out"))
        draft = {"md": md.replace("\r\n", "\n"), "ts": ctx.now.isoformat(), "by": clip(actor, 200)}
        ctx.state.put(key, draft)
        return {"period": period.label, "draft": draft}

    def _publish(self, ctx: Context, period: Period, args: dict[str, Any], actor: str) -> dict[str, Any]:
        cfg: DigestConfig = ctx.config
        notice = args.get("notice", cfg.notice)
        if not isinstance(notice, bool):
            raise CommandError(Msg("notice is true or false"))
        draft = ctx.state.get(f"draft:{period.label}")
        entries = collect(ctx, period, cfg.kinds)[: cfg.max_entries]
        if not entries and draft is None:
            raise CommandError(Msg("{period} has nothing to publish: no essence, best answers or talks, "
                                   "and no edited text", period=period.label),
                               hint=Msg("pick another period, or edit one first"))
        files = self._files(ctx, entries, period, cfg.formats)
        if cfg.out_dir:
            _write(Path(cfg.out_dir), files)
        prior = ctx.state.get(f"published:{period.label}")
        credited = authors(entries)
        if prior is None:  # credit authors once per period, however often it is published
            for uid, count in credited:
                ctx.record("digest_included", uid, period=period.label, entries=count)
        published = {"ts": ctx.now.isoformat(), "entries": len(entries), "authors": len(credited),
                     "files": sorted(files), "edited": draft is not None, "by": clip(actor, 200),
                     "times": int((prior or {}).get("times", 1)) + 1 if prior else 1}
        ctx.state.put(f"published:{period.label}", published)
        sent: list[str] = []
        if notice and (entries or draft is not None):
            link = ctx.render("link", url=cfg.link.replace("{period}", period.label)) if cfg.link else ""
            text = ctx.render(f"notice_{period.kind}", period=period.label, entries=len(entries),
                              authors=len(credited), link=link)
            for group in ctx.community.groups.values():
                own = group.playbooks.get("digest")
                if own is None or not own.enabled or group.platform != ctx.group.platform:
                    continue
                ctx.send(text, group=group.key)
                sent.append(group.key)
        return {"period": period.label, "published": published, "notice": sent}


#: the longest edited digest kept (characters)
MAX_DRAFT = 200_000


def _formats(value: Any, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    chosen = [value] if isinstance(value, str) else list(value)
    bad = [f for f in chosen if f not in ("md", "html")]
    if bad or not chosen:
        raise CommandError(Msg("unknown format {format!r}", format=bad[0] if bad else ""),
                           hint=Msg("formats are md and html"))
    return list(dict.fromkeys(chosen))


def _period(ctx: Context, args: dict[str, Any]) -> Period:
    label = args.get("label")
    try:
        if label:
            return Period.parse(str(label))
        kind = str(args.get("period") or "day")
        if kind not in ("day", "week"):
            raise CommandError(Msg("a period is a day or a week, not {kind!r}", kind=kind))
        day = Period.parse(str(args["date"])).start if args.get("date") else ctx.today
        return Period.of(kind, day)
    except PeriodError as exc:
        raise CommandError(Msg("cannot read the period: {error}", error=exc.message),
                           hint=Msg("a day is written 2026-11-02, a week 2026-W45")) from None


def _write(directory: Path, files: dict[str, str]) -> None:
    """Write each document atomically (a reader never sees half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
