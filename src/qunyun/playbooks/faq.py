"""faq (关键词知识库): answer common questions from a curated list.

The operator writes entries: a few keywords and the answer. When a message
contains one of the keywords, the bot replies with that entry's answer — at
most once per entry and group within a cooldown, so a busy group is not
answered the same thing ten times an hour. Every keyword of every entry is
compiled into one Aho-Corasick automaton, so a message is read once however
many entries there are. Latin keywords match whole words only ("cat" is not
found in "concatenate"); Chinese, Japanese and Korean keywords match anywhere.
When several entries match, the longest keyword wins, then the entry listed
first.

Where the ``knowledge`` playbook runs, its active entries (``k:<id>`` in its
state) answer too, exactly like configured entries listed after them (newest
first), with the playbook's cooldown. Their automaton is rebuilt only when
the knowledge state's ``version`` changes. A message that captures or marks
knowledge is not answered.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from qunyun.engine import Context, Playbook, PlaybookConfig

P = TypeVar("P", bound=Hashable)

#: Keyword occurrences read from one message at most.
MAX_HITS = 1000

# --------------------------------------------------------------------------
# Keyword matching, shared with the moderation playbook.


def _is_cjk(ch: str) -> bool:
    """Han, kana, Hangul and their punctuation: scripts written without spaces."""
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF  # radicals, kana, CJK symbols, unified ideographs
        or 0xAC00 <= o <= 0xD7AF  # Hangul syllables
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0xFF66 <= o <= 0xFF9F  # half-width katakana
        or 0x20000 <= o <= 0x3FFFF  # extension planes
    )


def _is_word_char(ch: str) -> bool:
    """A letter or digit of a script that separates words with spaces."""
    return (ch.isalnum() or ch == "_") and not _is_cjk(ch)


def normalize_text(text: str, *, case_sensitive: bool = False) -> str:
    """The form keywords and messages are compared in.

    NFKC folds full-width letters and digits ("ＶＸ", "１３８") into ASCII, so a
    keyword written one way finds the other; casefold ignores case.
    """
    text = unicodedata.normalize("NFKC", text)
    return text if case_sensitive else text.casefold()


@dataclass(frozen=True, slots=True)
class KeywordHit(Generic[P]):
    start: int
    end: int
    keyword: str
    payloads: tuple[P, ...]


class KeywordIndex(Generic[P]):
    """Many keywords, one pass over the text (Aho-Corasick).

    Each keyword carries payloads (an entry, a rule...). A keyword that
    begins or ends with a Latin letter or digit only matches where the text
    has no such character right before or after it; CJK keywords match
    anywhere. Build it once per configuration; :meth:`find` is the hot path.
    """

    __slots__ = ("_automaton", "case_sensitive", "size")

    def __init__(self, keywords: Iterable[tuple[str, P]], *, case_sensitive: bool = False) -> None:
        self.case_sensitive = case_sensitive
        merged: dict[str, list[P]] = {}
        for keyword, payload in keywords:
            norm = normalize_text(keyword.strip(), case_sensitive=case_sensitive)
            if not norm:
                continue
            found = merged.setdefault(norm, [])
            if payload not in found:
                found.append(payload)
        self.size = len(merged)
        self._automaton: Any = None
        if merged:
            automaton = ahocorasick.Automaton()
            for norm, payloads in merged.items():
                automaton.add_word(
                    norm,
                    (norm, _is_word_char(norm[0]), _is_word_char(norm[-1]), tuple(payloads)),
                )
            automaton.make_automaton()
            self._automaton = automaton

    def normalize(self, text: str) -> str:
        return normalize_text(text, case_sensitive=self.case_sensitive)

    def find(self, normalized: str, limit: int = MAX_HITS) -> Iterator[KeywordHit[P]]:
        """Keyword occurrences in ``normalized`` (see :meth:`normalize`), the first ``limit``.

        The limit bounds the work a hostile wall of repeated keywords causes.
        """
        if self._automaton is None or not normalized:
            return
        last = len(normalized) - 1
        left_over = limit
        for end, (keyword, left, right, payloads) in self._automaton.iter(normalized):
            start = end - len(keyword) + 1
            if left and start > 0 and _is_word_char(normalized[start - 1]):
                continue
            if right and end < last and _is_word_char(normalized[end + 1]):
                continue
            yield KeywordHit(start, end + 1, keyword, payloads)
            left_over -= 1
            if not left_over:
                return


C = TypeVar("C", bound=BaseModel)
T = TypeVar("T")


class ConfigCache(Generic[C, T]):
    """Derived data (automata, regexes) built once per playbook configuration.

    Looked up by the configuration object's identity, which is one dict probe
    on the hot path. A weak reference drops the entry when the object goes
    away, so a recycled ``id`` never finds a stale entry. Objects with equal
    content (every group of a community without overrides, or a reload of
    the same file) share one build. This is a cache, not state: losing it
    costs a rebuild.
    """

    __slots__ = ("_build", "_by_id", "_by_value")

    #: Distinct configuration contents kept built.
    LIMIT = 256

    def __init__(self, build: Callable[[C], T]) -> None:
        self._build = build
        self._by_id: dict[int, tuple[weakref.ref[C], T]] = {}
        self._by_value: dict[str, T] = {}

    def get(self, cfg: C) -> T:
        found = self._by_id.get(id(cfg))
        if found is not None and found[0]() is cfg:
            return found[1]
        key = cfg.model_dump_json()
        built = self._by_value.get(key)
        if built is None:
            if len(self._by_value) >= self.LIMIT:
                self._by_value.clear()
            built = self._by_value[key] = self._build(cfg)
        oid = id(cfg)
        by_id = self._by_id

        def forget(ref: weakref.ref[C]) -> None:
            entry = by_id.get(oid)
            if entry is not None and entry[0] is ref:
                del by_id[oid]

        by_id[oid] = (weakref.ref(cfg, forget), built)
        return built


# --------------------------------------------------------------------------
# Configuration

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Locale = Literal["zh-CN", "en"]


class FaqEntry(BaseModel):
    """One question the bot can answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(
        default=None,
        description="Stable name of the entry (letters, digits, - _ .); default entry-1, entry-2...",
    )
    keywords: list[str] = Field(
        min_length=1, description="Any of these in a message asks this question."
    )
    answer: str | dict[Locale, str] = Field(description="The reply: one text, or one per locale.")
    cooldown_minutes: int | None = Field(
        default=None,
        ge=0,
        le=525_600,
        description="Overrides the playbook's cooldown for this entry.",
    )

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.match(value):
            raise ValueError(
                f"entry id {value!r} must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
            )
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = []
        for i, keyword in enumerate(value):
            k = keyword.strip()
            if not k:
                raise ValueError(f"keyword {i + 1} is empty; write a word or phrase, or delete it")
            if k not in cleaned:
                cleaned.append(k)
        return cleaned

    @field_validator("answer")
    @classmethod
    def _answer(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        texts = [value] if isinstance(value, str) else list(value.values())
        if not texts or not all(t.strip() for t in texts):
            raise ValueError("the answer is empty; write the text the bot should reply with")
        return value


class FaqConfig(PlaybookConfig):
    cooldown_minutes: int = Field(
        default=30,
        ge=0,
        le=525_600,
        description="Do not give the same entry's answer again in the same group within this many minutes.",
    )
    max_answers_per_message: int = Field(
        default=1,
        ge=1,
        le=10,
        description="A message matching several entries gets at most this many answers.",
    )
    case_sensitive: bool = Field(
        default=False, description="Match keywords with exact letter case."
    )
    reply: bool = Field(default=True, description="Send the answer as a reply to the question.")
    entries: list[FaqEntry] = Field(default_factory=list, description="The questions and answers.")

    @field_validator("entries")
    @classmethod
    def _entries(cls, value: list[FaqEntry], info: ValidationInfo) -> list[FaqEntry]:
        case_sensitive = bool(info.data.get("case_sensitive", False))
        out: list[FaqEntry] = []
        ids: dict[str, int] = {}
        owners: dict[str, tuple[str, str]] = {}
        problems: list[str] = []
        for i, entry in enumerate(value):
            eid = entry.id or f"entry-{i + 1}"
            if entry.id is None:
                entry = entry.model_copy(update={"id": eid})
            if eid in ids:
                problems.append(
                    f"entries {ids[eid] + 1} and {i + 1} both have the id {eid!r}; ids must be unique"
                )
            else:
                ids[eid] = i
            for keyword in entry.keywords:
                norm = normalize_text(keyword, case_sensitive=case_sensitive)
                owner = owners.get(norm)
                if owner is not None and owner[0] != eid:
                    problems.append(
                        f"keyword {keyword!r} of entry {eid!r} is already a keyword of entry {owner[0]!r}; "
                        "a keyword may answer only one entry"
                    )
                else:
                    owners.setdefault(norm, (eid, keyword))
            out.append(entry)
        if problems:
            raise ValueError("; ".join(problems))
        return out


# --------------------------------------------------------------------------
# The playbook


@dataclass(frozen=True, slots=True)
class _Compiled:
    index: KeywordIndex[int]
    entries: tuple[FaqEntry, ...]
    cooldowns: tuple[timedelta, ...]


def _compile(cfg: FaqConfig) -> _Compiled:
    return _Compiled(
        index=KeywordIndex(
            ((k, i) for i, e in enumerate(cfg.entries) for k in e.keywords),
            case_sensitive=cfg.case_sensitive,
        ),
        entries=tuple(cfg.entries),
        cooldowns=tuple(
            timedelta(
                minutes=e.cooldown_minutes
                if e.cooldown_minutes is not None
                else cfg.cooldown_minutes
            )
            for e in cfg.entries
        ),
    )


@dataclass(frozen=True, slots=True)
class _Knowledge:
    """The knowledge playbook's active entries of one community, compiled."""

    version: str
    index: KeywordIndex[int]
    ids: tuple[str, ...]
    answers: tuple[str, ...]


def _compile_knowledge(version: str, entries: Iterable[tuple[str, Any]], case_sensitive: bool) -> _Knowledge:
    active = [
        (key[2:], e)
        for key, e in entries
        if isinstance(e, dict) and e.get("active") and e.get("keywords") and str(e.get("answer") or "").strip()
    ]
    # newest first: when two entries share a keyword, the newer answer wins
    active.sort(key=lambda item: (str(item[1].get("ts") or ""), item[0]), reverse=True)
    return _Knowledge(
        version=version,
        index=KeywordIndex(
            ((str(k), i) for i, (_, e) in enumerate(active) for k in e["keywords"]),
            case_sensitive=case_sensitive,
        ),
        ids=tuple(f"kb-{eid}" for eid, _ in active),
        answers=tuple(str(e["answer"]) for _, e in active),
    )


#: Occurrences of one keyword looked at per message (a wall of repeats is not
#: read keyword by keyword).
_PER_KEYWORD = 8


class Faq(Playbook):
    id = "faq"
    config_model = FaqConfig
    handles = frozenset({"message"})
    emits = frozenset({"send"})
    summary: ClassVar[dict[str, str]] = {
        "zh-CN": "关键词知识库：消息里出现关键词时，自动回复整理好的答案。",
        "en": "Keyword knowledge base: replies with a curated answer when a message mentions a keyword.",
    }
    templates: ClassVar[dict[str, dict[str, str]]] = {
        "answer": {
            "zh-CN": "{answer}",
            "en": "{answer}",
        },
    }

    def __init__(self) -> None:
        self._compiled: ConfigCache[FaqConfig, _Compiled] = ConfigCache(_compile)
        # (community, case_sensitive) → the knowledge entries compiled at a version;
        # a cache, not state: a changed version in the store means a rebuild
        self._knowledge: dict[tuple[str, bool], _Knowledge] = {}

    def _knowledge_for(self, ctx: Context, cfg: FaqConfig) -> _Knowledge | None:
        """The knowledge playbook's active entries, if it runs in this group."""
        if "knowledge" not in ctx.group.playbooks:
            return None
        state = ctx.state_of("knowledge")
        version = state.get("version")
        if not version:
            return None
        key = (ctx.community.id, cfg.case_sensitive)
        found = self._knowledge.get(key)
        if found is None or found.version != version:
            found = _compile_knowledge(str(version), state.scan("k:"), cfg.case_sensitive)
            self._knowledge[key] = found
        return found if found.index.size else None

    @staticmethod
    def _is_knowledge_input(ctx: Context, text: str, reply_to: str | None) -> bool:
        """A message that captures or marks knowledge (it is not a question)."""
        kcfg = ctx.group.playbooks.get("knowledge")
        if kcfg is None:
            return False
        head = text[:64].lstrip().casefold()
        words = [*kcfg.capture_keywords, *(kcfg.mark_words if reply_to else ())]
        return any(head.startswith(w.casefold()) for w in words)

    def on_event(self, ctx: Context, event: Any) -> None:
        text: str = event.text
        if not text:
            return
        cfg: FaqConfig = ctx.config
        comp = self._compiled.get(cfg)
        knowledge = self._knowledge_for(ctx, cfg)
        if comp.index.size == 0 and knowledge is None:
            return
        if knowledge is not None and self._is_knowledge_input(ctx, text, event.reply_to):
            return
        indexes: list[tuple[KeywordIndex[int], int]] = [(comp.index, 0)]
        if knowledge is not None:
            indexes.append((knowledge.index, len(comp.entries)))
        chosen = self._select(indexes, comp.index.normalize(text), cfg.max_answers_per_message)
        if not chosen:
            return
        uid = event.actor.id
        when: datetime = event.ts
        configured = len(comp.entries)
        for index, keyword in chosen:
            if index >= configured:
                assert knowledge is not None
                eid = knowledge.ids[index - configured]
                cooldown = timedelta(minutes=cfg.cooldown_minutes)
                answer = knowledge.answers[index - configured]
            else:
                entry = comp.entries[index]
                eid = entry.id or f"entry-{index + 1}"
                cooldown = comp.cooldowns[index]
                answer = self._answer_text(entry, ctx.locale)
            key = f"cd:{ctx.group.platform}:{ctx.group.key}:{eid}"
            if cooldown:
                last = ctx.state.get(key)
                if last is not None and when < datetime.fromisoformat(last) + cooldown:
                    continue
                ctx.state.put(key, when.isoformat())
            ctx.send(
                ctx.render("answer", answer=answer, name=ctx.name(uid), keyword=keyword),
                reply_to=event.msg_id if cfg.reply else None,
            )
            ctx.record("answered", member=uid, entry=eid, keyword=keyword)

    @staticmethod
    def _select(
        indexes: list[tuple[KeywordIndex[int], int]], normalized: str, limit: int
    ) -> list[tuple[int, str]]:
        """Entries to answer, best first: longest keyword, then entry order.

        ``indexes`` are (automaton, offset of its entries): the configured
        entries, then the knowledge entries. A keyword found inside a longer
        keyword that was chosen (价格 inside 会员价格) does not answer a second
        entry.
        """
        hits: list[tuple[int, int, int, int, str]] = []
        for index_, offset in indexes:
            seen: dict[str, int] = {}
            for hit in index_.find(normalized):
                n = seen.get(hit.keyword, 0)
                if n >= _PER_KEYWORD:
                    continue
                seen[hit.keyword] = n + 1
                for index in hit.payloads:
                    hits.append((hit.start - hit.end, index + offset, hit.start, hit.end, hit.keyword))
        if not hits:
            return []
        hits.sort()
        chosen: list[tuple[int, str]] = []
        taken: list[tuple[int, int]] = []
        answered: set[int] = set()
        for _, index, start, end, keyword in hits:
            if index in answered or any(start < b and a < end for a, b in taken):
                continue
            answered.add(index)
            taken.append((start, end))
            chosen.append((index, keyword))
            if len(chosen) >= limit:
                break
        return chosen

    @staticmethod
    def _answer_text(entry: FaqEntry, locale: str) -> str:
        answer = entry.answer
        if isinstance(answer, str):
            return answer
        texts = cast(dict[str, str], answer)
        return texts.get(locale) or texts.get("en") or next(iter(texts.values()))
