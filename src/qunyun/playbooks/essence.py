"""essence (精华): the best of the chat, marked by admins or voted by members.

Two ways a message becomes essence:

- **Admin marking** — an owner or admin (``marker_roles``) replies to a
  message with one of the ``mark_words`` (``精华``, ``essence``…), or gives
  the operator command ``mark`` with the message id. ``unmark_words`` (or
  the command ``unmark``) take it back.
- **Votes** — when ``votes_needed`` distinct members react to a message with
  one of the ``vote_emojis`` within ``vote_window_days`` of it being sent, it
  becomes essence. The author's own reactions never count.

The text and author of a marked message are read once from the engine's
``messages`` table (``ctx.db``, read-only), so the playbook keeps no copy of
the chat. An essence entry is ``e:<msg_id>`` (text clipped to 2000
characters); the author's count is ``m:<uid>``; an ``essence`` record names
the author (the ``medals`` playbook counts these) and the author earns
``points``. Best answers (``qa``) and talks (``sessions``) are added to the
digest by the ``digest`` playbook when it reads those playbooks' state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.content.messages import StoredMessage, find_message, find_messages
from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import clip
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig

#: Essence text is clipped to this many characters (the shared contract).
TEXT_LIMIT = 2000
#: Roles a configuration may name.
ROLES = ("owner", "admin", "assistant", "guest", "member")
#: Entries ``list`` returns at most.
LIST_LIMIT = 200


def _emoji(value: str) -> str:
    """An emoji compared without variation selectors (❤️ and ❤ are one)."""
    return value.replace("\ufe0f", "").replace("\ufe0e", "").strip()


class EssenceConfig(PlaybookConfig):
    mark_words: list[str] = Field(
        default_factory=lambda: ["精华", "设为精华", "#精华", "essence"],
        description="A reply that is exactly one of these, by an owner or admin, marks the replied-to message.",
    )
    unmark_words: list[str] = Field(
        default_factory=lambda: ["取消精华", "unessence"],
        description="A reply that is exactly one of these, by an owner or admin, takes the marking back.",
    )
    marker_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin"],
        description="Roles whose marking replies count.",
    )
    vote_emojis: list[str] = Field(
        default_factory=lambda: ["👍", "🔥", "⭐", "❤️", "+1"],
        description="Reactions that count as a vote for essence.",
    )
    votes_needed: int = Field(
        default=3, ge=0, le=1000,
        description="Distinct members (not the author) whose vote makes a message essence; 0 switches voting off.",
    )
    vote_window_days: int = Field(
        default=3, ge=1, le=60, description="Votes count only within this many days of the message."
    )
    min_length: int = Field(
        default=6, ge=0, le=TEXT_LIMIT,
        description="Messages shorter than this (characters) are never voted into essence; admins may still mark them.",
    )
    points: int = Field(default=20, ge=0, le=1_000_000, description="Points the author earns per essence entry.")
    announce: bool = Field(default=True, description="Say in the group, as a reply, that a message became essence.")

    @field_validator("mark_words", "unmark_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        cleaned = [w.strip() for w in value if w.strip()]
        if len(cleaned) != len(value):
            raise ValueError("a word is empty; write the word or delete it")
        return cleaned

    @field_validator("marker_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value

    @field_validator("vote_emojis")
    @classmethod
    def _emojis(cls, value: list[str]) -> list[str]:
        if not all(_emoji(e) for e in value):
            raise ValueError("an emoji is empty; write the reaction or delete it")
        return value


class Essence(Playbook):
    id = "essence"
    config_model = EssenceConfig
    handles = frozenset({"message", "reaction"})
    emits = frozenset({"send"})
    commands: ClassVar[dict[str, str]] = {
        "mark": "Mark a message as essence: msg (message id), group (optional).",
        "unmark": "Take a message out of essence: msg (message id).",
        "list": "Essence entries: day (YYYY-MM-DD) or member (user id), optional; newest first.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "精华：管理员回复“精华”或成员点赞达到票数，消息即被收录为精华，作者得积分。",
        "en": "Essence: admins mark messages, or enough members' reactions vote them in; authors earn points.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "marked": {
            "zh-CN": "🌟 {name} 的这条消息已收录为精华，+{points} 积分！",
            "en": "🌟 {name}'s message is now part of the essence. +{points} points!",
        },
        "voted": {
            "zh-CN": "🌟 {votes} 位群友点赞，{name} 的这条消息入选精华，+{points} 积分！",
            "en": "🌟 {votes} members voted: {name}'s message joins the essence. +{points} points!",
        },
        "unmarked": {
            "zh-CN": "已将 {name} 的这条消息移出精华。",
            "en": "{name}'s message is no longer marked as essence.",
        },
        "not_found": {
            "zh-CN": "没有找到要标记的消息（可能已撤回或不是文字）。",
            "en": "I could not find that message (it may have been recalled, or it has no text).",
        },
    }

    def setup(self, ctx: Context) -> None:
        # old vote tallies are dropped once a day (they only matter within the window)
        ctx.schedule("tidy", cron="20 4 * * *")

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        if event.type == "reaction":
            self._vote(ctx, event)
            return
        target = event.reply_to
        if not target or not event.text:
            return
        cfg: EssenceConfig = ctx.config
        said = event.text.strip().casefold()
        if len(said) > 32:
            return
        marking = said in {w.casefold() for w in cfg.mark_words}
        unmarking = said in {w.casefold() for w in cfg.unmark_words}
        if not (marking or unmarking) or ctx.role(event.actor.id) not in cfg.marker_roles:
            return
        if unmarking:
            entry = ctx.state.get(f"e:{target}")
            if entry is not None:
                self._unmark(ctx, target, entry)
                ctx.send(ctx.render("unmarked", name=ctx.name(entry["by"])), reply_to=target)
            return
        if ctx.state.get(f"e:{target}") is not None:
            return  # already essence: nothing to add
        stored = find_message(ctx, target, group=ctx.group.key)
        if not _usable(stored):
            ctx.send(ctx.render("not_found"), reply_to=event.msg_id)
            return
        assert stored is not None
        self._mark(ctx, stored, marked_by=event.actor.id, announce="marked")

    def _vote(self, ctx: Context, event: Any) -> None:
        cfg: EssenceConfig = ctx.config
        if not cfg.votes_needed or _emoji(event.emoji) not in {_emoji(e) for e in cfg.vote_emojis}:
            return
        target = event.target
        if ctx.state.get(f"e:{target}") is not None:
            return
        key = f"v:{target}"
        tally = ctx.state.get(key)
        voter = event.actor.id
        if tally is None:
            stored = find_message(ctx, target, group=ctx.group.key)
            if stored is None:
                return  # a reaction to something the engine never saw
            tally = {"by": stored.author, "ts": stored.ts.isoformat(), "voters": []}
            if not (
                _usable(stored)
                and len(stored.text.strip()) >= cfg.min_length
                and event.ts - stored.ts <= timedelta(days=cfg.vote_window_days)
            ):
                # remembered as closed, so later reactions to it cost no lookup
                ctx.state.put(key, {**tally, "closed": True})
                return
            if voter == tally["by"]:
                ctx.state.put(key, tally)
                return
        if tally.get("closed") or voter == tally["by"] or voter in tally["voters"]:
            return  # closed, a self-vote, or a second vote by the same member
        if event.ts - datetime.fromisoformat(tally["ts"]) > timedelta(days=cfg.vote_window_days):
            return
        tally = {**tally, "voters": [*tally["voters"], voter]}
        if len(tally["voters"]) < cfg.votes_needed:
            ctx.state.put(key, tally)
            return
        ctx.state.delete(key)
        stored = find_message(ctx, target, group=ctx.group.key)
        if not _usable(stored):
            return
        assert stored is not None
        self._mark(ctx, stored, marked_by="votes", announce="voted", votes=len(tally["voters"]))

    # ---------------------------------------------------------------- marking

    def _mark(self, ctx: Context, stored: StoredMessage, *, marked_by: str, announce: str | None,
              votes: int = 0) -> dict[str, Any]:
        cfg: EssenceConfig = ctx.config
        author = stored.author
        day = ctx.local_day(stored.ts).isoformat()
        entry = {
            "by": author,
            "group": stored.group,
            "text": clip(stored.text.strip(), TEXT_LIMIT),
            "ts": stored.ts.isoformat(),
            "marked_by": marked_by,
            "day": day,
            "kind": "message",
        }
        ctx.state.put(f"e:{stored.msg_id}", entry)
        ctx.state.delete(f"v:{stored.msg_id}")
        mine = dict(ctx.state.get(f"m:{author}") or {})
        mine["essence"] = int(mine.get("essence", 0)) + 1
        mine.setdefault("first", ctx.now.isoformat())
        ctx.state.put(f"m:{author}", mine)
        ctx.record("essence", author, msg=stored.msg_id, group=stored.group, day=day, type="message",
                   marked_by=marked_by)
        if cfg.points:
            ctx.ledger.award_points(author, cfg.points, "essence")
            ctx.count("points", cfg.points, member=author)
        if cfg.announce and announce is not None and stored.group == ctx.group.key:
            ctx.send(
                ctx.render(announce, name=ctx.name(author), points=cfg.points, votes=votes),
                mentions=[author],
                reply_to=stored.msg_id,
            )
        return {"msg": stored.msg_id, **entry}

    def _unmark(self, ctx: Context, msg_id: str, entry: dict[str, Any]) -> None:
        """Take an entry back: the count goes down, and the points as far as the balance allows."""
        cfg: EssenceConfig = ctx.config
        author = entry["by"]
        ctx.state.delete(f"e:{msg_id}")
        mine = dict(ctx.state.get(f"m:{author}") or {})
        if mine:
            mine["essence"] = max(0, int(mine.get("essence", 0)) - 1)
            ctx.state.put(f"m:{author}", mine)
        back = min(cfg.points, max(0, ctx.ledger.points(author)))
        if back:
            ctx.ledger.transfer(ctx.ledger.member_account(author, "POINTS"), ctx.ledger.issuance_account("POINTS"),
                                back, "POINTS", "essence withdrawn")
            ctx.count("points", -back, member=author)
        ctx.record("essence_removed", author, msg=msg_id)

    # --------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        args = command.args
        if command.name == "list":
            return {"entries": self._list(ctx, args)}
        if command.name not in ("mark", "unmark"):
            raise CommandError(Msg("essence has no command {command!r}", command=command.name),
                               hint=Msg("one of: {commands}", commands=", ".join(sorted(self.commands))))
        msg_id = str(args.get("msg") or "").strip()
        if not msg_id:
            raise CommandError(Msg("essence {command} needs msg", command=command.name),
                               hint=Msg("give the message id (msg_id of the event)"))
        if command.name == "unmark":
            entry = ctx.state.get(f"e:{msg_id}")
            if entry is None:
                raise CommandError(Msg("message {msg} is not essence", msg=msg_id),
                                   hint=Msg("`list` shows the essence entries"))
            self._unmark(ctx, msg_id, entry)
            return {"msg": msg_id, "unmarked": True}
        if ctx.state.get(f"e:{msg_id}") is not None:
            raise CommandError(Msg("message {msg} is already essence", msg=msg_id))
        group = args.get("group")
        found = find_messages(ctx, [msg_id], group=str(group) if group else None).get(msg_id)
        if not _usable(found) and group:
            raise CommandError(
                Msg("no message {msg} with text in group {group}", msg=msg_id, group=group),
                hint=Msg("give the msg_id of a text message the engine has seen (and its group)"),
            )
        if not _usable(found):
            raise CommandError(
                Msg("no message {msg} with text", msg=msg_id),
                hint=Msg("give the msg_id of a text message the engine has seen (and its group)"),
            )
        assert found is not None
        actor = command.actor if ctx.role(command.actor) in ("owner", "admin") else "operator"
        return self._mark(ctx, found, marked_by=actor, announce=None)

    def _list(self, ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
        day = args.get("day")
        member = args.get("member")
        rows = [
            {"msg": key[2:], **e}
            for key, e in ctx.state.scan("e:")
            if (day is None or e.get("day") == day) and (member is None or e.get("by") == member)
        ]
        rows.sort(key=lambda r: (str(r.get("ts") or ""), r["msg"]), reverse=True)
        return rows[:LIST_LIMIT]

    # ------------------------------------------------------------------- jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != "tidy":
            return
        cfg: EssenceConfig = ctx.config
        cutoff = ctx.now - timedelta(days=cfg.vote_window_days + 1)
        for key, tally in list(ctx.state.scan("v:")):
            try:
                old = datetime.fromisoformat(tally["ts"]) < cutoff
            except (KeyError, TypeError, ValueError):
                old = True
            if old:
                ctx.state.delete(key)

    # ---------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        found = super().export_member(ctx, member)
        for key, e in ctx.state.scan("e:"):
            if member in (e.get("by"), e.get("marked_by")):
                found[key] = e
        for key, tally in ctx.state.scan("v:"):
            if tally.get("by") == member or member in tally.get("voters", ()):
                found[key] = tally
        return found

    def erase_member(self, ctx: Context, member: str) -> None:
        """Their essence entries go (text and all); their marks and votes lose their name."""
        # (not super(): it would delete everything our export lists)
        for key in Playbook.export_member(self, ctx, member):
            ctx.state.delete(key)
        for key, e in list(ctx.state.scan("e:")):
            if e.get("by") == member:
                ctx.state.delete(key)
            elif e.get("marked_by") == member:
                ctx.state.put(key, {**e, "marked_by": None})
        for key, tally in list(ctx.state.scan("v:")):
            if tally.get("by") == member:
                ctx.state.delete(key)
            elif member in tally.get("voters", ()):
                ctx.state.put(key, {**tally, "voters": [v for v in tally["voters"] if v != member]})


def _usable(stored: StoredMessage | None) -> bool:
    return stored is not None and stored.status == "visible" and bool(stored.text.strip())
