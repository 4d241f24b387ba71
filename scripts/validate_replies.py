"""Agreement of qunyun's reply linking with human annotations (#ubuntu, Kummerfeld et al. 2019).

    python scripts/validate_replies.py [DATA_DIR] [--rules reply,mention,back,continue]

For every ``*.raw.txt`` with its ``*.annotation.txt`` it links the messages
with :func:`qunyun.analytics.replies.link_replies` and compares, on the
annotated stretch of each file (the lines the annotation covers, from its
first child line on), with the human links:

* link precision / recall: a predicted link (child → parent) is right when
  the annotators drew the same link; annotators sometimes give a message
  two parents, and a match with either counts;
* per rule: how many links each rule made and how many were right;
* questions: answered or not (the human links vs ours), and the median
  minutes to the first answer both ways.

It also prints each rule left out in turn (ablation). The figures are what
``docs/analytics-validation.md`` reports.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from qunyun.analytics.replies import (
    RULES,
    ChatMessage,
    Link,
    find_questions,
    link_replies,
    read_irc,
    read_irc_annotation,
)

DEFAULT_DIR = Path("/work/shared/data/irc-ubuntu")


@dataclass
class Tally:
    predicted: int = 0
    correct: int = 0
    gold: int = 0
    found: int = 0
    by_rule: dict[str, list[int]] = field(default_factory=dict)
    q_total: int = 0
    q_agree: int = 0
    q_gold_answered: int = 0
    q_ours_answered: int = 0
    q_both: int = 0
    gold_minutes: list[float] = field(default_factory=list)
    our_minutes: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("predicted", "correct", "gold", "found", "q_total", "q_agree",
                     "q_gold_answered", "q_ours_answered", "q_both"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for rule, (n, ok) in other.by_rule.items():
            mine = self.by_rule.setdefault(rule, [0, 0])
            mine[0] += n
            mine[1] += ok
        self.gold_minutes += other.gold_minutes
        self.our_minutes += other.our_minutes

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def day_of(path: Path) -> date:
    return date.fromisoformat(path.name[:10])


def evaluate_file(raw: Path, annotation: Path, rules: tuple[str, ...] = RULES) -> Tally:
    """Compare our links with the annotators' on one file's annotated stretch."""
    lines = raw.read_text(encoding="utf-8", errors="replace").splitlines()
    ann_lines = annotation.read_text(encoding="utf-8").splitlines()
    gold = read_irc_annotation(ann_lines)
    covered = {int(x.split()[1]) for x in ann_lines if len(x.split()) >= 2}
    first = min(covered)
    messages = read_irc(lines, day_of(raw))
    is_message = {int(msg.key) for msg in messages}
    links = link_replies(messages, rules=rules)
    t = Tally()
    gold_msgs = {(c, p) for c, p in gold if c in is_message and p in is_message}
    t.gold = len(gold_msgs)
    for link in links:
        child, parent = int(link.child), int(link.parent)
        if child < first:
            continue
        ok = (child, parent) in gold_msgs
        t.predicted += 1
        t.correct += ok
        rule = t.by_rule.setdefault(link.how, [0, 0])
        rule[0] += 1
        rule[1] += ok
    predicted = {(int(x.child), int(x.parent)) for x in links}
    t.found = len(gold_msgs & predicted)
    _questions(t, messages, gold_msgs, links, first)
    return t


def _questions(
    t: Tally, messages: list[ChatMessage], gold: set[tuple[int, int]], links: list[Link], first: int
) -> None:
    gold_links = [Link(str(c), str(p), "human") for c, p in sorted(gold)]
    ours = {q.key: q for q in find_questions(messages, links)}
    theirs = {q.key: q for q in find_questions(messages, gold_links)}
    for key, q in ours.items():
        if int(key) < first:
            continue
        h = theirs[key]
        a, b = h.first_answer is not None, q.first_answer is not None
        t.q_total += 1
        t.q_agree += a == b
        t.q_gold_answered += a
        t.q_ours_answered += b
        t.q_both += a and b
        if h.minutes_to_answer is not None:
            t.gold_minutes.append(h.minutes_to_answer)
        if q.minutes_to_answer is not None:
            t.our_minutes.append(q.minutes_to_answer)


def evaluate(data_dir: Path, rules: tuple[str, ...] = RULES) -> tuple[Tally, list[tuple[str, Tally]]]:
    total = Tally()
    per_file = []
    for raw in sorted(data_dir.glob("*.raw.txt")):
        annotation = raw.with_name(raw.name.replace(".raw.txt", ".annotation.txt"))
        if not annotation.exists():
            continue
        t = evaluate_file(raw, annotation, rules)
        per_file.append((raw.name, t))
        total.add(t)
    return total, per_file


def _median(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f}" if xs else "-"


def _mean(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.1f}" if xs else "-"


def _within(xs: list[float], limit: float) -> str:
    return f"{sum(x <= limit for x in xs) / len(xs):.1%}" if xs else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated, in order")
    args = parser.parse_args(argv)
    rules = tuple(r for r in args.rules.split(",") if r)
    total, per_file = evaluate(args.data_dir, rules)
    if not per_file:
        print(f"no *.raw.txt with an annotation in {args.data_dir}", file=sys.stderr)
        return 2
    print(f"rules: {', '.join(rules)}")
    print(f"{'file':<34} {'pred':>5} {'gold':>5} {'prec':>6} {'recall':>6} {'F1':>6}")
    for name, t in per_file:
        print(f"{name:<34} {t.predicted:>5} {t.gold:>5} {t.precision:>6.3f} {t.recall:>6.3f} {t.f1:>6.3f}")
    print(f"{'all':<34} {total.predicted:>5} {total.gold:>5} {total.precision:>6.3f} "
          f"{total.recall:>6.3f} {total.f1:>6.3f}")
    print("\nby rule (links made, right, precision):")
    for rule in rules:
        n, ok = total.by_rule.get(rule, [0, 0])
        print(f"  {rule:<9} {n:>5} {ok:>5} {ok / n if n else 0:>6.3f}")
    q = total
    print(f"\nquestions (annotated stretch): {q.q_total}")
    print(f"  answered per annotators: {q.q_gold_answered} ({q.q_gold_answered / max(1, q.q_total):.1%})")
    print(f"  answered per qunyun:     {q.q_ours_answered} ({q.q_ours_answered / max(1, q.q_total):.1%})")
    print(f"  agreement answered/unanswered: {q.q_agree / max(1, q.q_total):.1%}")
    print(f"  answered-precision {q.q_both / max(1, q.q_ours_answered):.3f}, "
          f"answered-recall {q.q_both / max(1, q.q_gold_answered):.3f}")
    print(f"  median minutes to first answer: annotators {_median(q.gold_minutes)}, "
          f"qunyun {_median(q.our_minutes)} (the log has minutes only)")
    print(f"  mean minutes to first answer:   annotators {_mean(q.gold_minutes)}, qunyun {_mean(q.our_minutes)}")
    for limit in (1, 5):
        print(f"  first answer within {limit} min: annotators {_within(q.gold_minutes, limit)}, "
              f"qunyun {_within(q.our_minutes, limit)}")
    if len(rules) > 1:
        print("\nablation (one rule left out):")
        for rule in rules:
            rest = tuple(r for r in rules if r != rule)
            t, _ = evaluate(args.data_dir, rest)
            print(f"  without {rule:<9} precision {t.precision:.3f} recall {t.recall:.3f} F1 {t.f1:.3f}")
        for baseline in (("continue",), ("mention",)):
            t, _ = evaluate(args.data_dir, baseline)
            print(f"  only {baseline[0]:<12} precision {t.precision:.3f} recall {t.recall:.3f} F1 {t.f1:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
