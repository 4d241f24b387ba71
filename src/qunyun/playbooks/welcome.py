"""welcome (欢迎仪式): newcomers are greeted together, in small batches.

Joins are collected in a per-group pending list. When ``batch_size`` people
are waiting, or ``batch_minutes`` after the earliest of them joined (whichever
comes first), one message goes out that @-mentions each of them — with their
conferred title in front of the name when they have one ("资深运营 · 小王") —
and asks them to introduce themselves in the community's format. Every
``charter_every`` newcomers, the group charter is posted again right after
the welcome, so the people who just arrived see it.

Each member is welcomed at most once per group: leaving and coming back does
not earn a second welcome. Someone who leaves before their batch goes out is
taken off the list and not mentioned.

State (community-scoped, so every key carries the group or the member):

- ``g:<platform>:<group>`` → ``{"pending": [[uid, joined_at_iso], ...],
  "joins": n, "charter_due": bool}``
- ``m:<uid>`` → ``{"welcomed": {"g:<platform>:<group>": welcomed_at_iso}}``
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, cast

from pydantic import Field, field_validator

from qunyun.engine import Context, JobCall, Playbook, PlaybookConfig

Locale = Literal["zh-CN", "en"]
Role = Literal["owner", "admin", "assistant", "guest", "member"]
#: A text the operator writes once, or once per locale.
LocalText = str | dict[Locale, str]

_JOB = "batch"


def localized(value: LocalText, locale: str) -> str:
    """``value`` in ``locale``: a plain string, or the matching entry of a per-locale dict."""
    if isinstance(value, str):
        return value
    texts = cast(dict[str, str], value)
    return texts.get(locale) or texts.get("en") or next(iter(texts.values()))


def _check_text(value: LocalText | None) -> LocalText | None:
    if value is None:
        return None
    texts = [value] if isinstance(value, str) else list(value.values())
    if not texts or any(not t.strip() for t in texts):
        raise ValueError(
            "must be a non-empty text (or one per locale: {zh-CN: ..., en: ...}); omit it to use the default"
        )
    return value


class WelcomeConfig(PlaybookConfig):
    batch_size: int = Field(
        default=3, ge=1, le=50, description="Welcome as soon as this many newcomers are waiting."
    )
    batch_minutes: int = Field(
        default=10,
        ge=1,
        le=24 * 60,
        description="Or this many minutes after the earliest waiting newcomer joined, if sooner.",
    )
    intro_template: LocalText | None = Field(
        default=None,
        description=(
            "The self-introduction format newcomers are asked to follow, e.g. "
            "'城市 / 职业 / 擅长 / 想收获'. Unset: the `welcome.intro` template."
        ),
    )
    greet_prompt: bool = Field(
        default=True, description="Also invite the members already in the group to say hello."
    )
    charter_every: int = Field(
        default=5, ge=0, description="Post the charter again after every K newcomers (0 = never)."
    )
    charter: LocalText | None = Field(
        default=None,
        description=(
            "The group charter: purpose, activities, prohibitions, how to mute the group. "
            "Unset: the `welcome.charter_text` template."
        ),
    )
    skip_roles: list[Role] = Field(
        default_factory=list,
        description="Members with these roles (e.g. admin, assistant) are never welcomed.",
    )

    @field_validator("intro_template", "charter")
    @classmethod
    def _non_empty(cls, value: LocalText | None) -> LocalText | None:
        return _check_text(value)


class Welcome(Playbook):
    id = "welcome"
    config_model = WelcomeConfig
    handles = frozenset({"member_joined", "member_left"})
    emits = frozenset({"send"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "批量欢迎新人：@ 每位新朋友并邀请自我介绍，定期重发群公约。",
        "en": "Welcomes newcomers in batches, asks for an introduction, reposts the charter now and then.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "batch": {
            "zh-CN": "🎉 欢迎新朋友 {names} 加入「{community}」！\n照这个格式介绍一下自己吧：{intro}",
            "en": "🎉 Welcome to {community}, {names}!\nTell us a bit about yourself: {intro}",
        },
        "greet": {
            "zh-CN": "👋 老朋友们也来打个招呼，让新伙伴感受一下热情～",
            "en": "👋 Everyone else: come and say hello!",
        },
        "intro": {
            "zh-CN": "城市 / 职业 / 擅长 / 想收获",
            "en": "city / work / what you're good at / what you hope to find here",
        },
        "charter": {
            "zh-CN": "📌 群公约，新老朋友一起温习一下：\n{charter}",
            "en": "📌 A quick look at our charter, for old and new members alike:\n{charter}",
        },
        "charter_text": {
            "zh-CN": (
                "【宗旨】彼此学习，一起成长。\n"
                "【活动】每日打卡，每周分享与答疑。\n"
                "【禁止】广告、刷屏、人身攻击。\n"
                "【免打扰】觉得消息太多？在群设置里打开「消息免打扰」就好。"
            ),
            "en": (
                "Purpose: learn from each other and grow together.\n"
                "Activities: daily check-ins, a weekly share and a Q&A hour.\n"
                "Not allowed: ads, flooding, personal attacks.\n"
                'Too many messages? Turn on "Mute notifications" in the group settings.'
            ),
        },
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        if event.type == "member_joined":
            self._joined(ctx, event.actor.id, event.ts)
        else:
            self._left(ctx, event.actor.id)

    def _joined(self, ctx: Context, uid: str, when: datetime) -> None:
        cfg: WelcomeConfig = ctx.config
        if cfg.skip_roles and ctx.role(uid) in cfg.skip_roles:
            return
        gkey = _group_key(ctx)
        mine = ctx.state.get(f"m:{uid}")
        if mine and gkey in mine.get("welcomed", {}):
            return  # welcomed here before: a rejoin is not a first arrival
        st = _group_state(ctx, gkey)
        pending: list[list[str]] = st["pending"]
        if any(entry[0] == uid for entry in pending):
            return  # a repeated join while already waiting
        pending.append([uid, when.isoformat()])
        st["joins"] += 1
        if cfg.charter_every and st["joins"] % cfg.charter_every == 0:
            st["charter_due"] = True
        if len(pending) >= cfg.batch_size:
            ctx.cancel(_JOB)
            self._welcome(ctx, gkey, st, "count")
            return
        if len(pending) == 1:
            ctx.schedule(_JOB, at=when + timedelta(minutes=cfg.batch_minutes), key=_JOB)
        ctx.state.put(gkey, st)

    def _left(self, ctx: Context, uid: str) -> None:
        gkey = _group_key(ctx)
        raw = ctx.state.get(gkey)
        if not raw or not any(entry[0] == uid for entry in raw.get("pending", ())):
            return
        st = _group_state(ctx, gkey)
        was_first = st["pending"][0][0] == uid
        st["pending"] = [entry for entry in st["pending"] if entry[0] != uid]
        ctx.state.put(gkey, st)
        if not st["pending"]:
            ctx.cancel(_JOB)
        elif was_first:
            # The timer runs from the earliest newcomer still waiting.
            cfg: WelcomeConfig = ctx.config
            first = datetime.fromisoformat(st["pending"][0][1])
            ctx.schedule(_JOB, at=first + timedelta(minutes=cfg.batch_minutes), key=_JOB)

    # ------------------------------------------------------------------ jobs

    def on_job(self, ctx: Context, job: JobCall) -> None:
        if job.name != _JOB:
            return
        gkey = _group_key(ctx)
        st = _group_state(ctx, gkey)
        if st["pending"]:
            self._welcome(ctx, gkey, st, "time")

    # -------------------------------------------------------------- the ritual

    def _welcome(self, ctx: Context, gkey: str, st: dict[str, Any], trigger: str) -> None:
        cfg: WelcomeConfig = ctx.config
        members = [entry[0] for entry in st["pending"]]
        sep = "、" if ctx.locale == "zh-CN" else ", "
        names = sep.join(f"@{_decorated(ctx, uid)}" for uid in members)
        intro = (
            localized(cfg.intro_template, ctx.locale) if cfg.intro_template else ctx.render("intro")
        )
        text = ctx.render(
            "batch", names=names, community=ctx.community.name, intro=intro, count=len(members)
        )
        if cfg.greet_prompt:
            text += "\n" + ctx.render("greet")
        ctx.send(text, mentions=members)
        if st["charter_due"]:
            body = localized(cfg.charter, ctx.locale) if cfg.charter else ctx.render("charter_text")
            ctx.send(ctx.render("charter", charter=body, every=cfg.charter_every))
            st["charter_due"] = False
        stamp = ctx.now.isoformat()
        for uid in members:
            key = f"m:{uid}"
            mine = dict(ctx.state.get(key) or {})
            welcomed = dict(mine.get("welcomed", {}))
            welcomed[gkey] = stamp
            mine["welcomed"] = welcomed
            ctx.state.put(key, mine)
            ctx.record("welcomed", member=uid, batch=len(members), trigger=trigger)
        st["pending"] = []
        ctx.state.put(gkey, st)

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mine = ctx.state.get(f"m:{member}")
        if mine is not None:
            out[f"m:{member}"] = mine
        for key, st in ctx.state.scan("g:"):
            for uid, joined in st.get("pending", ()):
                if uid == member:
                    out[f"{key}:pending"] = {"joined_at": joined}
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        # Exact keys, not a prefix scan: "m:u1" is a prefix of "m:u10".
        ctx.state.delete(f"m:{member}")
        for key, st in list(ctx.state.scan("g:")):
            pending = st.get("pending", [])
            if any(entry[0] == member for entry in pending):
                kept = [entry for entry in pending if entry[0] != member]
                ctx.state.put(key, {**st, "pending": kept})
                # The batch job stays: with nobody waiting it does nothing.


def _group_key(ctx: Context) -> str:
    return f"g:{ctx.group.platform}:{ctx.group.key}"


def _group_state(ctx: Context, gkey: str) -> dict[str, Any]:
    """A private copy of the group's state, with every field present."""
    raw = ctx.state.get(gkey) or {}
    return {
        "pending": [list(entry) for entry in raw.get("pending", ())],
        "joins": int(raw.get("joins", 0)),
        "charter_due": bool(raw.get("charter_due", False)),
    }


def _decorated(ctx: Context, uid: str) -> str:
    """ "资深运营 · 小王" when the member holds a title, else just the name."""
    name = ctx.name(uid)
    title = ctx.title(uid)
    return f"{title} · {name}" if title else name
