"""medals (勋章): achievements awarded once, from rules over counters other playbooks keep.

Each medal is configured with an id, a name in each language and a rule —
``{source: checkin, key: best, at_least: 30}`` — over one known counter (no
expressions, nothing evaluated):

| source      | keys                                | read from |
|-------------|-------------------------------------|-----------|
| `checkin`   | `streak`, `best`, `total`           | the `checkin` playbook's `m:<uid>` |
| `qa`        | `asked`, `answers`, `best`, `votes` | the `qa` playbook's `m:<uid>` |
| `essence`   | `essence`                           | the `essence` playbook's `m:<uid>` |
| `sessions`  | `shares`                            | the `sessions` playbook's `m:<uid>` |
| `referrals` | `invited`                           | the `referrals` playbook's `m:<uid>` |
| `digest`    | `included`                          | the number of `digest_included` records about the member |
| `points`    | `balance`                           | the member's points balance in the ledger (`currency`) |

A member's medals are checked when they act (a message, a reaction, a join:
list ``medals`` after the playbooks whose counters it reads, so it sees what
they just counted), when the ledger moves their points (``watches_ledger``),
and for everyone by a daily job (``check``, which also catches the
``digest`` source and counters that moved without the member acting — votes
on their answer, say). A medal is awarded once and kept; it is announced in
the group (or privately, or not at all: ``announce``). ``我的勋章`` / ``my
medals`` shows the sender's medals, ``勋章榜`` / ``medal board`` the board;
the ``show``, ``board`` and ``check`` commands do the same for operators.

The jobs run in one group: the admins' group if it runs the playbook, else
the first group that does.

State: ``m:<uid>`` → ``{"medals": {medal_id: iso_awarded}}`` (the issue's
shared contract). A medal removed from the configuration stays in the state
but is no longer shown.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Command, Context, JobCall, Playbook, PlaybookConfig, Posting
from qunyun.engine.scheduler import validate_cron
from qunyun.playbooks.welcome import LocalText, _check_text, localized
from qunyun.store import models as m

Source = Literal["checkin", "qa", "essence", "sessions", "referrals", "digest", "points"]
#: The counters a rule may name, per source.
KEYS: dict[str, tuple[str, ...]] = {
    "checkin": ("streak", "best", "total"),
    "qa": ("asked", "answers", "best", "votes"),
    "essence": ("essence",),
    "sessions": ("shares",),
    "referrals": ("invited",),
    "digest": ("included",),
    "points": ("balance",),
}
#: Sources read from another playbook's ``m:<uid>`` state.
STATE_SOURCES = ("checkin", "qa", "essence", "sessions", "referrals")
_JOB = "check"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,48}$")
_MAX_QUERY = 64


class Rule(BaseModel):
    """``value of <source>.<key> >= at_least``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source = Field(description="Where the counter is kept: " + ", ".join(KEYS) + ".")
    key: str = Field(description="The counter; see the table of keys per source.")
    at_least: int = Field(ge=1, description="The medal is earned when the counter reaches this.")

    @model_validator(mode="after")
    def _known_key(self) -> Rule:
        allowed = KEYS[self.source]
        if self.key not in allowed:
            raise ValueError(f"source {self.source!r} has no counter {self.key!r}; use one of: {', '.join(allowed)}")
        return self


class Medal(BaseModel):
    """One achievement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stable id (letters, digits, - _ .); kept in members' state.")
    name: LocalText = Field(description="The medal's name: one text, or one per locale.")
    rule: Rule = Field(description="When it is earned: {source, key, at_least}.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"medal id {value!r}: use 1-48 letters, digits, '-', '_' or '.'")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: LocalText) -> LocalText:
        checked = _check_text(value)
        assert checked is not None
        return checked


def _default_medals() -> list[Medal]:
    def medal(mid: str, zh: str, en: str, source: str, key: str, at_least: int) -> Medal:
        return Medal.model_validate(
            {"id": mid, "name": {"zh-CN": zh, "en": en}, "rule": {"source": source, "key": key, "at_least": at_least}}
        )

    return [
        medal("first-essence", "首篇精华", "First essence", "essence", "essence", 1),
        medal("streak-30", "连续打卡 30 天", "30-day streak", "checkin", "best", 30),
        medal("best-answers-10", "十佳回答", "10 best answers", "qa", "best", 10),
        medal("digest", "精华作者", "In the digest", "digest", "included", 1),
        medal("referrals-10", "拉新达人", "10 referrals", "referrals", "invited", 10),
        medal("points-1000", "千分达人", "1,000 points", "points", "balance", 1000),
    ]


class MedalsConfig(PlaybookConfig):
    medals: list[Medal] = Field(
        default_factory=_default_medals,
        description="The achievements: [{id, name, rule: {source, key, at_least}}]. "
        "Default: first essence, 30-day streak, 10 best answers, in the digest, 10 referrals, 1,000 points.",
    )
    check: str = Field(default="30 0 * * *", description="Cron (community time zone) of the daily check of everyone.")
    announce: Literal["group", "direct", "none"] = Field(
        default="group", description="Announce a new medal in the group, privately to the member, or not at all."
    )
    currency: str = Field(default="POINTS", min_length=1, max_length=16, description="Ledger currency of `points` rules.")
    show_keywords: list[str] = Field(
        default_factory=lambda: ["我的勋章", "my medals"],
        description="A message that is exactly one of these shows the sender's medals.",
    )
    board_keywords: list[str] = Field(
        default_factory=lambda: ["勋章榜", "medal board"],
        description="A message that is exactly one of these shows the medal board.",
    )
    board_size: int = Field(default=10, ge=1, le=50, description="Rows on the medal board.")

    @field_validator("check")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("medals")
    @classmethod
    def _unique(cls, value: list[Medal]) -> list[Medal]:
        seen: set[str] = set()
        for medal in value:
            if medal.id in seen:
                raise ValueError(f"medal id {medal.id!r} appears twice")
            seen.add(medal.id)
        return value

    @field_validator("show_keywords", "board_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            k = kw.strip().casefold()
            if not k or len(k) > _MAX_QUERY:
                raise ValueError(f"keywords must be 1 to {_MAX_QUERY} characters; got {kw!r}")
            out.append(k)
        return out


def _home(ctx: Context, pid: str) -> bool:
    groups = list(ctx.community.groups.values())
    admins = [g for g in groups if g.admin and pid in g.playbooks]
    home = admins[0] if admins else next((g for g in groups if pid in g.playbooks), None)
    return home is not None and (home.platform, home.key) == (ctx.group.platform, ctx.group.key)


class Medals(Playbook):
    id = "medals"
    version = "1"
    config_model = MedalsConfig
    handles = frozenset({"message", "reaction", "member_joined"})
    emits = frozenset({"send", "direct"})
    watches_ledger = True
    commands: ClassVar[dict[str, str]] = {
        "show": "A member's medals. Args: member.",
        "board": "The medal board.",
        "check": "Check everyone now and award what has been earned.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "勋章：按配置的规则（首篇精华、连续打卡 30 天、十佳回答……）颁发成就勋章，每枚只发一次。",
        "en": "Medals for achievements (first essence, 30-day streak, 10 best answers…) from configured rules, "
        "each awarded once.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "awarded": {
            "zh-CN": "🏅 恭喜 @{name} 获得勋章：{medals}！",
            "en": "🏅 Congratulations @{name}, you earned: {medals}!",
        },
        "awarded_direct": {
            "zh-CN": "🏅 恭喜你获得勋章：{medals}！",
            "en": "🏅 Congratulations, you earned: {medals}!",
        },
        "medal_name": {"zh-CN": "「{medal}」", "en": "\"{medal}\""},
        "mine": {
            "zh-CN": "{name} 的勋章（{count} 枚）：\n{lines}",
            "en": "{name}'s medals ({count}):\n{lines}",
        },
        "mine_line": {"zh-CN": "🏅 {medal} · {day}", "en": "🏅 {medal} · {day}"},
        "none": {
            "zh-CN": "{name} 还没有勋章，继续加油！",
            "en": "{name}, no medals yet. Keep going!",
        },
        "board": {
            "zh-CN": "🏅 勋章榜：\n{lines}",
            "en": "🏅 Medal board:\n{lines}",
        },
        "board_line": {"zh-CN": "{rank}. {name} · {count} 枚", "en": "{rank}. {name} · {count}"},
        "board_empty": {
            "zh-CN": "还没有人获得勋章。",
            "en": "Nobody has earned a medal yet.",
        },
    }

    def setup(self, ctx: Context) -> None:
        cfg: MedalsConfig = ctx.config
        if _home(ctx, self.id):
            ctx.schedule(_JOB, cron=cfg.check)
        else:
            ctx.cancel(_JOB)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: MedalsConfig = ctx.config
        uid = event.actor.id
        if event.type == "message":
            text = (event.text or "").strip()
            if text and len(text) <= _MAX_QUERY:
                low = text.casefold()
                if low in cfg.show_keywords:
                    self._show(ctx, uid, event.msg_id)
                    return
                if low in cfg.board_keywords:
                    self._board(ctx, event.msg_id)
                    return
        self._check(ctx, uid, with_records=False)

    def on_postings(self, ctx: Context, postings: list[Posting]) -> None:
        cfg: MedalsConfig = ctx.config
        if not any(md.rule.source == "points" for md in cfg.medals):
            return
        seen: dict[str, None] = {}
        for p in postings:
            if p.member is not None and p.account == ctx.ledger.member_account(p.member, cfg.currency):
                seen[p.member] = None
        for uid in seen:
            self._check(ctx, uid, with_records=False)

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name == _JOB:
            self._check_all(ctx)

    # ------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        if command.name == "show":
            member = command.args.get("member")
            if not isinstance(member, str) or not member:
                raise CommandError(Msg("show needs member (a user id)"))
            return {"member": member, "medals": self._held(ctx, member)}
        if command.name == "board":
            return {"board": [{"member": uid, "count": n} for n, uid in self._rows(ctx)]}
        if command.name == "check":
            return {"awarded": self._check_all(ctx)}
        return super().on_command(ctx, command)

    # ------------------------------------------------------------- checking

    def _value(self, ctx: Context, uid: str, medal: Medal, *, with_records: bool) -> int | None:
        """The rule's counter for ``uid`` now, or None when it cannot be read here."""
        cfg: MedalsConfig = ctx.config
        rule = medal.rule
        if rule.source in STATE_SOURCES:
            st = ctx.state_of(rule.source).get(f"m:{uid}")
            value = st.get(rule.key) if isinstance(st, dict) else None
            return value if isinstance(value, int) and not isinstance(value, bool) else 0
        if rule.source == "points":
            return ctx.ledger.points(uid, cfg.currency)
        if not with_records:
            return None  # records are counted by the daily job, not on every message
        rt = m.table(m.Record)
        count = ctx.db.execute(
            select(func.count()).where(
                rt.c.community_id == ctx.community.id, rt.c.kind == "digest_included", rt.c.member == uid
            )
        ).scalar_one()
        return int(count)

    def _check(self, ctx: Context, uid: str, *, with_records: bool) -> list[str]:
        """Award ``uid`` every medal they have earned and do not hold; return the new ids."""
        cfg: MedalsConfig = ctx.config
        key = f"m:{uid}"
        st = ctx.state.get(key)
        held: dict[str, str] = dict(st.get("medals") or {}) if isinstance(st, dict) else {}
        new: list[Medal] = []
        for medal in cfg.medals:
            if medal.id in held:
                continue
            value = self._value(ctx, uid, medal, with_records=with_records)
            if value is not None and value >= medal.rule.at_least:
                new.append(medal)
                held[medal.id] = ctx.now.isoformat()
                ctx.record("medal", uid, medal=medal.id, source=medal.rule.source, key=medal.rule.key, value=value)
        if not new:
            return []
        ctx.state.put(key, {**(st if isinstance(st, dict) else {}), "medals": held})
        names = ("、" if ctx.locale == "zh-CN" else ", ").join(
            ctx.render("medal_name", medal=localized(md.name, ctx.locale)) for md in new
        )
        if cfg.announce == "group":
            ctx.send(ctx.render("awarded", name=ctx.name(uid), medals=names), mentions=[uid])
        elif cfg.announce == "direct":
            ctx.direct(uid, ctx.render("awarded_direct", medals=names))
        return [md.id for md in new]

    def _candidates(self, ctx: Context) -> list[str]:
        """Everyone a configured rule could be about: members the sources know."""
        cfg: MedalsConfig = ctx.config
        sources = {md.rule.source for md in cfg.medals}
        found: set[str] = set()
        for src in sources & set(STATE_SOURCES):
            for key, _ in ctx.state_of(src).scan("m:"):
                uid = key[2:]
                if uid and ":" not in uid:
                    found.add(uid)
        if "digest" in sources:
            rt = m.table(m.Record)
            for (uid,) in ctx.db.execute(
                select(rt.c.member)
                .where(rt.c.community_id == ctx.community.id, rt.c.kind == "digest_included", rt.c.member.is_not(None))
                .distinct()
            ):
                found.add(uid)
        if "points" in sources:
            at, mt = m.table(m.Account), m.table(m.Member)
            suffix = f":{cfg.currency}"
            for code, uid in ctx.db.execute(
                select(at.c.code, mt.c.user_id)
                .select_from(at.join(mt, mt.c.id == at.c.member_id))
                .where(at.c.community_id == ctx.community.id, mt.c.platform == ctx.group.platform, at.c.balance > 0)
            ):
                if code == f"member:{ctx.group.platform}:{uid}{suffix}":
                    found.add(uid)
        return sorted(found)

    def _check_all(self, ctx: Context) -> dict[str, list[str]]:
        awarded: dict[str, list[str]] = {}
        for uid in self._candidates(ctx):
            new = self._check(ctx, uid, with_records=True)
            if new:
                awarded[uid] = new
        return awarded

    # -------------------------------------------------------------- showing

    def _held(self, ctx: Context, uid: str) -> dict[str, dict[str, str]]:
        """The configured medals ``uid`` holds: id → {name, awarded}."""
        cfg: MedalsConfig = ctx.config
        st = ctx.state.get(f"m:{uid}")
        held = st.get("medals") or {} if isinstance(st, dict) else {}
        return {
            md.id: {"name": localized(md.name, ctx.locale), "awarded": held[md.id]}
            for md in cfg.medals
            if md.id in held
        }

    def _show(self, ctx: Context, uid: str, msg_id: str) -> None:
        held = self._held(ctx, uid)
        name = ctx.name(uid)
        if not held:
            ctx.send(ctx.render("none", name=name), mentions=[uid], reply_to=msg_id)
            return
        lines = "\n".join(
            ctx.render("mine_line", medal=v["name"], day=ctx.local_day(datetime.fromisoformat(v["awarded"])).isoformat())
            for v in sorted(held.values(), key=lambda v: v["awarded"])
        )
        ctx.send(ctx.render("mine", name=name, count=len(held), lines=lines), mentions=[uid], reply_to=msg_id)

    def _rows(self, ctx: Context) -> list[tuple[int, str]]:
        cfg: MedalsConfig = ctx.config
        known = {md.id for md in cfg.medals}
        rows = []
        for key, st in ctx.state.scan("m:"):
            if not isinstance(st, dict):
                continue
            n = sum(1 for mid in st.get("medals") or {} if mid in known)
            if n:
                rows.append((n, key[2:]))
        rows.sort(key=lambda r: (-r[0], r[1]))
        return rows[: cfg.board_size]

    def _board(self, ctx: Context, msg_id: str) -> None:
        rows = self._rows(ctx)
        if not rows:
            ctx.send(ctx.render("board_empty"), reply_to=msg_id)
            return
        lines = "\n".join(
            ctx.render("board_line", rank=i + 1, name=ctx.name(uid), count=n) for i, (n, uid) in enumerate(rows)
        )
        ctx.send(ctx.render("board", lines=lines), reply_to=msg_id)

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        st = ctx.state.get(f"m:{member}")
        return {} if st is None else {f"m:{member}": st}

    def erase_member(self, ctx: Context, member: str) -> None:
        ctx.state.delete(f"m:{member}")

