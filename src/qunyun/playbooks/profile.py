"""profile (信息登记): self-introductions become profiles, profiles become tags.

A member introduces themselves in the community's format — lines such as
``城市：上海``, ``city: Shanghai``, ``【擅长】运营`` — and the playbook files
each recognised line under a profile field. Labels are matched loosely:
full- or half-width colons, the field's Chinese and English labels and its
synonyms (``城市``/``所在地``/``坐标``/``city``/``location``…), case and
width folded. A message counts as an introduction when it carries an intro
keyword (``#自我介绍``, ``#intro``) or at least ``min_fields`` recognised
lines. Unknown labels are ignored; values are cleaned and clipped; at most
``max_fields`` fields are read from the first ``max_intro_chars`` characters,
so a ten-thousand-line "introduction" costs no more than a normal one.

Values of tag fields become **tags** (lower-cased, NFKC-normalised): the
``expertise`` values as plain tags (``运营``), other fields under a prefix
(``city:上海``, ``hobby:摄影``). Capacity routing and the ``microphone`` read
them through :func:`tags_of`; :func:`profile_of` gives the whole profile
with the gate's application answers merged in.

Missing required fields are asked for in one direct message (once per
member, not on every intro). Admins mark profiles verified (``认证 @小王`` in
the chat, or the ``verify`` command). Members leave the directory with
``退出名录`` / ``directory off`` and come back with ``加入名录`` /
``directory on``; ``directory open|community|admins`` (``名录 公开|成员|管理员``)
sets their own sharing level. ``找 上海 运营`` / ``find designer shanghai``
searches the directory, showing only what the asker may see under the
community's sharing level (§9.1).

State (community-wide), the contract other playbooks read:

- ``m:<uid>`` → ``{"fields": {field_id: value}, "tags": [tag, ...],
  "verified": bool, "sharing": "open"|"community"|"admins"|null,
  "opt_out": bool, "updated": iso, "asked": iso|null}``
  (``sharing`` null: the community's default; ``asked``: when the missing
  fields were asked for).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qunyun.core.errors import CommandError, Msg
from qunyun.engine import Context, Playbook, PlaybookConfig
from qunyun.engine.context import Command

Locale = Literal["zh-CN", "en"]
Sharing = Literal["open", "community", "admins"]
SHARING_LEVELS: tuple[str, ...] = ("open", "community", "admins")

_CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")
_SPACES = re.compile(r"\s+")
# characters that decorate a label but do not change it: "**城市**", "- city", "#坐标"
_LABEL_NOISE = re.compile(r"[\s_\-·•*#>~`'\"“”‘’「」『』()（）]+")
_BRACKETED = re.compile(r"[【\[〖]([^】\]〗\n]{1,24})[】\]〗]\s*[:：=]?\s*([^【\[〖\n]*)")
_COLON_LINE = re.compile(r"^([^:：=\n]{1,24}?)\s*[:：=]\s*(.*)$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_MAX_TAGS_PER_FIELD = 20
_MAX_TAG_LENGTH = 40


# ------------------------------------------------------------------ helpers


def normalize_tag(value: str) -> str:
    """A tag as stored and compared: NFKC, case-folded, single spaces, bounded."""
    text = unicodedata.normalize("NFKC", value)
    text = _CONTROLS.sub("", text).casefold()
    text = _SPACES.sub(" ", text).strip(" ,，、;；/")
    return text[:_MAX_TAG_LENGTH].strip()


def _norm_label(label: str) -> str:
    return _LABEL_NOISE.sub("", unicodedata.normalize("NFKC", label).casefold())


def clean_value(value: str, limit: int) -> str:
    """Member-typed text as we store it: no control or bidi characters, one line, clipped."""
    text = _SPACES.sub(" ", _CONTROLS.sub("", value)).strip()
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def profile_of(ctx: Context, uid: str) -> dict[str, Any] | None:
    """A member's profile (read-only copy) with the gate's application answers under
    ``"application"``; ``None`` if we know neither."""
    found = ctx.state_of("profile").get(f"m:{uid}")
    gate = ctx.state_of("gate").get(f"m:{uid}")
    answers = gate.get("answers") if isinstance(gate, dict) else None
    if found is None and not answers:
        return None
    profile = _blank() if found is None else {**_blank(), **found}
    profile["fields"] = dict(profile.get("fields") or {})
    profile["tags"] = list(profile.get("tags") or [])
    if answers:
        profile["application"] = dict(answers) if isinstance(answers, dict) else {"answers": list(answers)}
    return profile


def tags_of(ctx: Context, uid: str) -> set[str]:
    """The member's tags, lower-cased and NFKC-normalised (``运营``, ``city:上海``)."""
    return stored_tags(ctx.state_of("profile").get(f"m:{uid}"))


def stored_tags(profile: Any) -> set[str]:
    """The normalised tags of a stored profile value (any shape tolerated)."""
    if not isinstance(profile, dict):
        return set()
    out = set()
    for tag in profile.get("tags") or ():
        if isinstance(tag, str):
            norm = normalize_tag(tag)
            if norm:
                out.add(norm)
    return out


def directory(ctx: Context) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every stored profile of the community as ``(uid, profile)``, in uid order."""
    for key, value in ctx.state_of("profile").scan("m:"):
        if isinstance(value, dict):
            yield key[2:], value


def _blank() -> dict[str, Any]:
    return {
        "fields": {},
        "tags": [],
        "verified": False,
        "sharing": None,
        "opt_out": False,
        "updated": None,
        "asked": None,
    }


# ------------------------------------------------------------ configuration


class ProfileField(BaseModel):
    """One profile field the community asks about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Stable id (a-z, 0-9, _), the key in profiles.")
    labels: dict[Locale, str] = Field(description="What the field is called, {zh-CN: 城市, en: City}.")
    synonyms: list[str] = Field(default_factory=list, description="Other labels members write for it.")
    required: bool = Field(default=False, description="Missing after an intro: asked for by direct message.")
    is_tag: bool = Field(default=False, description="Its values become tags.")
    tag_prefix: str = Field(
        default="", pattern=r"^[a-z0-9_]{0,16}$", description="Tags become '<prefix>:<value>' (empty: plain tags)."
    )
    split: bool = Field(default=False, description="Several values, separated by the `separators`.")
    private_in_community: bool = Field(
        default=False, description="Hidden from members (shown to admins) at the `community` sharing level."
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if not value or any(not v.strip() for v in value.values()):
            raise ValueError("give the field a non-empty label, e.g. {zh-CN: 城市, en: City}")
        return value

    def label(self, locale: str) -> str:
        labels: dict[str, str] = {str(k): v for k, v in self.labels.items()}
        return labels.get(locale) or labels.get("en") or next(iter(labels.values()))


def _f(fid: str, zh: str, en: str, synonyms: list[str], **flags: Any) -> ProfileField:
    return ProfileField(id=fid, labels={"zh-CN": zh, "en": en}, synonyms=synonyms, **flags)


def default_fields() -> list[ProfileField]:
    """The fields of SPEC §1.4, with the synonyms members actually write."""
    return [
        _f("position", "职位", "Position", ["职业", "岗位", "工作", "头衔", "job", "role", "title", "occupation"],
           is_tag=True, tag_prefix="position", private_in_community=True),
        _f("company", "公司", "Company", ["单位", "企业", "就职", "任职", "employer", "organization", "organisation"],
           private_in_community=True),
        _f("industry", "行业", "Industry", ["领域", "所在行业", "sector"], is_tag=True, tag_prefix="industry"),
        _f("career", "经历", "Career", ["职业经历", "工作经历", "履历", "背景", "career path", "background", "experience"],
           private_in_community=True),
        _f("expertise", "擅长", "Expertise", ["专长", "技能", "特长", "擅长领域", "能帮忙", "skills", "skill",
                                             "good at", "strengths", "expert in"],
           required=True, is_tag=True, split=True),
        _f("needs", "需求", "Needs", ["想收获", "希望收获", "想学", "困惑", "求助", "looking for", "goals", "want"],
           is_tag=True, tag_prefix="need", split=True),
        _f("hobbies", "爱好", "Hobbies", ["兴趣", "兴趣爱好", "喜欢", "interests", "hobby", "likes"],
           is_tag=True, tag_prefix="hobby", split=True),
        _f("city", "城市", "City", ["所在地", "所在城市", "坐标", "地区", "常驻", "base", "location", "based in"],
           required=True, is_tag=True, tag_prefix="city"),
        _f("age_band", "年龄段", "Age band", ["年龄", "年龄层", "年代", "age", "age group"], private_in_community=True),
        _f("source", "来源", "How you found us", ["渠道", "从哪里知道", "怎么知道的", "推荐人", "referral", "source",
                                                  "heard from", "found us via"]),
        _f("resources_have", "可提供资源", "Resources I offer", ["我的资源", "能提供", "可提供", "提供", "offer",
                                                                "can offer", "resources"],
           is_tag=True, tag_prefix="have", split=True),
        _f("resources_need", "需要资源", "Resources I need", ["我需要", "需要", "寻找资源", "need", "seeking"],
           is_tag=True, tag_prefix="need", split=True),
    ]


def _words(value: list[str]) -> list[str]:
    if any(not w.strip() for w in value):
        raise ValueError("keywords must be non-empty texts")
    return value


class ProfileConfig(PlaybookConfig):
    fields: list[ProfileField] = Field(
        default_factory=default_fields,
        description="The profile fields: id, labels {zh-CN, en}, synonyms, required, is_tag, tag_prefix, split, "
        "private_in_community.",
    )
    sharing: Sharing = Field(
        default="community",
        description="Directory sharing level: open (members see everything), community (members see profiles "
        "without name and private fields), admins (only admins see the directory).",
    )
    intro_keywords: list[str] = Field(
        default_factory=lambda: ["#自我介绍", "#新人介绍", "#intro", "#introduction"],
        description="A message containing one of these is an introduction, whatever its format.",
    )
    min_fields: int = Field(
        default=2, ge=1, le=20, description="Without a keyword, this many recognised field lines make an introduction."
    )
    max_fields: int = Field(default=30, ge=1, le=200, description="At most this many fields are read from one message.")
    max_intro_chars: int = Field(
        default=4000, ge=100, le=100_000, description="Only this many characters of a message are looked at."
    )
    max_value_length: int = Field(default=120, ge=8, le=2000, description="A field value is clipped to this length.")
    separators: str = Field(
        default="、,，/;；", min_length=1, description="Characters that separate several values in a split field."
    )
    confirm: bool = Field(default=True, description="Reply in the group which fields of an introduction were saved.")
    ask_missing: bool = Field(
        default=True, description="Ask once, by direct message, for required fields an introduction left out."
    )
    search_keywords: list[str] = Field(
        default_factory=lambda: ["找", "#找人", "find", "#find"],
        description="A message starting with one of these, a space and 1-4 words searches the directory.",
    )
    search_limit: int = Field(default=5, ge=1, le=20, description="At most this many members in a search reply.")
    opt_out_keywords: list[str] = Field(
        default_factory=lambda: ["退出名录", "directory off"],
        description="A message that is exactly one of these takes the sender out of the directory.",
    )
    opt_in_keywords: list[str] = Field(
        default_factory=lambda: ["加入名录", "directory on"],
        description="A message that is exactly one of these puts the sender back in the directory.",
    )
    verify_keywords: list[str] = Field(
        default_factory=lambda: ["认证", "verify"],
        description="An admin's message starting with one of these and @-mentioning members verifies them.",
    )
    unverify_keywords: list[str] = Field(
        default_factory=lambda: ["取消认证", "unverify"],
        description="An admin's message starting with one of these and @-mentioning members removes the mark.",
    )

    @field_validator(
        "intro_keywords", "search_keywords", "opt_out_keywords", "opt_in_keywords", "verify_keywords",
        "unverify_keywords",
    )
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        return _words(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[ProfileField]) -> list[ProfileField]:
        if not value:
            raise ValueError("define at least one profile field")
        ids: set[str] = set()
        owner: dict[str, str] = {}
        for field in value:
            if field.id in ids:
                raise ValueError(f"field id {field.id!r} is used twice")
            ids.add(field.id)
            for label in (*field.labels.values(), field.id, *field.synonyms):
                norm = _norm_label(label)
                if not norm:
                    raise ValueError(f"field {field.id!r}: label {label!r} is empty once normalised")
                other = owner.get(norm)
                if other is not None and other != field.id:
                    raise ValueError(
                        f"label {label!r} belongs to both {other!r} and {field.id!r}; keep it on one field"
                    )
                owner[norm] = field.id
        return value

    @model_validator(mode="after")
    def _search_words_do_not_overlap(self) -> ProfileConfig:
        exact = {w.casefold() for w in (*self.opt_out_keywords, *self.opt_in_keywords)}
        if len(exact) != len(self.opt_out_keywords) + len(self.opt_in_keywords):
            raise ValueError("opt_out_keywords and opt_in_keywords must not share a keyword")
        return self


class _Compiled:
    """Lookup tables of one (immutable) configuration."""

    __slots__ = ("by_id", "intro", "labels", "opt_in", "opt_out", "search", "splitter", "unverify", "verify")

    def __init__(self, cfg: ProfileConfig) -> None:
        self.by_id = {f.id: f for f in cfg.fields}
        self.labels: dict[str, ProfileField] = {}
        for f in cfg.fields:
            for label in (*f.labels.values(), f.id, *f.synonyms):
                self.labels[_norm_label(label)] = f
        self.intro = tuple(k.casefold() for k in cfg.intro_keywords)
        self.opt_out = frozenset(k.casefold().strip() for k in cfg.opt_out_keywords)
        self.opt_in = frozenset(k.casefold().strip() for k in cfg.opt_in_keywords)
        self.verify = tuple(k.casefold() for k in cfg.verify_keywords)
        self.unverify = tuple(k.casefold() for k in cfg.unverify_keywords)
        self.search = tuple(k.casefold() for k in cfg.search_keywords)
        self.splitter = re.compile("[" + re.escape(cfg.separators) + "]+")


_COMPILED: dict[int, tuple[ProfileConfig, _Compiled]] = {}


def _compiled(cfg: ProfileConfig) -> _Compiled:
    found = _COMPILED.get(id(cfg))
    if found is None or found[0] is not cfg:
        found = (cfg, _Compiled(cfg))
        _COMPILED[id(cfg)] = found
    return found[1]


def split_values(value: str, splitter: re.Pattern[str]) -> list[str]:
    """The single values of a split field: on the separators, and on spaces between CJK words
    ("运营 增长" is two values; "data analysis" stays one)."""
    out: list[str] = []
    for part in splitter.split(value):
        part = part.strip()
        if not part:
            continue
        if _CJK.search(part) and not re.search(r"[A-Za-z]", part):
            out.extend(p for p in part.split() if p)
        else:
            out.append(part)
    return out


def compute_tags(fields: dict[str, str], cfg: ProfileConfig) -> list[str]:
    """The tags of a profile's fields, sorted."""
    comp = _compiled(cfg)
    tags: set[str] = set()
    for fid, value in fields.items():
        field = comp.by_id.get(fid)
        if field is None or not field.is_tag:
            continue
        values = split_values(value, comp.splitter) if field.split else [value]
        for single in values[:_MAX_TAGS_PER_FIELD]:
            norm = normalize_tag(single)
            if norm:
                tags.add(f"{field.tag_prefix}:{norm}" if field.tag_prefix else norm)
    return sorted(tags)


def parse_intro(text: str, cfg: ProfileConfig) -> tuple[bool, dict[str, str]]:
    """``(keyword_present, {field_id: value})`` read from a message (values cleaned, clipped)."""
    comp = _compiled(cfg)
    head = text[: cfg.max_intro_chars]
    low = head.casefold()
    keyword = False
    for kw in comp.intro:
        if kw in low:
            keyword = True
            head = re.sub(re.escape(kw), " ", head, flags=re.IGNORECASE)
    found: dict[str, str] = {}
    count = 0
    for raw in head.splitlines():
        if count >= cfg.max_fields:
            break
        line = raw.strip()
        if not line:
            continue
        pairs: list[tuple[str, str]] = []
        if line[0] in "【[〖":
            pairs = [(m.group(1), m.group(2)) for m in _BRACKETED.finditer(line)]
        if not pairs:
            m = _COLON_LINE.match(line.lstrip("-*•·>#～~ \t"))
            if m is not None:
                pairs = [(m.group(1), m.group(2))]
        for label, value in pairs:
            if count >= cfg.max_fields:
                break
            field = comp.labels.get(_norm_label(label))
            if field is None:
                continue  # an unknown label: not ours
            cleaned = clean_value(value, cfg.max_value_length)
            if not cleaned:
                continue
            found[field.id] = cleaned
            count += 1
    return keyword, found


# --------------------------------------------------------------- the playbook


class Profile(Playbook):
    id = "profile"
    version = "1"
    config_model = ProfileConfig
    handles = frozenset({"message"})
    emits = frozenset({"send", "direct"})
    commands: ClassVar[dict[str, str]] = {
        "set": "Set fields of a member's profile: member, fields {id: value or null}, sharing, opt_out.",
        "verify": "Mark a member's profile verified (verified: false removes the mark): member, verified.",
        "search": "Search the directory: tag, expertise, city, text, viewer_role (member|admin), limit.",
        "show": "A member's profile with the gate's application answers: member.",
    }
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "自我介绍自动登记为名片和标签；缺项私信补充；管理员认证；成员名录搜索，尊重隐私级别与退出。",
        "en": "Self-introductions become profiles and tags; missing fields asked by DM; admin verification; "
        "a directory search that honours sharing levels and opt-outs.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "saved": {
            "zh-CN": "📇 已记下 {name} 的名片：{fields}",
            "en": "📇 Got it, {name}: your card now has {fields}.",
        },
        "ask_missing": {
            "zh-CN": "你好 {name}！你的名片还差：{missing}。方便的话在群里按「{example}」这样的格式补一句就好～",
            "en": "Hi {name}! Your card is still missing: {missing}. When you have a moment, post a line like "
            "\"{example}\" in the group.",
        },
        "verified": {
            "zh-CN": "✅ {names} 已通过认证。",
            "en": "✅ Verified: {names}.",
        },
        "unverified": {
            "zh-CN": "已取消 {names} 的认证标记。",
            "en": "Verification removed for {names}.",
        },
        "not_admin": {
            "zh-CN": "{name}，认证只能由管理员操作哦。",
            "en": "{name}, only admins can verify members.",
        },
        "opted_out": {
            "zh-CN": "好的 {name}，你已退出成员名录，搜索里不会再出现你。发送「加入名录」随时回来。",
            "en": "Done, {name}: you are out of the member directory and won't show up in searches. "
            "Send \"directory on\" to come back.",
        },
        "opted_in": {
            "zh-CN": "欢迎回到成员名录，{name}！",
            "en": "Welcome back to the member directory, {name}!",
        },
        "sharing_set": {
            "zh-CN": "{name}，你的名片现在{level}。",
            "en": "{name}, your card is now {level}.",
        },
        "level_open": {"zh-CN": "对所有人完全公开", "en": "fully visible to everyone"},
        "level_community": {
            "zh-CN": "对成员可见（不显示名字和公司等私密项）",
            "en": "visible to members without your name and private fields",
        },
        "level_admins": {"zh-CN": "只对管理员可见", "en": "visible to admins only"},
        "search_results": {
            "zh-CN": "🔎 「{terms}」找到 {count} 位：\n{lines}",
            "en": "🔎 {count} found for \"{terms}\":\n{lines}",
        },
        "search_line": {
            "zh-CN": "{rank}. {who}{mark}：{summary}",
            "en": "{rank}. {who}{mark}: {summary}",
        },
        "search_more": {
            "zh-CN": "……另有 {more} 位，换个更具体的词试试。",
            "en": "…and {more} more; try a more specific word.",
        },
        "anonymous": {"zh-CN": "一位成员", "en": "A member"},
        "verified_mark": {"zh-CN": " ✅", "en": " ✅"},
        "search_private_hint": {
            "zh-CN": "（名字已隐藏，想认识的话请找管理员引荐）",
            "en": "(names are hidden; ask an admin to introduce you)",
        },
        "search_none": {
            "zh-CN": "名录里暂时没有符合「{terms}」的成员。",
            "en": "Nobody in the directory matches \"{terms}\" yet.",
        },
        "search_admins_only": {
            "zh-CN": "成员名录目前只对管理员开放，想找人可以直接问管理员。",
            "en": "The member directory is open to admins only; ask an admin to help you find someone.",
        },
    }

    # ---------------------------------------------------------------- events

    def on_event(self, ctx: Context, event: Any) -> None:
        cfg: ProfileConfig = ctx.config
        text: str = event.text
        if not text or not text.strip():
            return
        uid = event.actor.id
        comp = _compiled(cfg)
        head = text[: cfg.max_intro_chars]
        short = head.strip()
        low = short.casefold()
        if len(short) <= 64:
            if low in comp.opt_out:
                self._opt(ctx, uid, True, event.msg_id)
                return
            if low in comp.opt_in:
                self._opt(ctx, uid, False, event.msg_id)
                return
            level = _sharing_request(low)
            if level is not None:
                self._share(ctx, uid, level, event.msg_id)
                return
        if event.mentions:
            # "取消认证" is checked first: "认证" must not catch it
            for kws, value in ((comp.unverify, False), (comp.verify, True)):
                if low.startswith(kws):
                    self._verify_in_chat(ctx, event, value)
                    return
        for k in comp.search:
            if low.startswith(k) and len(low) > len(k) and low[len(k)].isspace():
                rest = short[len(k) :].strip()
                terms = rest.split()
                if 1 <= len(terms) <= 4 and len(rest) <= 60:
                    self._search_in_chat(ctx, event, terms)
                    return
        if not any(c in head for c in ":：=【[〖#"):
            return  # the common case: an ordinary message
        keyword, fields = parse_intro(head, cfg)
        if not fields and not keyword:
            return
        if not keyword and len(fields) < cfg.min_fields and not self._completes(ctx, cfg, uid, fields):
            return
        self._save_intro(ctx, uid, fields, event.msg_id)

    @staticmethod
    def _completes(ctx: Context, cfg: ProfileConfig, uid: str, fields: dict[str, str]) -> bool:
        """A single line that fills in a required field we asked this member for."""
        profile = ctx.state.get(f"m:{uid}")
        if not isinstance(profile, dict) or not profile.get("asked"):
            return False
        have = profile.get("fields") or {}
        return any(f.required and f.id in fields and not have.get(f.id) for f in cfg.fields)

    # ----------------------------------------------------------- intro

    def _save_intro(self, ctx: Context, uid: str, fields: dict[str, str], msg_id: str | None) -> None:
        cfg: ProfileConfig = ctx.config
        comp = _compiled(cfg)
        key = f"m:{uid}"
        profile = {**_blank(), **(ctx.state.get(key) or {})}
        merged = {**(profile.get("fields") or {}), **fields}
        profile["fields"] = merged
        profile["tags"] = compute_tags(merged, cfg)
        profile["updated"] = ctx.now.isoformat()
        missing = [f for f in cfg.fields if f.required and not merged.get(f.id)]
        name = ctx.name(uid)
        if missing and cfg.ask_missing and not profile.get("asked"):
            profile["asked"] = ctx.now.isoformat()
            sep = "、" if ctx.locale == "zh-CN" else ", "
            colon = "：" if ctx.locale == "zh-CN" else ": "
            example = f"{missing[0].label(ctx.locale)}{colon}…"
            ctx.direct(
                uid,
                ctx.render(
                    "ask_missing", name=name, missing=sep.join(f.label(ctx.locale) for f in missing), example=example
                ),
            )
        ctx.state.put(key, profile)
        if fields:
            ctx.record("intro", member=uid, fields=sorted(fields))
            if cfg.confirm:
                sep = "、" if ctx.locale == "zh-CN" else ", "
                labels = sep.join(comp.by_id[f].label(ctx.locale) for f in comp.by_id if f in fields)
                ctx.send(ctx.render("saved", name=name, fields=labels), mentions=[uid], reply_to=msg_id)

    # ----------------------------------------------------- directory choices

    def _opt(self, ctx: Context, uid: str, out: bool, msg_id: str | None) -> None:
        key = f"m:{uid}"
        current = ctx.state.get(key)
        if bool((current or {}).get("opt_out")) == out:
            return  # already so (in, or out): nothing to say twice
        profile = {**_blank(), **(current or {})}
        profile["opt_out"] = out
        profile["updated"] = ctx.now.isoformat()
        ctx.state.put(key, profile)
        ctx.send(ctx.render("opted_out" if out else "opted_in", name=ctx.name(uid)), mentions=[uid], reply_to=msg_id)

    def _share(self, ctx: Context, uid: str, level: str, msg_id: str | None) -> None:
        key = f"m:{uid}"
        profile = {**_blank(), **(ctx.state.get(key) or {})}
        profile["sharing"] = level
        profile["updated"] = ctx.now.isoformat()
        ctx.state.put(key, profile)
        ctx.send(
            ctx.render("sharing_set", name=ctx.name(uid), level=ctx.render(f"level_{level}")),
            mentions=[uid],
            reply_to=msg_id,
        )

    # ----------------------------------------------------------- verification

    def _verify_in_chat(self, ctx: Context, event: Any, value: bool) -> None:
        uid = event.actor.id
        if ctx.role(uid) not in ("owner", "admin"):
            ctx.record("verify_refused", member=uid)
            ctx.send(ctx.render("not_admin", name=ctx.name(uid)), mentions=[uid], reply_to=event.msg_id)
            return
        targets = [t for t in dict.fromkeys(event.mentions) if t]
        for target in targets[:20]:
            self._set_verified(ctx, target, value, by=uid)
        sep = "、" if ctx.locale == "zh-CN" else ", "
        names = sep.join(ctx.name(t) for t in targets[:20])
        ctx.send(ctx.render("verified" if value else "unverified", names=names), mentions=targets[:20],
                 reply_to=event.msg_id)

    def _set_verified(self, ctx: Context, uid: str, value: bool, *, by: str) -> None:
        key = f"m:{uid}"
        profile = {**_blank(), **(ctx.state.get(key) or {})}
        profile["verified"] = value
        profile["updated"] = ctx.now.isoformat()
        ctx.state.put(key, profile)
        ctx.record("verified" if value else "unverified", member=uid, by=by)

    # ----------------------------------------------------------------- search

    def _search_in_chat(self, ctx: Context, event: Any, terms: list[str]) -> None:
        cfg: ProfileConfig = ctx.config
        # In the admins' group, admins see everything; anywhere else the whole group
        # reads the reply, so it shows what a member may see.
        viewer = "admin" if ctx.group.admin and ctx.role(event.actor.id) in ("owner", "admin") else "member"
        shown_terms = clean_value(" ".join(terms), 60)
        if viewer == "member" and cfg.sharing == "admins":
            ctx.send(ctx.render("search_admins_only"), reply_to=event.msg_id)
            return
        rows = search(ctx, cfg, viewer=viewer, text=" ".join(terms), exclude=event.actor.id)
        if not rows:
            ctx.send(ctx.render("search_none", terms=shown_terms), reply_to=event.msg_id)
            return
        comp = _compiled(cfg)
        lines = []
        anonymous = False
        for i, row in enumerate(rows[: cfg.search_limit]):
            who = row["name"]
            if who is None:
                who = ctx.render("anonymous")
                anonymous = True
            mark = ctx.render("verified_mark") if row["verified"] else ""
            colon = "：" if ctx.locale == "zh-CN" else ": "
            parts = [
                f"{comp.by_id[fid].label(ctx.locale)}{colon}{value}"
                for fid, value in row["fields"].items()
                if fid in comp.by_id
            ]
            summary = clean_value(" · ".join(parts[:4]), 160) or "—"
            lines.append(ctx.render("search_line", rank=i + 1, who=who, mark=mark, summary=summary))
        if len(rows) > cfg.search_limit:
            lines.append(ctx.render("search_more", more=len(rows) - cfg.search_limit))
        if anonymous:
            lines.append(ctx.render("search_private_hint"))
        ctx.send(
            ctx.render("search_results", terms=shown_terms, count=len(rows), lines="\n".join(lines)),
            reply_to=event.msg_id,
        )

    # --------------------------------------------------------------- commands

    def on_command(self, ctx: Context, command: Command) -> dict[str, Any] | None:
        cfg: ProfileConfig = ctx.config
        args = command.args
        if command.name == "search":
            viewer = args.get("viewer_role", "admin")
            if viewer not in ("member", "admin"):
                raise CommandError(Msg("viewer_role must be member or admin, not {viewer!r}", viewer=viewer))
            limit = args.get("limit", 50)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
                raise CommandError(Msg("limit must be a whole number from 1 to 1000"))
            criteria = {k: args.get(k) for k in ("tag", "expertise", "city", "text")}
            for k, v in criteria.items():
                if v is not None and not isinstance(v, str):
                    raise CommandError(Msg("{option} must be a text", option=k))
            if viewer == "member" and cfg.sharing == "admins":
                return {"rows": [], "count": 0, "viewer_role": viewer, "sharing": cfg.sharing, "admins_only": True}
            rows = search(ctx, cfg, viewer=viewer, **criteria)
            return {"rows": rows[:limit], "count": len(rows), "viewer_role": viewer, "sharing": cfg.sharing}
        member = args.get("member")
        if not isinstance(member, str) or not member:
            raise CommandError(Msg("{command} needs member (a user id)", command=command.name),
                               hint=Msg("e.g. {example}", example='{"member": "u-17"}'))
        if command.name == "show":
            return {"member": member, "profile": profile_of(ctx, member)}
        if command.name == "verify":
            value = args.get("verified", True)
            if not isinstance(value, bool):
                raise CommandError(Msg("verified must be true or false"))
            self._set_verified(ctx, member, value, by=command.actor)
            return {"member": member, "verified": value}
        if command.name == "set":
            return {"member": member, "profile": self._set(ctx, cfg, member, args)}
        raise CommandError(
            Msg("profile has no command {command!r}", command=command.name),
            hint=Msg("commands: {commands}", commands=", ".join(sorted(self.commands))),
        )

    def _set(self, ctx: Context, cfg: ProfileConfig, member: str, args: dict[str, Any]) -> dict[str, Any]:
        comp = _compiled(cfg)
        key = f"m:{member}"
        profile = {**_blank(), **(ctx.state.get(key) or {})}
        fields = dict(profile.get("fields") or {})
        changes = args.get("fields", {})
        if not isinstance(changes, dict):
            raise CommandError(Msg("fields must be a mapping {shape}", shape="{field id: value}"))
        for fid, value in changes.items():
            if fid not in comp.by_id:
                raise CommandError(Msg("unknown profile field {field!r}", field=fid),
                                   hint=Msg("fields: {fields}", fields=", ".join(comp.by_id)))
            if value is None or (isinstance(value, str) and not value.strip()):
                fields.pop(fid, None)
            elif isinstance(value, str):
                fields[fid] = clean_value(value, cfg.max_value_length)
            else:
                raise CommandError(Msg("field {field!r}: the value must be a text (or null to clear it)", field=fid))
        if "sharing" in args:
            if args["sharing"] is not None and args["sharing"] not in SHARING_LEVELS:
                raise CommandError(Msg("sharing must be open, community, admins or null (the community default)"))
            profile["sharing"] = args["sharing"]
        if "opt_out" in args:
            if not isinstance(args["opt_out"], bool):
                raise CommandError(Msg("opt_out must be true or false"))
            profile["opt_out"] = args["opt_out"]
        unknown = set(args) - {"member", "fields", "sharing", "opt_out"}
        if unknown:
            raise CommandError(Msg("set does not take {options}", options=", ".join(sorted(unknown))),
                               hint=Msg("member, fields, sharing, opt_out"))
        profile["fields"] = fields
        profile["tags"] = compute_tags(fields, cfg)
        profile["updated"] = ctx.now.isoformat()
        ctx.state.put(key, profile)
        return profile


_SHARING_WORDS = {
    "directory open": "open",
    "directory community": "community",
    "directory admins": "admins",
    "名录 公开": "open",
    "名录 成员": "community",
    "名录 管理员": "admins",
}


def _sharing_request(low: str) -> str | None:
    return _SHARING_WORDS.get(_SPACES.sub(" ", low))


# ------------------------------------------------------------------- search


def search(
    ctx: Context,
    cfg: ProfileConfig,
    *,
    viewer: str,
    tag: str | None = None,
    expertise: str | None = None,
    city: str | None = None,
    text: str | None = None,
    exclude: str | None = None,
) -> list[dict[str, Any]]:
    """Directory rows matching every criterion, as ``viewer`` (member|admin) may see them.

    Opted-out members never appear. For a member viewer: nobody if the
    community's level is ``admins``; profiles whose own level is ``admins``
    are skipped; at ``community`` level the name and the private fields are
    hidden — and never matched, so a search cannot reveal them.
    """
    if viewer == "member" and cfg.sharing == "admins":
        return []
    comp = _compiled(cfg)
    order = list(comp.by_id)
    want_tag = normalize_tag(tag) if tag else None
    want_exp = normalize_tag(expertise) if expertise else None
    want_city = normalize_tag(city) if city else None
    terms = [normalize_tag(t) for t in (text or "").split()]
    terms = [t for t in terms if t]
    found: list[dict[str, Any]] = []
    for uid, profile in directory(ctx):
        if uid == exclude or profile.get("opt_out"):
            continue
        level = profile.get("sharing") or cfg.sharing
        if viewer == "member" and level == "admins":
            continue
        full = viewer == "admin" or level == "open"
        fields = {
            fid: value
            for fid, value in sorted((profile.get("fields") or {}).items(), key=lambda kv: _pos(order, kv[0]))
            if isinstance(value, str) and (full or (fid in comp.by_id and not comp.by_id[fid].private_in_community))
        }
        if not fields and not full:
            continue
        tags = compute_tags(fields, cfg)
        name = ctx.name(uid) if full else None
        if want_tag is not None and want_tag not in tags:
            continue
        if want_exp is not None and not any(":" not in t and want_exp in t for t in tags):
            continue
        if want_city is not None and not any(t.startswith("city:") and want_city in t[5:] for t in tags):
            continue
        if terms:
            hay = [normalize_tag(v) for v in fields.values()] + tags + ([normalize_tag(name)] if name else [])
            if not all(any(term in h for h in hay) for term in terms):
                continue
        found.append(
            {
                "member": uid if full else None,
                "name": name,
                "verified": bool(profile.get("verified")),
                "fields": fields,
                "tags": tags,
            }
        )
    found.sort(key=lambda r: (not r["verified"], -len(r["fields"]), r["member"] or "", r["tags"]))
    return found


def _pos(order: list[str], fid: str) -> int:
    return order.index(fid) if fid in order else len(order)
