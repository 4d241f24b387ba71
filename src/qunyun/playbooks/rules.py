"""rules (群规): a versioned rules document that newcomers acknowledge.

The rules have three sections — purpose, activities, prohibitions — written
in the configuration (one text, or one per locale) and a ``version``. Every
version the playbook sees (a new ``version`` in the configuration, or the
``amend`` command) is added to a change history with its reason, time and
author; the latest entry is the current document.

A newcomer gets the rules when they join (@-mentioned in the group, or by
private message) and is asked to reply a keyword (``我已阅读`` / ``I agree``)
within ``ack_hours``. A reminder comes at ``reminder_hours``; at the deadline
the configured consequence is applied once: nothing, a note to the admins,
a mute, or removal. The deadline is set at the first join and never moves:
leaving and joining again does not buy more time. A member whose deadline
passed and who comes back gets the rules again and the admins are told, but
the automatic consequence is not applied a second time.

A new version can require everyone who acknowledged an older one to
acknowledge again (``reack_on_new_version``): each group announces the new
version on its next event and gives its members ``ack_hours``.

With ``proposals`` on, members may propose a change (``提议 修改群规：…`` /
``propose: …``); the group votes for ``vote_days`` days with ``+1`` / ``-1``
replies (or 👍 / 👎 reactions) to the proposal, one vote per member, the
proposer's proposal counting as their vote, and members who joined after the
proposal was made cannot vote. The result is announced; a passed proposal is
sent to the admins, who adopt it with ``amend`` (``proposal=<n>``).

State (community-scoped):

- ``history`` → ``[{"version", "reason", "ts", "by", "texts", "proposal"}, ...]``
- ``m:<uid>`` → ``{"joined", "due", "acked", "acked_at", "in": [groups],
  "reminded", "lapsed", "proposal"}``
- ``g:<platform>:<group>`` → ``{"announced": version}``
- ``p:<n>`` → a proposal; ``msg:<msg_id>`` → the number of the proposal it opened;
  ``proposals`` → how many were made
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.core.text import display_name
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig
from qunyun.playbooks.guard import quote
from qunyun.playbooks.welcome import LocalText, _check_text, localized

SECTIONS = ("purpose", "activities", "prohibitions")
#: The longest proposal text kept (characters, after cleaning).
PROPOSAL_CHARS = 300


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _prefix(keyword: str) -> re.Pattern[str]:
    """A keyword matched at the start of an NFKC-normalised message, ignoring case and spaces."""
    chars = [re.escape(c) for c in unicodedata.normalize("NFKC", keyword) if not c.isspace()]
    return re.compile(r"\s*" + r"\s*".join(chars), re.IGNORECASE)


class RulesConfig(PlaybookConfig):
    version: str = Field(
        default="1",
        min_length=1,
        max_length=32,
        description="The rules' version; a new value is recorded in the history (and may ask for re-acknowledgement).",
    )
    purpose: LocalText | None = Field(
        default=None, description="Why the group exists. Unset: the `rules.purpose_text` template."
    )
    activities: LocalText | None = Field(
        default=None, description="What happens in the group. Unset: the `rules.activities_text` template."
    )
    prohibitions: LocalText | None = Field(
        default=None, description="What is not allowed. Unset: the `rules.prohibitions_text` template."
    )
    delivery: Literal["mention", "direct"] = Field(
        default="mention",
        description="Give newcomers the rules in the group with an @-mention, or by private message.",
    )
    ack_keywords: list[str] = Field(
        default_factory=lambda: ["我已阅读", "I agree"],
        description="A message starting with one of these acknowledges the rules (case and width ignored).",
    )
    ack_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="Hours a newcomer has to acknowledge, from their first join."
    )
    reminder_hours: int | None = Field(
        default=12,
        ge=1,
        description="Remind this many hours after the join (before ack_hours); null for no reminder.",
    )
    consequence: Literal["none", "notify_admins", "mute", "remove"] = Field(
        default="notify_admins", description="What happens at the deadline without an acknowledgement."
    )
    mute_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="How long the `mute` consequence lasts."
    )
    reack_on_new_version: bool = Field(
        default=False, description="A new version asks everyone who acknowledged an older one to acknowledge again."
    )
    exempt_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin", "assistant", "guest"],
        description="Roles that never have to acknowledge.",
    )
    proposals: bool = Field(default=False, description="Let members propose rule changes and vote on them.")
    proposal_keywords: list[str] = Field(
        default_factory=lambda: ["提议 修改群规：", "propose:"],
        description="A message starting with one of these opens a proposal (the rest is the proposal).",
    )
    vote_days: int = Field(default=3, ge=1, le=30, description="Days a proposal is open for votes.")
    min_votes: int = Field(
        default=3, ge=1, le=10_000, description="Votes (for and against) a proposal needs to pass, with more for than against."
    )
    yes_votes: list[str] = Field(
        default_factory=lambda: ["+1", "👍"],
        description="Replies (at the start of the text) and reactions that vote for a proposal.",
    )
    no_votes: list[str] = Field(
        default_factory=lambda: ["-1", "👎"],
        description="Replies (at the start of the text) and reactions that vote against a proposal.",
    )

    @field_validator(*SECTIONS)
    @classmethod
    def _text(cls, value: LocalText | None) -> LocalText | None:
        return _check_text(value)

    @field_validator("ack_keywords", "proposal_keywords", "yes_votes", "no_votes")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one entry")
        for i, word in enumerate(value):
            if not word.strip():
                raise ValueError(f"entry {i + 1} is empty; write a word, or delete it")
        return [w.strip() for w in value]

    @field_validator("exempt_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from qunyun.config.model import ROLES

        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value

    @model_validator(mode="after")
    def _reminder_before_deadline(self) -> RulesConfig:
        if self.reminder_hours is not None and self.reminder_hours >= self.ack_hours:
            raise ValueError(
                f"reminder_hours ({self.reminder_hours}) must be less than ack_hours ({self.ack_hours})"
            )
        if set(map(_norm, self.yes_votes)) & set(map(_norm, self.no_votes)):
            raise ValueError("yes_votes and no_votes share an entry; a vote must mean one thing")
        return self


class Rules(Playbook):
    id = "rules"
    config_model = RulesConfig
    handles = frozenset({"member_joined", "member_left", "message", "reaction"})
    emits = frozenset({"send", "direct", "mute", "remove", "notify_admins"})
    commands: ClassVar[dict[str, str]] = {
        "show": "The current rules and their version.",
        "amend": "A new version: version=, reason=, and any of purpose=, activities=, prohibitions=, proposal=.",
        "history": "Every version with its reason, time and author.",
        "acks": "Who has and who has not acknowledged the current version.",
        "proposals": "Members' proposals and their votes.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "群规：带版本和修订记录的群规，新人回复关键词确认，逾期提醒或处理；成员可提议修改并投票。",
        "en": "Rules: a versioned rules document newcomers acknowledge by keyword, with reminders, deadlines and member proposals.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "document": {
            "zh-CN": "📜 群规（第 {version} 版）\n【宗旨】{purpose}\n【活动】{activities}\n【禁止】{prohibitions}",
            "en": "📜 Group rules (version {version})\nPurpose: {purpose}\nActivities: {activities}\nNot allowed: {prohibitions}",
        },
        "purpose_text": {
            "zh-CN": "一起学习、互相帮助、共同成长。",
            "en": "Learn together, help each other, grow together.",
        },
        "activities_text": {
            "zh-CN": "每日打卡，每周主题分享和答疑。",
            "en": "Daily check-ins, a weekly talk and a Q&A hour.",
        },
        "prohibitions_text": {
            "zh-CN": "广告、刷屏、人身攻击、未经同意的私加好友。",
            "en": "Ads, flooding, personal attacks, and adding members privately without asking.",
        },
        "ask": {
            "zh-CN": "{name}，欢迎！请读一下上面的群规，{hours} 小时内回复“{keyword}”表示同意。",
            "en": "{name}, welcome! Please read the rules above and reply \"{keyword}\" within {hours} hours to agree.",
        },
        "thanks": {
            "zh-CN": "谢谢 {name}，已记下你同意第 {version} 版群规。",
            "en": "Thanks {name}, you have agreed to version {version} of the rules.",
        },
        "reminder": {
            "zh-CN": "{name}，还差一步：请在 {deadline} 前回复“{keyword}”，确认已读群规。",
            "en": "{name}, one more step: reply \"{keyword}\" before {deadline} to confirm you have read the rules.",
        },
        "muted": {
            "zh-CN": "{name} 没有在期限内确认群规，先禁言 {mute_hours} 小时；之后回复“{keyword}”即可。",
            "en": "{name} did not confirm the rules in time and is muted for {mute_hours} hours; reply \"{keyword}\" afterwards.",
        },
        "remove_reason": {
            "zh-CN": "未在 {hours} 小时内确认群规",
            "en": "did not confirm the rules within {hours} hours",
        },
        "admin_lapsed": {
            "zh-CN": "📜 {name}（{member}）在「{group}」入群 {hours} 小时仍未确认群规。{done}",
            "en": "📜 {name} ({member}) has not confirmed the rules {hours} hours after joining {group}. {done}",
        },
        "done_mute": {"zh-CN": "已禁言 {mute_hours} 小时。", "en": "Muted for {mute_hours} hours."},
        "done_remove": {"zh-CN": "已移出本群。", "en": "Removed from the group."},
        "done_none": {"zh-CN": "请留意。", "en": "Please follow up."},
        "admin_rejoined": {
            "zh-CN": "📜 {name}（{member}）此前逾期未确认群规，现在又加入了「{group}」，群规已重新发给 TA。",
            "en": "📜 {name} ({member}) missed the rules deadline earlier and has joined {group} again; the rules were sent again.",
        },
        "admin_reack": {
            "zh-CN": "📜 「{group}」有 {count} 位成员没有按时确认第 {version} 版群规：{names}。{done}",
            "en": "📜 {count} members of {group} did not confirm version {version} of the rules in time: {names}. {done}",
        },
        "new_version": {
            "zh-CN": "📜 群规更新到第 {version} 版（{reason}）：\n{document}",
            "en": "📜 The rules are now at version {version} ({reason}):\n{document}",
        },
        "reack": {
            "zh-CN": "请大家在 {hours} 小时内回复“{keyword}”确认新版群规。",
            "en": "Please reply \"{keyword}\" within {hours} hours to agree to the new version.",
        },
        "reack_reminder": {
            "zh-CN": "📜 还没确认第 {version} 版群规的朋友，请在 {deadline} 前回复“{keyword}”：{names}",
            "en": "📜 Still to confirm version {version} of the rules, by {deadline} (reply \"{keyword}\"): {names}",
        },
        "proposal_opened": {
            "zh-CN": (
                "🗳️ {name} 发起第 {n} 号群规修改提议：“{text}”\n"
                "同意请回复这条提议“{yes}”，反对回复“{no}”（也可以发“{yes} #{n}”），{deadline} 截止。"
            ),
            "en": (
                "🗳️ {name} proposes rule change #{n}: \"{text}\"\n"
                "Reply \"{yes}\" to the proposal to agree or \"{no}\" to disagree (or write \"{yes} #{n}\"); "
                "voting closes {deadline}."
            ),
        },
        "proposal_empty": {
            "zh-CN": "{name}，提议内容是空的：请写成“提议 修改群规：你的建议”。",
            "en": "{name}, the proposal is empty: write it as \"propose: your suggestion\".",
        },
        "proposal_busy": {
            "zh-CN": "{name}，你的第 {n} 号提议还在投票中，等它结束再提新的吧。",
            "en": "{name}, your proposal #{n} is still open; wait for its result before making another.",
        },
        "proposal_passed": {
            "zh-CN": "🗳️ 第 {n} 号提议通过（赞成 {yes}，反对 {no}）：{name} 提出的“{text}”。管理员会据此修订群规。",
            "en": "🗳️ Proposal #{n} passed ({yes} for, {no} against): \"{text}\", proposed by {name}. "
            "The admins will amend the rules.",
        },
        "proposal_failed": {
            "zh-CN": "🗳️ 第 {n} 号提议未通过（赞成 {yes}，反对 {no}；需要至少 {min_votes} 票且赞成多于反对）。",
            "en": "🗳️ Proposal #{n} did not pass ({yes} for, {no} against; it needed {min_votes} votes and more for than against).",
        },
        "former_member": {"zh-CN": "一位已注销的成员", "en": "a former member"},
        "admin_proposal": {
            "zh-CN": "🗳️ {name} 提出的第 {n} 号群规修改提议已通过（赞成 {yes}，反对 {no}）：“{text}”。"
            "采纳时请用 amend 命令并写上 proposal={n}。",
            "en": "🗳️ Rule proposal #{n} by {name} passed ({yes} for, {no} against): \"{text}\". "
            "To adopt it, use the amend command with proposal={n}.",
        },
    }

    # ------------------------------------------------------------- documents

    def _history(self, ctx: Context) -> list[dict[str, Any]]:
        return list(ctx.state.get("history") or [])

    def _current(self, ctx: Context) -> dict[str, Any]:
        """The current entry of the history (recording the configured version if it is new)."""
        history = self._history(ctx)
        cfg: RulesConfig = ctx.config
        if not any(h["version"] == cfg.version for h in history):
            entry = {
                "version": cfg.version,
                "reason": "configuration" if history else "first version",
                "ts": ctx.now.isoformat(),
                "by": "config",
                "texts": None,
                "proposal": None,
            }
            history.append(entry)
            ctx.state.put("history", history)
            ctx.record("version", version=cfg.version, by="config")
        return history[-1]

    def _texts(self, ctx: Context, entry: dict[str, Any]) -> dict[str, str]:
        cfg: RulesConfig = ctx.config
        stored = entry.get("texts") or {}
        out = {}
        for section in SECTIONS:
            value = stored.get(section) or getattr(cfg, section)
            out[section] = localized(value, ctx.locale) if value else ctx.render(f"{section}_text")
        return out

    def _document(self, ctx: Context, entry: dict[str, Any]) -> str:
        return ctx.render("document", version=entry["version"], **self._texts(ctx, entry))

    def _when(self, ctx: Context, moment: datetime) -> str:
        return moment.astimezone(ctx.community.tz).strftime("%m-%d %H:%M")

    def setup(self, ctx: Context) -> None:
        current = self._current(ctx)
        announced = (ctx.state.get(_gkey(ctx)) or {}).get("announced")
        if announced is None:
            ctx.state.put(_gkey(ctx), {"announced": current["version"]})
        elif announced != current["version"]:
            # Announce from a job: setup itself may run again after a restart.
            ctx.schedule("announce", at=ctx.now)

    def _announce(self, ctx: Context) -> None:
        """Post the current version in this group if it has not seen it yet."""
        current = self._current(ctx)
        gkey = _gkey(ctx)
        st = ctx.state.get(gkey) or {}
        announced = st.get("announced")
        if announced == current["version"]:
            return
        ctx.state.put(gkey, {**st, "announced": current["version"]})
        if announced is None:
            return  # the first version this group knows: nothing changed for it
        cfg: RulesConfig = ctx.config
        text = ctx.render(
            "new_version",
            version=current["version"],
            reason=quote(str(current.get("reason") or "—"), 200),
            document=self._document(ctx, current),
        )
        if cfg.reack_on_new_version:
            text += "\n" + ctx.render("reack", hours=cfg.ack_hours, keyword=cfg.ack_keywords[0])
            payload = {"version": current["version"], "since": ctx.now.isoformat()}
            if cfg.reminder_hours:
                ctx.schedule("reack_remind", at=ctx.now + timedelta(hours=cfg.reminder_hours), payload=payload)
            ctx.schedule("reack_due", at=ctx.now + timedelta(hours=cfg.ack_hours), payload=payload)
        ctx.send(text)
        ctx.record("announced", version=current["version"])

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        self._announce(ctx)
        uid: str = event.actor.id
        if event.type == "member_joined":
            self._joined(ctx, uid, event.ts)
        elif event.type == "member_left":
            self._left(ctx, uid)
        elif event.type == "reaction":
            self._reaction(ctx, event)
        elif event.content_type != "system" and event.text:
            self._message(ctx, event)

    def _joined(self, ctx: Context, uid: str, when: datetime) -> None:
        cfg: RulesConfig = ctx.config
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        gk = ctx.group.key
        st["in"] = [*(g for g in st.get("in", []) if g != gk), gk]
        st.setdefault("joined", when.isoformat())
        if ctx.role(uid) in cfg.exempt_roles:
            ctx.state.put(key, st)
            return
        current = self._current(ctx)
        if st.get("acked") is not None:
            ctx.state.put(key, st)
            return  # acknowledged before: a rejoin asks nothing
        if "due" not in st:
            st["due"] = (when + timedelta(hours=cfg.ack_hours)).isoformat()
        due = datetime.fromisoformat(st["due"])
        ctx.state.put(key, st)
        if due <= ctx.now and not st.get("lapsed"):
            # they left before their deadline and came back after it: it still applies, now
            if cfg.consequence != "remove":
                self._deliver(ctx, uid, self._document(ctx, current) + "\n" + self._ask(ctx, uid))
            self._lapse(ctx, uid, st)
            return
        self._deliver(ctx, uid, self._document(ctx, current) + "\n" + self._ask(ctx, uid))
        if due <= ctx.now:
            # the consequence was applied once already; the admins decide what happens now
            if cfg.consequence != "none":
                ctx.notify_admins(ctx.render("admin_rejoined", **self._who(ctx, uid)))
            return
        # the deadline set at the first join stands, whatever the rejoins
        if cfg.reminder_hours and not st.get("reminded"):
            remind_at = datetime.fromisoformat(st["joined"]) + timedelta(hours=cfg.reminder_hours)
            if remind_at > ctx.now:
                ctx.schedule("remind", at=remind_at, key=f"remind:{uid}", payload={"member": uid})
        ctx.schedule("due", at=due, key=f"due:{uid}", payload={"member": uid})

    def _left(self, ctx: Context, uid: str) -> None:
        key = f"m:{uid}"
        st = ctx.state.get(key)
        if not st or ctx.group.key not in st.get("in", []):
            return
        ctx.state.put(key, {**st, "in": [g for g in st["in"] if g != ctx.group.key]})
        ctx.cancel(f"remind:{uid}")
        ctx.cancel(f"due:{uid}")

    def _ask(self, ctx: Context, uid: str) -> str:
        cfg: RulesConfig = ctx.config
        return ctx.render("ask", name=ctx.name(uid), hours=cfg.ack_hours, keyword=cfg.ack_keywords[0])

    def _deliver(self, ctx: Context, uid: str, text: str) -> None:
        cfg: RulesConfig = ctx.config
        if cfg.delivery == "direct":
            ctx.direct(uid, text)
        else:
            ctx.send(text, mentions=[uid])

    def _who(self, ctx: Context, uid: str) -> dict[str, Any]:
        cfg: RulesConfig = ctx.config
        return {
            "name": ctx.name(uid),
            "member": display_name(uid, "?", limit=64),
            "group": display_name(ctx.group.name, ctx.group.key, limit=64),
            "hours": cfg.ack_hours,
            "mute_hours": cfg.mute_hours,
            "keyword": cfg.ack_keywords[0],
        }

    def _message(self, ctx: Context, event: Any) -> None:
        cfg: RulesConfig = ctx.config
        text = unicodedata.normalize("NFKC", event.text[:2000])
        if any(_prefix(k).match(text) for k in cfg.ack_keywords):
            self._ack(ctx, event)
            return
        if not cfg.proposals:
            return
        for keyword in cfg.proposal_keywords:
            match = _prefix(keyword).match(text)
            if match:
                self._propose(ctx, event, text[match.end():])
                return
        low = text.casefold()
        vote = self._vote_of(cfg, low)
        if vote is None:
            return
        number: int | None = None
        if event.reply_to:
            number = ctx.state.get(f"msg:{event.reply_to}")
        if number is None:
            tag = re.match(r"\s*[+-]?\S*\s*#\s*(\d{1,9})\s*$", low)
            number = int(tag.group(1)) if tag else None
        if number is not None:
            self._cast(ctx, int(number), event.actor.id, vote, event.ts)

    def _ack(self, ctx: Context, event: Any) -> None:
        uid: str = event.actor.id
        key = f"m:{uid}"
        current = self._current(ctx)
        st = dict(ctx.state.get(key) or {"in": [ctx.group.key]})
        if st.get("acked") == current["version"]:
            return  # already on record: stay quiet
        st.update(acked=current["version"], acked_at=event.ts.isoformat())
        ctx.state.put(key, st)
        ctx.cancel(f"remind:{uid}")
        ctx.cancel(f"due:{uid}")
        ctx.record("ack", member=uid, version=current["version"])
        ctx.send(
            ctx.render("thanks", name=ctx.name(uid), version=current["version"]),
            mentions=[uid],
            reply_to=event.msg_id,
        )

    # ------------------------------------------------------------- proposals

    @staticmethod
    def _vote_of(cfg: RulesConfig, text: str) -> int | None:
        stripped = text.strip()
        for word in cfg.yes_votes:
            if stripped.startswith(_norm(word)):
                return 1
        for word in cfg.no_votes:
            if stripped.startswith(_norm(word)):
                return -1
        return None

    def _propose(self, ctx: Context, event: Any, rest: str) -> None:
        cfg: RulesConfig = ctx.config
        uid: str = event.actor.id
        name = ctx.name(uid)
        text = quote(rest.strip(" \t:：,，-—"), PROPOSAL_CHARS) if rest.strip(" \t:：,，-—") else ""
        if not text or text == "—":
            ctx.send(ctx.render("proposal_empty", name=name), mentions=[uid], reply_to=event.msg_id)
            return
        key = f"m:{uid}"
        st = dict(ctx.state.get(key) or {})
        mine = st.get("proposal")
        if mine is not None and (ctx.state.get(f"p:{mine}") or {}).get("status") == "open":
            ctx.send(ctx.render("proposal_busy", name=name, n=mine), mentions=[uid], reply_to=event.msg_id)
            return
        n = int(ctx.state.get("proposals") or 0) + 1
        closes = event.ts + timedelta(days=cfg.vote_days)
        ctx.state.put("proposals", n)
        ctx.state.put(
            f"p:{n}",
            {
                "n": n,
                "group": ctx.group.key,
                "msg_id": event.msg_id,
                "by": uid,
                "text": text,
                "opened": event.ts.isoformat(),
                "closes": closes.isoformat(),
                "yes": 1,
                "no": 0,
                "voters": {uid: 1},  # the proposal is the proposer's vote
                "status": "open",
            },
        )
        ctx.state.put(f"msg:{event.msg_id}", n)
        st["proposal"] = n
        ctx.state.put(key, st)
        ctx.schedule("close", at=closes, key=f"close:{n}", payload={"n": n})
        ctx.record("proposal", member=uid, n=n)
        ctx.send(
            ctx.render(
                "proposal_opened",
                name=name,
                n=n,
                text=text,
                yes=cfg.yes_votes[0],
                no=cfg.no_votes[0],
                deadline=self._when(ctx, closes),
            ),
            reply_to=event.msg_id,
        )

    def _reaction(self, ctx: Context, event: Any) -> None:
        cfg: RulesConfig = ctx.config
        if not cfg.proposals:
            return
        number = ctx.state.get(f"msg:{event.target}")
        if number is None:
            return
        emoji = _norm(event.emoji.strip())
        vote = 1 if emoji in map(_norm, cfg.yes_votes) else -1 if emoji in map(_norm, cfg.no_votes) else 0
        if vote:
            self._cast(ctx, int(number), event.actor.id, vote, event.ts)

    def _cast(self, ctx: Context, n: int, uid: str, vote: int, when: datetime) -> None:
        p = ctx.state.get(f"p:{n}")
        if not p or p["status"] != "open" or when >= datetime.fromisoformat(p["closes"]):
            return
        if uid in p["voters"]:
            ctx.record("vote_refused", member=uid, n=n, why="already voted")
            return
        joined = (ctx.state.get(f"m:{uid}") or {}).get("joined")
        if joined is not None and datetime.fromisoformat(joined) > datetime.fromisoformat(p["opened"]):
            ctx.record("vote_refused", member=uid, n=n, why="joined after the proposal")
            return
        p = {**p, "voters": {**p["voters"], uid: vote}}
        p["yes" if vote > 0 else "no"] += 1
        ctx.state.put(f"p:{n}", p)

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        cfg: RulesConfig = ctx.config
        if job.name == "announce":
            self._announce(ctx)
        elif job.name == "remind":
            uid = job.payload.get("member")
            st = ctx.state.get(f"m:{uid}") if isinstance(uid, str) else None
            if not st or st.get("acked") is not None or ctx.group.key not in st.get("in", []) or st.get("reminded"):
                return
            ctx.state.put(f"m:{uid}", {**st, "reminded": True})
            deadline = self._when(ctx, datetime.fromisoformat(st["due"]))
            self._deliver(
                ctx,
                str(uid),
                ctx.render("reminder", name=ctx.name(str(uid)), deadline=deadline, keyword=cfg.ack_keywords[0]),
            )
        elif job.name == "due":
            uid = job.payload.get("member")
            st = ctx.state.get(f"m:{uid}") if isinstance(uid, str) else None
            if not st or st.get("acked") is not None or ctx.group.key not in st.get("in", []):
                return
            self._lapse(ctx, str(uid), st)
        elif job.name in ("reack_remind", "reack_due"):
            self._reack(ctx, job)
        elif job.name == "close":
            self._close(ctx, int(job.payload.get("n", 0)))

    def _lapse(self, ctx: Context, uid: str, st: dict[str, Any], *, notify: bool = True) -> None:
        """The deadline passed without an acknowledgement: the consequence, once."""
        cfg: RulesConfig = ctx.config
        told = bool(st.get("lapsed")) or not notify
        ctx.state.put(f"m:{uid}", {**st, "lapsed": ctx.now.isoformat()})
        ctx.record("lapsed", member=uid, consequence=cfg.consequence)
        who = self._who(ctx, uid)
        if cfg.consequence == "mute":
            ctx.mute(uid, ctx.now + timedelta(hours=cfg.mute_hours))
            ctx.send(ctx.render("muted", **who), mentions=[uid])
        elif cfg.consequence == "remove":
            ctx.remove(uid, ctx.render("remove_reason", **who))
        if cfg.consequence != "none" and not told:
            done = ctx.render(f"done_{cfg.consequence}", **who) if cfg.consequence != "notify_admins" else ""
            ctx.notify_admins(ctx.render("admin_lapsed", done=done or ctx.render("done_none"), **who))

    def _reack(self, ctx: Context, job: JobCall) -> None:
        cfg: RulesConfig = ctx.config
        version = job.payload.get("version")
        since = job.payload.get("since")
        if version != self._current(ctx)["version"] or not isinstance(since, str):
            return  # superseded by a newer version
        exempt = set(cfg.exempt_roles)
        due: list[tuple[str, dict[str, Any]]] = []
        for key, st in ctx.state.scan("m:"):
            uid = key[2:]
            if ":" in uid or ctx.group.key not in st.get("in", []):
                continue
            if st.get("acked") in (None, version) or ctx.role(uid) in exempt:
                continue  # newcomers have their own deadline; the others are done
            joined = st.get("joined")
            if joined and datetime.fromisoformat(joined) > datetime.fromisoformat(since):
                continue
            due.append((uid, st))
        if not due:
            return
        if job.name == "reack_remind":
            shown = [uid for uid, _ in due[:20]]
            sep = "、" if ctx.locale == "zh-CN" else ", "
            deadline = self._when(ctx, datetime.fromisoformat(since) + timedelta(hours=cfg.ack_hours))
            ctx.send(
                ctx.render(
                    "reack_reminder",
                    version=version,
                    deadline=deadline,
                    keyword=cfg.ack_keywords[0],
                    names=sep.join(f"@{ctx.name(u)}" for u in shown),
                ),
                mentions=shown,
            )
            return
        for uid, st in due:
            self._lapse(ctx, uid, st, notify=False)
        if cfg.consequence != "none":
            names = ("、" if ctx.locale == "zh-CN" else ", ").join(ctx.name(u) for u, _ in due[:50])
            ctx.notify_admins(
                ctx.render(
                    "admin_reack",
                    version=version,
                    count=len(due),
                    names=names,
                    group=display_name(ctx.group.name, ctx.group.key, limit=64),
                    done=ctx.render(f"done_{cfg.consequence}", mute_hours=cfg.mute_hours)
                    if cfg.consequence != "notify_admins"
                    else ctx.render("done_none"),
                )
            )

    def _close(self, ctx: Context, n: int) -> None:
        cfg: RulesConfig = ctx.config
        p = ctx.state.get(f"p:{n}")
        if not p or p["status"] != "open":
            return
        yes, no = int(p["yes"]), int(p["no"])
        passed = yes + no >= cfg.min_votes and yes > no
        p = {**p, "status": "passed" if passed else "failed"}
        ctx.state.put(f"p:{n}", p)
        by = p.get("by")
        if by:
            mine = ctx.state.get(f"m:{by}") or {}
            if mine.get("proposal") == n:
                mine = {k: v for k, v in mine.items() if k != "proposal"}
                if mine:
                    ctx.state.put(f"m:{by}", mine)
                else:
                    ctx.state.delete(f"m:{by}")
        # The proposer is named wherever their text is quoted: erasing them blanks
        # every bot message that names them, so no copy of their words outlives it.
        proposer = ctx.name(by) if by else ctx.render("former_member")
        values = {"n": n, "yes": yes, "no": no, "text": p["text"], "min_votes": cfg.min_votes, "name": proposer}
        ctx.record("proposal_closed", n=n, passed=passed, yes=yes, no=no)
        if passed:
            ctx.send(ctx.render("proposal_passed", **values))
            ctx.notify_admins(ctx.render("admin_proposal", **values))
        else:
            ctx.send(ctx.render("proposal_failed", **values))

    # -------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        name = command.name
        if name == "show":
            current = self._current(ctx)
            return {
                "version": current["version"],
                "since": current["ts"],
                **self._texts(ctx, current),
                "text": self._document(ctx, current),
            }
        if name == "history":
            self._current(ctx)
            return {
                "history": [
                    {k: h.get(k) for k in ("version", "reason", "ts", "by", "proposal")}
                    for h in self._history(ctx)
                ]
            }
        if name == "amend":
            return self._amend(ctx, command)
        if name == "acks":
            return self._acks(ctx)
        if name == "proposals":
            return {
                "proposals": [
                    {k: p.get(k) for k in ("n", "text", "status", "yes", "no", "opened", "closes", "adopted")}
                    for key, p in ctx.state.scan("p:")
                ]
            }
        raise CommandError(Msg("rules has no command {command!r}", command=name),
                           hint=Msg("commands: {commands}", commands=", ".join(self.commands)))

    def _amend(self, ctx: Context, command: Command) -> dict[str, Any]:
        args = command.args
        version = args.get("version")
        reason = args.get("reason")
        if not isinstance(version, str) or not version.strip() or len(version) > 32:
            raise CommandError(Msg('amend needs version= (a short text, e.g. "2" or "2026-11")'))
        if not isinstance(reason, str) or not reason.strip():
            raise CommandError(Msg("amend needs reason= (why the rules change)"),
                               hint=Msg("the reason is kept in the history"))
        version = version.strip()
        unknown = set(args) - {"version", "reason", "proposal", *SECTIONS}
        if unknown:
            raise CommandError(
                Msg("amend does not take {arguments}", arguments=", ".join(sorted(unknown))),
                hint=Msg("arguments: version, reason, purpose, activities, prohibitions, proposal"),
            )
        current = self._current(ctx)
        history = self._history(ctx)
        if any(h["version"] == version for h in history):
            raise CommandError(Msg("version {version!r} is already in the history", version=version),
                               hint=Msg("choose a new version"))
        texts = dict(current.get("texts") or {})
        for section in SECTIONS:
            if section in args:
                value = args[section]
                if not isinstance(value, str) or not value.strip():
                    raise CommandError(Msg("{section}= must be a non-empty text", section=section))
                texts[section] = value.strip()
        if not texts:
            # keep the document the group had, even if the configuration changes later
            cfg: RulesConfig = ctx.config
            texts = {s: getattr(cfg, s) for s in SECTIONS if getattr(cfg, s) is not None}
        proposal = args.get("proposal")
        if proposal is not None:
            p = ctx.state.get(f"p:{proposal}") if type(proposal) is int else None
            if not p:
                raise CommandError(Msg("there is no proposal {proposal!r}", proposal=proposal),
                                   hint=Msg("see the proposals command"))
            if p["status"] != "passed":
                raise CommandError(Msg("proposal {proposal} is {status}, not passed; only a passed proposal is adopted",
                                       proposal=proposal, status=p["status"]))
            ctx.state.put(f"p:{proposal}", {**p, "status": "adopted", "adopted": version})
        entry = {
            "version": version,
            "reason": reason.strip()[:500],
            "ts": ctx.now.isoformat(),
            "by": command.actor,
            "texts": texts or None,
            "proposal": proposal,
        }
        history.append(entry)
        ctx.state.put("history", history)
        ctx.record("version", version=version, by=command.actor, proposal=proposal)
        if not ctx.group.admin:
            self._announce(ctx)
        return {"version": version, "previous": current["version"], "history": len(history)}

    def _acks(self, ctx: Context) -> dict[str, Any]:
        cfg: RulesConfig = ctx.config
        current = self._current(ctx)["version"]
        done: list[str] = []
        pending: list[dict[str, Any]] = []
        for key, st in ctx.state.scan("m:"):
            uid = key[2:]
            if ":" in uid or not st.get("in") or ctx.role(uid) in cfg.exempt_roles:
                continue
            if st.get("acked") == current:
                done.append(uid)
            else:
                pending.append({"member": uid, "acked": st.get("acked"), "due": st.get("due"), "lapsed": st.get("lapsed")})
        return {"version": current, "acknowledged": done, "pending": pending}

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        out = super().export_member(ctx, member)
        for key, p in ctx.state.scan("p:"):
            mine: dict[str, Any] = {}
            if p.get("by") == member:
                mine["proposed"] = p.get("text")
            if member in p.get("voters", {}):
                mine["vote"] = p["voters"][member]
            if mine:
                out[key] = mine
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        for key in Playbook.export_member(self, ctx, member):  # m:<member> and m:<member>:…
            ctx.state.delete(key)
        for key, p in list(ctx.state.scan("p:")):
            if p.get("by") != member and member not in p.get("voters", {}):
                continue
            p = dict(p)
            if p.get("by") == member:
                p["by"] = None
                p["text"] = "—"
            # the tally stays (anonymous); who voted how goes
            p["voters"] = {u: v for u, v in p.get("voters", {}).items() if u != member}
            ctx.state.put(key, p)


def _gkey(ctx: Context) -> str:
    return f"g:{ctx.group.platform}:{ctx.group.key}"
