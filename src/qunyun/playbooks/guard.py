"""guard (防吵架): tell the admins on duty when two members start a heated argument.

Every message of a group is placed in a short sliding window (``window_minutes``).
A message is *addressed* to another member when it replies to one of their
recent messages, @-mentions exactly one member, or — failing both — simply
follows a message of someone else (consecutive alternation). When, inside
the window, the messages two members addressed to each other alternate at
least ``min_exchanges`` times and carry at least ``min_hostile`` hits of the
hostile-word list, one alert goes to the admins (``notify_admins``): it names
both members and quotes a short, cleaned sample of the harshest message. The
same pair is not reported again before ``cooldown_minutes`` have passed.

The guard never acts on the members: no removal, no mute, no deletion, no
message in the group. It only tells people who can calm things down. The
alert names the admins on duty when the ``duty`` playbook keeps a current
roster (its state key ``current``: a list of user ids); otherwise it goes to
all admins without names.

State (community-scoped, one key per group):

- ``g:<platform>:<group>`` → ``{"recent": [[epoch, uid, msg_id, partner|null,
  hits, sample|null, answered msg_id|null], ...], "cool": {"<uid>\\x1f<uid>": until iso}}``; only the
  messages of the window are kept (at most ``MAX_RECENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.core.text import display_name
from qunyun.engine import Context, Playbook, PlaybookConfig
from qunyun.playbooks.faq import ConfigCache, KeywordIndex

#: The most messages a group's window keeps, whatever the traffic.
MAX_RECENT = 60

DEFAULT_HOSTILE_WORDS = [
    # zh: insults and fighting words
    "傻逼", "傻B", "煞笔", "sb", "脑残", "白痴", "弱智", "滚蛋", "滚开", "闭嘴", "有病", "神经病",
    "废物", "去死", "蠢货", "放屁", "你妈", "找打", "不要脸", "垃圾人",
    # en
    "idiot", "stupid", "moron", "shut up", "screw you", "loser", "pathetic", "dumb",
    "get lost", "trash", "liar", "hate you", "f off", "fuck", "bullshit",
]


class GuardConfig(PlaybookConfig):
    window_minutes: int = Field(
        default=10, ge=1, le=120, description="The sliding window the exchange must fit in, in minutes."
    )
    min_exchanges: int = Field(
        default=6,
        ge=2,
        le=MAX_RECENT,
        description="At least this many messages alternating between the same two members in the window.",
    )
    min_hostile: int = Field(
        default=2, ge=1, le=100, description="At least this many hostile-word hits in their messages."
    )
    hostile_words: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HOSTILE_WORDS),
        description="Hostile words and phrases (zh and en by default; matched ignoring case and width).",
    )
    extra_words: list[str] = Field(
        default_factory=list, description="More hostile words, added to `hostile_words`."
    )
    cooldown_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="No second alert about the same pair within this time."
    )
    sample_chars: int = Field(
        default=80, ge=10, le=500, description="The quoted sample is cut to this many characters."
    )
    exempt_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin"],
        description="Messages from these roles are never counted (admins stepping in are not a fight).",
    )

    @field_validator("hostile_words", "extra_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for i, word in enumerate(value):
            w = word.strip()
            if not w:
                raise ValueError(f"word {i + 1} is empty; write a word or phrase, or delete it")
            if w not in out:
                out.append(w)
        return out

    @field_validator("exempt_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from qunyun.config.model import ROLES

        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value


@dataclass(frozen=True, slots=True)
class _Compiled:
    words: KeywordIndex[int]
    exempt: frozenset[str]


def _compile(cfg: GuardConfig) -> _Compiled:
    return _Compiled(
        KeywordIndex([(w, 0) for w in (*cfg.hostile_words, *cfg.extra_words)]),
        frozenset(cfg.exempt_roles),
    )


def quote(text: str, limit: int) -> str:
    """A member's text made safe to quote: controls and bidi marks gone, one line, bounded."""
    return display_name(" ".join(text[: limit * 4].split()), "—", limit=limit)


#: Joins the two ids of a pair; ids never hold control characters.
_SEP = "\x1f"


def pair_key(a: str, b: str) -> str:
    return _SEP.join(sorted((a, b)))


class Guard(Playbook):
    id = "guard"
    config_model = GuardConfig
    handles = frozenset({"message"})
    emits = frozenset({"notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "吵架预警：两位成员快速来回争执且言辞激烈时，提醒值班管理员（只提醒，不处罚）。",
        "en": "Argument alert: tells the admins on duty when two members trade hostile words fast (alerts only).",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "alert": {
            "zh-CN": (
                "⚠️ 「{group}」里 {a} 和 {b} 正在激烈争执：{minutes} 分钟内来回 {messages} 条，"
                "含 {hits} 处过激用语。{duty}\n摘录：“{sample}”\n请及时出面缓和一下。"
            ),
            "en": (
                "⚠️ {a} and {b} are arguing in {group}: {messages} messages back and forth within "
                "{minutes} minutes, {hits} hostile words.{duty}\nSample: \"{sample}\"\n"
                "Someone may want to step in and calm things down."
            ),
        },
        "duty": {"zh-CN": "值班管理员：{names}。", "en": " On duty: {names}."},
    }

    def __init__(self) -> None:
        self._compiled: ConfigCache[GuardConfig, _Compiled] = ConfigCache(_compile)

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: GuardConfig = ctx.config
        comp = self._compiled.get(cfg)
        uid: str = event.actor.id
        if event.content_type == "system" or ctx.role(uid) in comp.exempt:
            return
        gkey = f"g:{ctx.group.platform}:{ctx.group.key}"
        st = ctx.state.get(gkey) or {}
        now = event.ts.timestamp()
        since = now - cfg.window_minutes * 60
        recent: list[list[Any]] = [list(r) for r in st.get("recent", []) if r[0] > since]
        partner, answered = self._partner(event, uid, recent)
        text: str = event.text or ""
        hits = sum(1 for _ in comp.words.find(comp.words.normalize(text[:4000]), limit=20)) if text else 0
        sample = quote(text, cfg.sample_chars) if hits else None
        answers = recent[answered][2] if answered is not None else None
        recent.append([round(now, 3), uid, event.msg_id, partner, hits, sample, answers])
        recent = recent[-MAX_RECENT:]
        cool = {k: v for k, v in (st.get("cool") or {}).items() if datetime.fromisoformat(v) > event.ts}
        alerted = False
        if partner is not None and pair_key(uid, partner) not in cool:
            alerted = self._check(ctx, cfg, recent, uid, partner, cool, event.ts)
        new = {"recent": recent, "cool": cool} if cool else {"recent": recent}
        if alerted:
            # the exchange that was reported does not count again after the cool-down
            new["recent"] = [r for r in recent if {r[1], r[3]} != {uid, partner}]
        ctx.state.put(gkey, new)

    @staticmethod
    def _partner(event: Any, uid: str, recent: list[list[Any]]) -> tuple[str | None, int | None]:
        """Whom this message is addressed to (reply, single mention, or the previous
        speaker), and the index in ``recent`` of the message it answers, if known."""
        if event.reply_to:
            for i in range(len(recent) - 1, -1, -1):
                if recent[i][2] == event.reply_to:
                    return (recent[i][1], i) if recent[i][1] != uid else (None, None)
        others = {m for m in event.mentions if m != uid}
        if len(others) == 1:
            [target] = others
            for i in range(len(recent) - 1, -1, -1):
                if recent[i][1] == target:
                    return target, i
            return target, None
        if not event.mentions and not event.reply_to and recent and recent[-1][1] != uid:
            return str(recent[-1][1]), len(recent) - 1
        return None, None

    def _check(
        self,
        ctx: Context,
        cfg: GuardConfig,
        recent: list[list[Any]],
        a: str,
        b: str,
        cool: dict[str, str],
        ts: datetime,
    ) -> bool:
        pair = {a, b}
        direct = [r for r in recent if r[3] is not None and {r[1], r[3]} == pair]
        # the message that opened it was addressed to nobody, but one of them answered it
        opened = {r[6] for r in direct if len(r) > 6 and r[6]}
        between = [r for r in recent if r in direct or (r[2] in opened and r[1] in pair)]
        exchanges = 0
        last: str | None = None
        for r in between:
            if r[1] != last:
                exchanges += 1
                last = r[1]
        hits = sum(int(r[4]) for r in between)
        if exchanges < cfg.min_exchanges or hits < cfg.min_hostile:
            return False
        first = between[0][1]  # who started it is named first
        harshest = max((r for r in between if r[5]), key=lambda r: r[4], default=None)
        duty = self._duty(ctx)
        names = ("、" if ctx.locale == "zh-CN" else ", ").join(f"@{ctx.name(u)}" for u in duty)
        ctx.notify_admins(
            ctx.render(
                "alert",
                a=ctx.name(first),
                b=ctx.name(b if first == a else a),
                group=display_name(ctx.group.name, ctx.group.key, limit=64),
                minutes=cfg.window_minutes,
                messages=len(between),
                hits=hits,
                sample=harshest[5] if harshest else "—",
                duty=ctx.render("duty", names=names) if duty else "",
            )
        )
        for member in sorted(pair):
            ctx.record("alert", member=member, messages=len(between), hits=hits, exchanges=exchanges)
        cool[pair_key(a, b)] = (ts + timedelta(minutes=cfg.cooldown_minutes)).isoformat()
        return True

    @staticmethod
    def _duty(ctx: Context) -> list[str]:
        """The admins on duty, from the ``duty`` playbook's state, if it keeps one."""
        current = ctx.state_of("duty").get("current")
        if isinstance(current, str):
            current = [current]
        if not isinstance(current, list):
            return []
        return [u for u in current if isinstance(u, str) and u][:10]

    # --------------------------------------------------------------- privacy

    def export_member(self, ctx: Context, member: str) -> dict[str, Any]:
        """The member's own messages in the window (time, msg_id, hits, sample) and cool-downs."""
        out: dict[str, Any] = {}
        for key, st in ctx.state.scan("g:"):
            mine = [[r[0], r[2], r[4], r[5]] for r in st.get("recent", []) if r[1] == member]
            until = [v for p, v in st.get("cool", {}).items() if member in p.split(_SEP)]
            if mine or until:
                out[key] = {"messages": mine, "cooldown_until": until}
        return out

    def erase_member(self, ctx: Context, member: str) -> None:
        for key, st in list(ctx.state.scan("g:")):
            old = st.get("recent", [])
            recent = [
                [*r[:3], None if r[3] == member else r[3], *r[4:]] for r in old if r[1] != member
            ]
            cool = {p: v for p, v in st.get("cool", {}).items() if member not in p.split(_SEP)}
            if recent != old or len(cool) != len(st.get("cool", {})):
                ctx.state.put(key, {"recent": recent, "cool": cool} if cool else {"recent": recent})
