"""moderation (秩序): keep ads, contact details and floods out of the group.

Each message from a member who is not exempt is checked against the rules
the operator switched on — banned words, ads, phone numbers and WeChat IDs,
links, QR-code images, oversized messages, flooding — in that order. The
first rule that matches decides: the message is deleted, the sender is
warned in the group with the rule named, and a strike is recorded. A member
who collects ``max_strikes`` strikes within ``strike_window_days`` is
removed and the admins are told. A message that broke a rule is then hidden
from the playbooks after this one (check-in, FAQ...), so spam never earns a
check-in or an answer. With ``ban_on_removal``, a removed member who joins
any group of the community again is removed at once.

Checks are compiled once per configuration: one Aho-Corasick automaton for
all ad and banned keywords, precompiled regular expressions for the rest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.core.events import CONTENT_TYPES
from qunyun.core.text import display_name
from qunyun.engine import Context, Playbook, PlaybookConfig
from qunyun.playbooks.faq import ConfigCache, KeywordIndex

#: The rules in the order they are checked; the first that matches counts.
RULES = ("blacklist", "ads", "contact", "links", "qr", "oversize", "flood")

DEFAULT_AD_WORDS = [
    "加微信",
    "加我微信",
    "代理",
    "兼职",
    "优惠券",
    "刷单",
    "日赚",
    "免费领取",
    "扫码领",
    "DM me",
    "promo code",
    "discount code",
    "work from home",
    "earn money fast",
]


# --------------------------------------------------------------------------
# Configuration


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Switch this rule on or off.")


def _keyword_list(value: list[str]) -> list[str]:
    out: list[str] = []
    for i, keyword in enumerate(value):
        k = keyword.strip()
        if not k:
            raise ValueError(f"keyword {i + 1} is empty; write a word or phrase, or delete it")
        if k not in out:
            out.append(k)
    return out


class LinksRule(_Rule):
    allow_domains: list[str] = Field(
        default_factory=list,
        description="Links to these domains (and their subdomains) are fine, e.g. example.com.",
    )

    @field_validator("allow_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            domain = raw.strip().lower()
            if "://" in domain:
                domain = urlsplit(domain).hostname or ""
            domain = domain.removeprefix("*.").strip(".")
            if not domain or any(c.isspace() or c in "/@:" for c in domain):
                raise ValueError(f"{raw!r} is not a domain; write it like example.com")
            out.append(domain)
        return out


class KeywordRule(_Rule):
    keywords: list[str] = Field(
        default_factory=list, description="Words or phrases that break this rule."
    )

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        return _keyword_list(value)


class AdsRule(KeywordRule):
    keywords: list[str] = Field(
        default_factory=lambda: list(DEFAULT_AD_WORDS), description="Words typical of advertising."
    )


class ContactRule(_Rule):
    phone: bool = Field(default=True, description="Mainland mobile numbers (1[3-9] and 9 digits).")
    wechat: bool = Field(
        default=True, description="WeChat IDs offered with vx / wx / 微信 / V信 and the like."
    )
    qq: bool = Field(default=True, description="QQ numbers offered with 'QQ'.")
    patterns: list[str] = Field(
        default_factory=list, description="More regular expressions (matched in lower case)."
    )

    @field_validator("patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class QrRule(_Rule):
    pass


class FloodRule(_Rule):
    max_messages: int = Field(
        default=6,
        ge=1,
        le=1000,
        description="A member may send this many messages within per_seconds; one more is flooding.",
    )
    per_seconds: int = Field(
        default=10, ge=1, le=86_400, description="The window of max_messages, in seconds."
    )
    max_repeats: int = Field(
        default=3,
        ge=2,
        le=100,
        description="The same text this many times within repeat_window_seconds is flooding.",
    )
    repeat_window_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The window of max_repeats, in seconds."
    )


class OversizeRule(_Rule):
    max_text_chars: int = Field(
        default=2000, ge=1, description="A text longer than this many characters is too long."
    )
    content_types: list[str] = Field(
        default_factory=list,
        description="Message kinds not wanted in this group, e.g. [voice, video, sticker].",
    )

    @field_validator("content_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for ct in value:
            if ct not in CONTENT_TYPES:
                raise ValueError(f"unknown content type {ct!r}; known: {', '.join(CONTENT_TYPES)}")
        return value


class ModerationConfig(PlaybookConfig):
    links: LinksRule = Field(
        default_factory=LinksRule,
        description="Links in the text, and link cards.",
    )
    ads: AdsRule = Field(default_factory=AdsRule, description="Advertising words.")
    blacklist: KeywordRule = Field(
        default_factory=KeywordRule,
        description="The community's own banned words (none by default).",
    )
    contact: ContactRule = Field(
        default_factory=ContactRule,
        description="Phone numbers, WeChat IDs and QQ numbers offered in the group.",
    )
    qr: QrRule = Field(
        default_factory=QrRule,
        description="Images the adapter marked as QR codes (`qr: true` on the event).",
    )
    flood: FloodRule = Field(
        default_factory=FloodRule,
        description="Too many messages too fast, or the same text again and again.",
    )
    oversize: OversizeRule = Field(
        default_factory=OversizeRule,
        description="Walls of text, and message kinds the group does not want.",
    )
    warn: bool = Field(default=True, description="Warn the sender in the group on each hit.")
    max_strikes: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Remove a member at this many strikes (0: never remove).",
    )
    strike_window_days: int = Field(
        default=30, ge=1, le=3650, description="Strikes older than this are forgotten."
    )
    announce_removal: bool = Field(
        default=True, description="Say in the group that the member was removed."
    )
    ban_on_removal: bool = Field(
        default=False,
        description="A removed member who joins any group of the community is removed again.",
    )
    exempt_roles: list[str] = Field(
        default_factory=lambda: ["owner", "admin", "assistant", "guest"],
        description="Roles the rules never apply to.",
    )
    allow_users: list[str] = Field(
        default_factory=list, description="User ids the rules never apply to."
    )

    @field_validator(*RULES, mode="before")
    @classmethod
    def _rule_switch(cls, value: Any) -> Any:
        """Let ``links: false`` stand for ``links: {enabled: false}``."""
        if isinstance(value, bool):
            return {"enabled": value}
        return value

    @field_validator("exempt_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from qunyun.config.model import ROLES

        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return value


# --------------------------------------------------------------------------
# Detectors, compiled once per configuration

#: Top-level domains that make a bare "name.tld" a link. Words that are also
#: common file extensions (.py, .md, .js) are left out on purpose.
_TLDS = (
    "com|cn|net|org|edu|gov|io|co|cc|me|tv|ai|gg|ly|gl|xyz|top|vip|info|biz|site|online|shop|store|"
    "app|dev|link|club|fun|live|pro|tech|wang|ink|work|life|icu|cyou|buzz|asia|mobi|name|ru|de|jp|"
    "hk|tw|mo|uk|fr|kr|sg|us|ca|au"
)
# Possessive quantifiers and an ASCII look-behind keep these linear on a 1 MB text.
_URL = re.compile(
    r"(?:https?|ftp)://[^\s<>\"'，。、！？）】」]++"
    r"|(?<![a-z0-9.@_-])www\.[^\s<>\"'，。、！？）】」]++"
    rf"|(?<![a-z0-9.@_/-])(?>[a-z0-9-]++\.)++(?:{_TLDS})(?![a-z0-9-])(?:[/:?#][^\s<>\"'，。、！？）】」]*+)?"
)
_PHONE = re.compile(r"(?<![0-9])(?:\+?86[-\s]?)?1[3-9][0-9](?:[-\s]?[0-9]{4}){2}(?![0-9])")
_WECHAT_ID = r"[a-z][-_a-z0-9]{5,19}(?![-_a-z0-9])"
_WECHAT = re.compile(
    r"(?:(?<![a-z0-9])(?:vx|wx|wechat|weixin|v信)|微信|薇信|威信|徽信|微\s?信)"
    r"\s{0,3}(?:号|id)?\s{0,3}"
    # after a colon any ID counts; without one it must hold a digit, '_' or '-',
    # so "wechat payment" is not mistaken for an ID
    rf"(?:[:：]\s{{0,3}}{_WECHAT_ID}|(?=[a-z]*[0-9_-]){_WECHAT_ID})"
)
_QQ = re.compile(r"(?<![a-z0-9])qq\s{0,3}(?:号)?\s{0,3}[:：]?\s{0,3}[1-9][0-9]{4,11}(?![0-9])")

#: Characters that must never reach the chat from a member's text.
_UNSAFE = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]"
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    keywords: KeywordIndex[str]
    has_blacklist: bool
    contact: tuple[re.Pattern[str], ...]
    allow_domains: tuple[str, ...]
    exempt_roles: frozenset[str]
    allow_users: frozenset[str]
    blocked_types: frozenset[str]
    needs_text: bool


def _compile(cfg: ModerationConfig) -> _Compiled:
    words: list[tuple[str, str]] = []
    if cfg.blacklist.enabled:
        words += [(k, "blacklist") for k in cfg.blacklist.keywords]
    if cfg.ads.enabled:
        words += [(k, "ads") for k in cfg.ads.keywords]
    contact: list[re.Pattern[str]] = []
    if cfg.contact.enabled:
        if cfg.contact.phone:
            contact.append(_PHONE)
        if cfg.contact.wechat:
            contact.append(_WECHAT)
        if cfg.contact.qq:
            contact.append(_QQ)
        contact += [re.compile(p) for p in cfg.contact.patterns]
    return _Compiled(
        keywords=KeywordIndex(words),
        has_blacklist=any(rule == "blacklist" for _, rule in words),
        contact=tuple(contact),
        allow_domains=tuple(cfg.links.allow_domains),
        exempt_roles=frozenset(cfg.exempt_roles),
        allow_users=frozenset(cfg.allow_users),
        blocked_types=frozenset(cfg.oversize.content_types)
        if cfg.oversize.enabled
        else frozenset(),
        needs_text=bool(words or contact or cfg.links.enabled or cfg.flood.enabled),
    )


def _host_allowed(host: str, allow: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in allow)


def _link_host(url: str) -> str | None:
    if "://" not in url:
        url = "http://" + url
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _links(normalized: str, allow: tuple[str, ...]) -> tuple[bool, bool]:
    """(any link found, any link outside ``allow``) in a normalised text."""
    if "." not in normalized and "://" not in normalized:
        return False, False
    seen = False
    for match in _URL.finditer(normalized):
        seen = True
        host = _link_host(match.group(0))
        if not host or not _host_allowed(host, allow):
            return True, True
    return seen, False


def _clean(text: str, limit: int) -> str:
    """A member's text made safe to quote: no controls or bidi marks, bounded."""
    flat = " ".join(_UNSAFE.sub(" ", text[: limit * 4]).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _digest(normalized: str) -> str:
    return hashlib.blake2b(
        normalized.strip().encode("utf-8", "surrogatepass"), digest_size=8
    ).hexdigest()


# --------------------------------------------------------------------------
# The playbook


class Moderation(Playbook):
    id = "moderation"
    config_model = ModerationConfig
    handles = frozenset({"message", "member_joined"})
    emits = frozenset({"send", "delete", "remove", "notify_admins"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "群秩序：拦截广告、链接、联系方式、二维码和刷屏，警告并累计违规，超限移出。",
        "en": "Keeps order: catches ads, links, contact details, QR codes and flooding; warns, counts strikes, removes repeat offenders.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "rule_blacklist": {"zh-CN": "违禁词", "en": "a banned word"},
        "rule_ads": {"zh-CN": "发广告", "en": "advertising"},
        "rule_contact": {"zh-CN": "留联系方式", "en": "posting contact details"},
        "rule_links": {"zh-CN": "发外部链接", "en": "posting links"},
        "rule_qr": {"zh-CN": "发二维码", "en": "posting QR codes"},
        "rule_oversize": {"zh-CN": "超长或不合适的消息", "en": "oversized messages"},
        "rule_flood": {"zh-CN": "刷屏", "en": "flooding the chat"},
        "warn_blacklist": {
            "zh-CN": "{name}，这条消息含有本群禁用的词，已被撤下。",
            "en": "{name}, that message used a word this group does not allow, so it was taken down.",
        },
        "warn_ads": {
            "zh-CN": "{name}，本群不接受广告，消息已撤下。想推荐好东西的话，可以先私信管理员审核。",
            "en": "{name}, this group takes no advertising, so the message was taken down. "
            "Have something worth sharing? Send it to an admin for review first.",
        },
        "warn_contact": {
            "zh-CN": "{name}，请不要在群里公开手机号、微信号等联系方式，想深聊可以私下加好友。",
            "en": "{name}, please keep phone numbers and chat IDs out of the group; connect privately instead.",
        },
        "warn_links": {
            "zh-CN": "{name}，群里暂不开放外部链接，这条消息已被撤下。",
            "en": "{name}, outside links are not open in this group, so that message was taken down.",
        },
        "warn_qr": {
            "zh-CN": "{name}，群里不能发二维码图片，已帮你撤下。",
            "en": "{name}, QR-code images are not allowed here; it has been taken down.",
        },
        "warn_oversize": {
            "zh-CN": "{name}，这条消息太长或不适合在群里发，已撤下；长内容可以整理成文档再分享。",
            "en": "{name}, that message was too long or not the kind this group takes, so it was taken down.",
        },
        "warn_flood": {
            "zh-CN": "{name}，慢一点哦：请不要刷屏，也不要重复发同样的内容。",
            "en": "{name}, easy there: please do not flood the chat or send the same thing again and again.",
        },
        "strikes": {
            "zh-CN": "（第 {strikes} 次提醒，{days} 天内满 {max_strikes} 次将移出本群）",
            "en": " (warning {strikes} of {max_strikes} within {days} days; at {max_strikes} you leave the group)",
        },
        "removed": {
            "zh-CN": "{name} 多次违反群规（{rule}），已移出本群。",
            "en": "{name} has been removed after breaking the group rules again ({rule}).",
        },
        "remove_reason": {
            "zh-CN": "{rule}：{days} 天内违规 {strikes} 次",
            "en": "{rule}: {strikes} strikes within {days} days",
        },
        "admin_removed": {
            "zh-CN": "🚫 已将 {name}（{member}）移出「{group}」：{days} 天内违规 {strikes} 次，最后一次是{rule}。内容摘录：{excerpt}",
            "en": "🚫 Removed {name} ({member}) from {group}: {strikes} strikes within {days} days, "
            "the last for {rule}. Excerpt: {excerpt}",
        },
        "ban_reason": {
            "zh-CN": "此前因违规被移出，不能再加入本社群的群",
            "en": "removed earlier for breaking the rules; barred from the community's groups",
        },
        "admin_banned": {
            "zh-CN": "🚫 {name}（{member}）此前被移出并禁止再加入，刚刚进入「{group}」，已再次移出。",
            "en": "🚫 {name} ({member}) was barred after a removal and just joined {group}; removed again.",
        },
    }

    def __init__(self) -> None:
        self._compiled: ConfigCache[ModerationConfig, _Compiled] = ConfigCache(_compile)

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: ModerationConfig = ctx.config
        comp = self._compiled.get(cfg)
        uid: str = event.actor.id
        if uid in comp.allow_users or ctx.role(uid) in comp.exempt_roles:
            return
        if event.type == "member_joined":
            self._on_join(ctx, cfg, uid)
            return
        if event.content_type == "system":
            return
        text: str = event.text
        normalized = comp.keywords.normalize(text) if text and comp.needs_text else ""
        rule = self._content_rule(cfg, comp, event, text, normalized)
        state_key = f"m:{uid}"
        st: dict[str, Any] | None = None
        detail = ""
        if rule is None and cfg.flood.enabled:
            st = dict(ctx.state.get(state_key) or {})
            detail = self._flood(cfg.flood, ctx, st, event.ts, normalized)
            if detail:
                rule = "flood"
            else:
                ctx.state.put(state_key, st)
        if rule is None:
            return
        if st is None:
            st = dict(ctx.state.get(state_key) or {})
        self._hit(ctx, cfg, event, st, rule, detail)

    @staticmethod
    def _content_rule(
        cfg: ModerationConfig, comp: _Compiled, event: Any, text: str, normalized: str
    ) -> str | None:
        """The first content rule the message breaks, if any."""
        if normalized:
            best: str | None = None
            for hit in comp.keywords.find(normalized):
                if "blacklist" in hit.payloads:
                    return "blacklist"
                best = "ads"
                if not comp.has_blacklist:
                    break
            if best is not None:
                return best
            for pattern in comp.contact:
                if pattern.search(normalized):
                    return "contact"
        if cfg.links.enabled:
            seen, forbidden = _links(normalized, comp.allow_domains)
            if event.content_type == "link":
                # a link card: the adapter may pass its address as `url`
                url = (event.model_extra or {}).get("url")
                if isinstance(url, str) and url.strip():
                    seen_u, forbidden_u = _links(url.strip().lower(), comp.allow_domains)
                    seen, forbidden = seen or seen_u, forbidden or forbidden_u or not seen_u
                if forbidden or not seen:
                    return "links"  # a card whose address cannot be checked counts
            elif forbidden:
                return "links"
        if (
            cfg.qr.enabled
            and event.content_type == "image"
            and (event.model_extra or {}).get("qr") is True
        ):
            return "qr"
        if cfg.oversize.enabled and (
            len(text) > cfg.oversize.max_text_chars or event.content_type in comp.blocked_types
        ):
            return "oversize"
        return None

    @staticmethod
    def _flood(
        rule: FloodRule, ctx: Context, st: dict[str, Any], ts: datetime, normalized: str
    ) -> str:
        """Update the member's flood window in ``st``; "rate" or "repeat" on a hit, else ""."""
        now = round(ts.timestamp(), 3)
        gkey = f"{ctx.group.platform}/{ctx.group.key}"
        windows: dict[str, Any] = dict(st.get("flood") or {})
        mine: dict[str, Any] = dict(windows.get(gkey) or {})
        # keep only what is still inside its window: the state stays small
        since = now - rule.per_seconds
        times = [t for t in mine.get("t", []) if t > since][-rule.max_messages :]
        times.append(now)
        hit = ""
        if len(times) > rule.max_messages:
            hit, times = "rate", []
        repeats = mine.get("r", [])
        if normalized.strip():
            digest = _digest(normalized)
            since_r = now - rule.repeat_window_seconds
            repeats = [r for r in repeats if r[1] > since_r][-(4 * rule.max_repeats - 1) :]
            repeats.append([digest, now])
            if not hit and sum(1 for r in repeats if r[0] == digest) >= rule.max_repeats:
                hit = "repeat"
            if hit:
                repeats = [r for r in repeats if r[0] != digest]
        mine = {"t": times, "r": repeats} if (times or repeats) else {}
        if mine:
            windows[gkey] = mine
        else:
            windows.pop(gkey, None)
        # other groups' windows that have gone quiet are dropped too
        horizon = now - max(rule.per_seconds, rule.repeat_window_seconds)
        for other, window in list(windows.items()):
            if other == gkey:
                continue
            last = max([*window.get("t", []), *(r[1] for r in window.get("r", []))], default=0)
            if last <= horizon:
                del windows[other]
        if windows:
            st["flood"] = windows
        else:
            st.pop("flood", None)
        return hit

    def _hit(
        self,
        ctx: Context,
        cfg: ModerationConfig,
        event: Any,
        st: dict[str, Any],
        rule: str,
        detail: str,
    ) -> None:
        uid: str = event.actor.id
        ts: datetime = event.ts
        since = ts - timedelta(days=cfg.strike_window_days)
        strikes = [s for s in st.get("strikes", []) if datetime.fromisoformat(s["ts"]) > since]
        strikes.append({"ts": ts.isoformat(), "rule": rule, "group": ctx.group.key})
        count = len(strikes)
        excerpt = _clean(event.text, 80)
        ctx.delete(event.msg_id)
        data: dict[str, Any] = {
            "rule": rule,
            "msg_id": event.msg_id,
            "excerpt": excerpt,
            "strikes": count,
        }
        if detail:
            data["detail"] = detail
        ctx.record("hit", member=uid, **data)
        name = ctx.name(uid)
        label = ctx.render(f"rule_{rule}")
        days = cfg.strike_window_days
        if cfg.max_strikes and count >= cfg.max_strikes:
            st.pop("strikes", None)
            st.pop("flood", None)
            if cfg.ban_on_removal:
                st["banned"] = ts.isoformat()
            self._put(ctx, uid, st)
            if cfg.announce_removal:
                ctx.send(ctx.render("removed", name=name, rule=label), mentions=[uid])
            ctx.remove(uid, ctx.render("remove_reason", rule=label, strikes=count, days=days))
            ctx.notify_admins(
                ctx.render(
                    "admin_removed",
                    name=name,
                    member=display_name(uid, "?", limit=64),
                    group=display_name(ctx.group.name, ctx.group.key, limit=64),
                    strikes=count,
                    days=days,
                    rule=label,
                    excerpt=excerpt or "—",
                )
            )
            ctx.record("removed", member=uid, rule=rule, strikes=count, banned=cfg.ban_on_removal)
        else:
            st["strikes"] = strikes
            self._put(ctx, uid, st)
            if cfg.warn:
                values = {"strikes": count, "max_strikes": cfg.max_strikes, "days": days}
                text = ctx.render(f"warn_{rule}", name=name, rule=label, **values)
                if cfg.max_strikes:
                    text += ctx.render("strikes", **values)
                ctx.send(text, mentions=[uid])
        ctx.suppress()

    def _on_join(self, ctx: Context, cfg: ModerationConfig, uid: str) -> None:
        st = ctx.state.get(f"m:{uid}")
        if not st or not st.get("banned"):
            return
        ctx.remove(uid, ctx.render("ban_reason"))
        ctx.notify_admins(
            ctx.render(
                "admin_banned",
                name=ctx.name(uid),
                member=display_name(uid, "?", limit=64),
                group=display_name(ctx.group.name, ctx.group.key, limit=64),
            )
        )
        ctx.record("rejoin_removed", member=uid)
        ctx.suppress()

    @staticmethod
    def _put(ctx: Context, uid: str, st: dict[str, Any]) -> None:
        if st:
            ctx.state.put(f"m:{uid}", st)
        else:
            ctx.state.delete(f"m:{uid}")
