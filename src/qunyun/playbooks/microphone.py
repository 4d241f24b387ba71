"""microphone (传麦): pass a question to the members whose expertise it touches.

When someone asks a question in the group, the bot looks for members whose
expertise tags (from ``profile``, through :func:`~qunyun.playbooks.profile.tags_of`)
appear in it and @-mentions up to ``experts`` of them — "passing the
microphone" (SPEC §3.3).

What counts as a question (all of these):

- a text message of at least ``min_length`` and at most ``max_length``
  characters (spaces not counted), not starting with a command prefix
  (``/``, ``!``) — bots and commands are left alone;
- it ends with a question mark (``?`` or ``？``, trailing spaces, ``~`` and
  emoji ignored), or it contains one of ``question_words`` (Chinese words
  anywhere, English words and phrases as whole words);
- it is not already aimed at someone (a reply, or @-mentions) when
  ``skip_directed`` is on.

Who is asked: members with a matching tag — plain tags (``运营``) and tags
under ``tag_prefixes`` — who are current members of this group (they joined
or spoke here and have not left since), are not the asker, are in the
directory (not opted out, sharing level not ``admins``) and have not been
asked today (local day, community-wide). The best matches first (more
matching tags, then verified profiles, then user id). At most
``daily_cap`` passes per group and local day. No match: nothing is sent.

Matching: the question and the tags are NFKC-normalised and case-folded. A
tag with Chinese/Japanese/Korean characters matches as a substring (Chinese
has no spaces between words: the known tag strings are looked for inside the
text); any other tag matches whole words only (``go`` does not match
``google``).

State: ``m:<uid>`` → ``{"groups": [group keys where they are present],
"asked": local day iso, "asked_for": [the last 20 question msg_ids]}``; ``g:<platform>:<group>`` → ``{"day": iso,
"passes": n}``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

from pydantic import Field, field_validator

from qunyun.engine import Context, Playbook, PlaybookConfig
from qunyun.playbooks.profile import directory, stored_tags

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"[a-z0-9+#]+")
# what may trail a question mark: spaces, tildes, ellipses, emoji and the like
_TRAILING = re.compile(r"[\s~～…。.!！\U0001f300-\U0001faff\u2600-\u27bf\ufe0f]+$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class MicrophoneConfig(PlaybookConfig):
    experts: int = Field(default=2, ge=1, le=10, description="At most this many experts are @-mentioned per question.")
    daily_cap: int = Field(
        default=10, ge=1, le=500, description="At most this many passes per group and local day."
    )
    min_length: int = Field(
        default=6, ge=1, le=200, description="Shorter questions (characters, spaces not counted) are ignored."
    )
    max_length: int = Field(
        default=500, ge=20, le=10_000, description="Longer texts (articles, pastes) are not treated as questions."
    )
    question_words: list[str] = Field(
        default_factory=lambda: [
            "怎么", "如何", "为什么", "有没有", "请问", "求助", "求推荐", "谁知道", "谁懂", "哪里", "哪个", "哪家",
            "how", "what", "why", "which", "where", "anyone know", "does anyone", "can anyone", "can someone",
            "is there",
        ],
        description="A text containing one of these is a question (English: whole words; Chinese: anywhere).",
    )
    question_marks: str = Field(default="?？", min_length=1, description="A text ending with one of these is a question.")
    ignore_prefixes: list[str] = Field(
        default_factory=lambda: ["/", "!", "！"],
        description="Texts starting with one of these (bot commands) are never questions.",
    )
    min_tag_length: int = Field(
        default=2, ge=1, le=20, description="Tags shorter than this are not matched (one letter would match anything)."
    )
    tag_prefixes: list[str] = Field(
        default_factory=list,
        description="Also match tags under these prefixes, e.g. [hobby] for hobby:摄影 (plain expertise tags always).",
    )
    skip_directed: bool = Field(
        default=True, description="Leave questions alone that reply to or @-mention someone: they have an addressee."
    )

    @field_validator("question_words", "ignore_prefixes")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not w.strip() for w in value):
            raise ValueError("entries must be non-empty texts")
        return value

    @field_validator("tag_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for p in value:
            if not re.fullmatch(r"[a-z0-9_]{1,16}", p):
                raise ValueError(f"tag prefix {p!r} must be a-z, 0-9 or _ (like the profile's tag_prefix)")
        return value


def is_question(text: str, cfg: MicrophoneConfig) -> bool:
    """The documented question rules (see the module docstring)."""
    body = text.strip()
    if not body or body.startswith(tuple(cfg.ignore_prefixes)):
        return False
    size = sum(1 for c in body if not c.isspace())
    if size < cfg.min_length or size > cfg.max_length:
        return False
    if _TRAILING.sub("", body)[-1:] in cfg.question_marks:
        return True
    low = _norm(body)
    words = " " + " ".join(_WORD.findall(low)) + " "
    for w in cfg.question_words:
        wn = _norm(w)
        if _CJK.search(wn):
            if wn in low:
                return True
        elif " " + " ".join(_WORD.findall(wn)) + " " in words:
            return True
    return False


def matching_tags(text: str, tags: set[str]) -> set[str]:
    """Which of ``tags`` occur in ``text`` (substring for CJK tags, whole words otherwise)."""
    low = _norm(text)
    words = " " + " ".join(_WORD.findall(low)) + " "
    hits = set()
    for tag in tags:
        if _CJK.search(tag):
            if tag in low:
                hits.add(tag)
        else:
            tw = _WORD.findall(tag)
            if tw and " " + " ".join(tw) + " " in words:
                hits.add(tag)
    return hits


class Microphone(Playbook):
    id = "microphone"
    version = "1"
    config_model = MicrophoneConfig
    handles = frozenset({"message", "member_joined", "member_left"})
    emits = frozenset({"send"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "传麦：有人提问时，@ 标签里擅长这个话题、今天还没被问过的成员。",
        "en": "Passes a question to members whose expertise tags it touches and who were not asked today.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "pass": {
            "zh-CN": "🎤 {experts} 这个问题好像是你们擅长的（{topics}），方便的话帮忙看看？",
            "en": "🎤 {experts}, this one looks like your area ({topics}) — could one of you take a look?",
        },
        "pass_one": {
            "zh-CN": "🎤 {experts} 这个问题好像是你擅长的（{topics}），方便的话帮忙看看？",
            "en": "🎤 {experts}, this one looks like your area ({topics}) — could you take a look?",
        },
    }

    def on_event(self, ctx: Context, event: Any) -> None:
        uid = event.actor.id
        gkey = f"g:{ctx.group.platform}:{ctx.group.key}"
        if event.type == "member_left":
            self._presence(ctx, uid, gkey, False)
            return
        self._presence(ctx, uid, gkey, True)
        if event.type != "message" or event.content_type != "text":
            return
        cfg: MicrophoneConfig = ctx.config
        text: str = event.text
        if len(text) > cfg.max_length * 4 or not is_question(text, cfg):
            return
        if cfg.skip_directed and (event.reply_to or event.mentions):
            return
        day = ctx.local_day(event.ts).isoformat()
        cap = ctx.state.get(gkey) or {}
        passes = int(cap.get("passes", 0)) if cap.get("day") == day else 0
        if passes >= cfg.daily_cap:
            return
        experts = self._experts(ctx, cfg, text, uid, gkey, day)
        if not experts:
            return  # nobody knows: say nothing
        sep = "、" if ctx.locale == "zh-CN" else ", "
        chosen = [e[0] for e in experts]
        topics = sorted({t for _, tags in experts for t in tags})
        ctx.send(
            ctx.render(
                "pass" if len(chosen) > 1 else "pass_one",
                experts=" ".join(f"@{ctx.name(e)}" for e in chosen),
                topics=sep.join(topics[:5]),
                count=len(chosen),
            ),
            mentions=chosen,
            reply_to=event.msg_id,
        )
        for expert, tags in experts:
            key = f"m:{expert}"
            mine = dict(ctx.state.get(key) or {})
            mine["asked"] = day
            # which questions: qa leaves exactly these experts out of its nudge
            mine["asked_for"] = [*(mine.get("asked_for") or [])[-19:], event.msg_id]
            ctx.state.put(key, mine)
            ctx.record("passed", member=expert, tags=sorted(tags))
        ctx.state.put(gkey, {"day": day, "passes": passes + 1})

    def _presence(self, ctx: Context, uid: str, gkey: str, here: bool) -> None:
        """Keep the groups a member is in (joined or spoke, not left since); write only on change."""
        key = f"m:{uid}"
        mine = ctx.state.get(key)
        groups = list((mine or {}).get("groups") or [])
        if (gkey in groups) == here:
            return
        groups = [*groups, gkey] if here else [g for g in groups if g != gkey]
        ctx.state.put(key, {**(mine or {}), "groups": groups})

    def _experts(
        self, ctx: Context, cfg: MicrophoneConfig, text: str, asker: str, gkey: str, day: str
    ) -> list[tuple[str, set[str]]]:
        """Up to ``experts`` (uid, matched tags), best first."""
        prefixes = tuple(f"{p}:" for p in cfg.tag_prefixes)
        by_tag: dict[str, list[tuple[str, bool]]] = {}
        for uid, profile in directory(ctx):
            if uid == asker or profile.get("opt_out") or profile.get("sharing") == "admins":
                continue
            for tag in stored_tags(profile):
                if ":" in tag and not tag.startswith(prefixes):
                    continue
                term = tag.split(":", 1)[-1]  # "hobby:摄影" is looked for as "摄影"
                if len(term) < cfg.min_tag_length:
                    continue
                by_tag.setdefault(term, []).append((uid, bool(profile.get("verified"))))
        if not by_tag:
            return []
        hits: dict[str, set[str]] = {}
        verified: dict[str, bool] = {}
        for tag in matching_tags(text[: cfg.max_length * 4], set(by_tag)):
            for uid, ver in by_tag[tag]:
                hits.setdefault(uid, set()).add(tag)
                verified[uid] = ver
        ranked = sorted(hits, key=lambda u: (-len(hits[u]), not verified[u], u))
        chosen = []
        for uid in ranked:
            mine = ctx.state.get(f"m:{uid}") or {}
            if gkey not in (mine.get("groups") or ()) or mine.get("asked") == day:
                continue
            chosen.append((uid, hits[uid]))
            if len(chosen) >= cfg.experts:
                break
        return chosen
