"""Fit and check the early-warning score on simulated groups with known outcomes.

    python scripts/validate_early_warning.py [--groups 240] [--seed 1] [--db sqlite:///ew.db]

1. Simulates ``--groups`` one-group communities with the ``sim`` adapter,
   each with its own size (8-150 members), vitality (how much everyone
   talks, checks in and introduces themselves: a factor between 0.001 and
   0.5, log-uniform), fade (how fast interest wears off: the persona's daily
   decay raised to a power between 1 and 40) and the day newcomers stop
   arriving (1-31). Vitality shows in the first week; fade and the end of
   arrivals mostly show later, so the first week cannot tell everything:
   that is the point.
2. Runs every event through the real engine (no playbooks) into one
   database, as groups of one community, all born the same day.
3. Reads, **through qunyun.analytics.lifecycle on that database**, each
   group's first-week features (as of day 7) and its state on day 30: the
   outcome is "died" when the state is silent or dead.
4. Fits a logistic regression on a training split (70%) by gradient
   descent, and reports on the held-out 30%: AUC, accuracy and the
   precision/recall of warnings (risk ≥ 0.5), for the fitted weights, for
   the weights shipped in ``lifecycle.py`` and for one-feature baselines.
5. On real data: the lifecycle states, month by month, of the two Gitter
   rooms in ``/work/shared/data/gitter`` (the only rooms we have; they are
   not observed from their first day, so the early warning cannot be
   validated on them — only the state rule can be looked at).

Prints the weights to paste into ``lifecycle.py`` and every number
``docs/analytics-lifecycle.md`` quotes.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from qunyun.adapters.sim import Simulation
from qunyun.analytics import lifecycle as L
from qunyun.config.model import settings_from_text
from qunyun.core.clock import FakeClock
from qunyun.core.events import parse_event
from qunyun.engine.engine import Engine
from qunyun.store.db import migrate, open_engine
from qunyun.testing.harness import community_config

START = date(2026, 11, 2)
DAYS = 31
FEATURES = ("log_size", "growth", "active_ratio", "concentration", "cascade_depth")
GITTER = Path("/work/shared/data/gitter")


# ---------------------------------------------------------------- simulate


def simulate_group(index: int, rng: random.Random) -> tuple[str, list[Any], dict[str, float]]:
    members = round(math.exp(rng.uniform(math.log(8), math.log(150))))
    vitality = math.exp(rng.uniform(math.log(0.001), math.log(0.5)))
    fade = rng.uniform(1.0, 40.0)
    closes = rng.randint(1, DAYS)
    sim = Simulation(seed=10_000 + index, groups=1, members=members, days=DAYS, start=START)
    for mem in sim.members:
        t = mem.traits
        t.talk *= vitality
        t.checkin *= vitality
        t.intro_welcomed *= vitality
        t.intro_unprompted *= vitality
        t.decay = t.decay**fade
    # Nobody new arrives from day `closes` on (no more posters, no more invitations).
    # The simulator has no public knob for this; its arrival plan is trimmed here.
    plan = sim._joins_by_day
    for day in [d for d in plan if d >= closes]:
        del plan[day]
    key = f"g-{index:04d}"
    prefix = f"s{index}-"
    # Spammers post every day whatever happens; with no moderation playbook
    # running they would keep every group "alive". They are left out.
    spammers = {mem.uid for mem in sim.members if mem.persona == "spammer"}
    events = []
    for e in sim.events():
        if e.actor.id in spammers:
            continue
        d = e.model_dump(mode="json")
        d["id"] = prefix + d["id"]
        d["group"] = key
        d["actor"]["id"] = prefix + d["actor"]["id"]
        for field in ("inviter", "by"):
            if d.get(field) and d[field] != "qunyun-bot":
                d[field] = prefix + d[field]
        if d.get("mentions"):
            d["mentions"] = [prefix + u for u in d["mentions"]]
        events.append(parse_event(d))
    return key, events, {"members": members, "vitality": vitality, "fade": fade, "closes": closes}


def build(db_url: str, n: int, seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    params: dict[str, dict[str, float]] = {}
    events: list[Any] = []
    for i in range(n):
        key, evs, p = simulate_group(i, rng)
        params[key] = p
        events.extend(evs)
    events.sort(key=lambda e: e.ts)
    text = community_config({}, groups=list(params), timezone="Asia/Shanghai")
    settings = settings_from_text(text.replace("id: test", "id: ew", 1), "<early warning>")
    db = open_engine(db_url)
    migrate(db)
    engine = Engine(db, settings, clock=FakeClock(events[0].ts))
    engine.setup_groups()
    for i in range(0, len(events), 2000):
        engine.handle_many(events[i : i + 2000])
    print(f"simulated {n} groups, {len(events):,} events")
    db.dispose()
    return params


# --------------------------------------------------------------- the model


def design(f: L.EarlyFeatures) -> list[float]:
    x = L._design(f)
    return [x[k] for k in FEATURES]


def fit(xs: Sequence[Sequence[float]], ys: Sequence[int], l2: float = 0.01, steps: int = 4000) -> tuple[float, list[float]]:
    """Logistic regression by full-batch gradient descent on standardised features."""
    k = len(xs[0])
    mean = [sum(x[j] for x in xs) / len(xs) for j in range(k)]
    sd = [max(1e-9, math.sqrt(sum((x[j] - mean[j]) ** 2 for x in xs) / len(xs))) for j in range(k)]
    zs = [[(x[j] - mean[j]) / sd[j] for j in range(k)] for x in xs]
    b, w = 0.0, [0.0] * k
    lr = 0.5
    for _ in range(steps):
        gb, gw = 0.0, [0.0] * k
        for z, y in zip(zs, ys, strict=True):
            p = 1 / (1 + math.exp(-(b + sum(wj * zj for wj, zj in zip(w, z, strict=True)))))
            gb += p - y
            for j in range(k):
                gw[j] += (p - y) * z[j]
        b -= lr * gb / len(zs)
        w = [w[j] - lr * (gw[j] / len(zs) + l2 * w[j]) for j in range(k)]
    # back to raw units
    raw_w = [w[j] / sd[j] for j in range(k)]
    raw_b = b - sum(w[j] * mean[j] / sd[j] for j in range(k))
    return raw_b, raw_w


def auc(scores: Sequence[float], ys: Sequence[int]) -> float:
    pos = [s for s, y in zip(scores, ys, strict=True) if y]
    neg = [s for s, y in zip(scores, ys, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def report(name: str, scores: Sequence[float], ys: Sequence[int]) -> None:
    flags = [s >= L.WARN_AT for s in scores]
    tp = sum(f and y for f, y in zip(flags, ys, strict=True))
    fp = sum(f and not y for f, y in zip(flags, ys, strict=True))
    fn = sum((not f) and y for f, y in zip(flags, ys, strict=True))
    acc = sum(f == bool(y) for f, y in zip(flags, ys, strict=True)) / len(ys)
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    print(f"  {name:<34} AUC {auc(scores, ys):.3f}  accuracy {acc:.3f}  "
          f"warning precision {prec:.3f} recall {rec:.3f}")


# ------------------------------------------------------------------ gitter


def gitter_states(path: Path) -> None:
    line = re.compile(r"^\[(\d{4}-\d\d-\d\d) \d\d:\d\d:\d\d\] <([^>]+)>")
    by_day: dict[date, set[str]] = defaultdict(set)
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        hit = line.match(raw)
        if hit:
            by_day[date.fromisoformat(hit.group(1))].add(hit.group(2))
    born, end = min(by_day), max(by_day)
    counts: Counter[str] = Counter()
    by_year: dict[int, Counter[str]] = defaultdict(Counter)
    d = born + timedelta(days=28)
    while d <= end:
        state, _ = L.classify(d, born, by_day.keys(), by_day, members=1)
        counts[state] += 1
        by_year[d.year][state] += 1
        d += timedelta(days=1)
    total = sum(counts.values())
    shares = ", ".join(f"{s} {counts[s] / total:.1%}" for s in L.STATES)
    print(f"  {path.name}: {born} → {end}, {len(by_day)} days with messages; days by state: {shares}")
    for year, c in sorted(by_year.items()):
        t = sum(c.values())
        print(f"    {year}: " + ", ".join(f"{s} {c[s] / t:.0%}" for s in L.STATES))


# -------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=240)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'ew.db'}"
        params = build(url, args.groups, args.seed)
        db = open_engine(url)
        with db.connect() as conn:
            risks = {r.group_key: r for r in L.young_group_risks(conn, "ew", START + timedelta(days=L.EARLY_DAYS))}
            at7 = {g.group_key: g.state for g in L.group_states(conn, "ew", START + timedelta(days=7))}
            at30 = {g.group_key: g.state for g in L.group_states(conn, "ew", START + timedelta(days=30))}
            curve = L.survival_curve(conn, "ew", START + timedelta(days=30))
        db.dispose()
    keys = sorted(params)
    missing = [k for k in keys if k not in risks]
    if missing:
        print(f"groups without first-week features: {missing}", file=sys.stderr)
        return 2
    ys = [int(at30[k] in ("silent", "dead")) for k in keys]
    print(f"outcome at day 30: {sum(ys)} of {len(ys)} died (silent or dead): "
          + ", ".join(f"{s} {sum(1 for k in keys if at30[k] == s)}" for s in L.STATES))
    print("states at day 7: " + ", ".join(f"{s} {sum(1 for k in keys if at7[k] == s)}" for s in L.STATES))
    print(f"survival of the simulated groups: alive at 7 days {curve.at7:.1%}, at 30 days {curve.at30:.1%} "
          f"(base rates: {1 - L.BASE_SILENT_WITHIN_WEEK:.0%} and {L.BASE_ALIVE_AFTER_MONTH:.0%})")
    xs = [design(risks[k].features) for k in keys]
    order = list(range(len(keys)))
    random.Random(args.seed + 1).shuffle(order)
    cut = int(0.7 * len(order))
    train, test = order[:cut], order[cut:]
    b, w = fit([xs[i] for i in train], [ys[i] for i in train])
    print(f"train {len(train)} groups ({sum(ys[i] for i in train)} died: MODEL_TRAINING_DIED), "
          f"test {len(test)} groups ({sum(ys[i] for i in test)} died)")
    alive_train = [xs[i] for i in train if not ys[i]]
    ref = [sum(x[j] for x in alive_train) / max(1, len(alive_train)) for j in range(len(FEATURES))]
    print("\nfitted (paste into lifecycle.py):")
    print(f"MODEL_INTERCEPT = {b:.4f}")
    print("MODEL_WEIGHTS = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in zip(FEATURES, w, strict=True)) + "}")
    print("MODEL_REFERENCE = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in zip(FEATURES, ref, strict=True)) + "}")

    def scores(intercept: float, weights: Sequence[float], idx: Sequence[int]) -> list[float]:
        return [1 / (1 + math.exp(-(intercept + sum(a * c for a, c in zip(weights, xs[i], strict=True))))) for i in idx]

    yt = [ys[i] for i in test]
    print("\nheld-out groups:")
    report("fitted now", scores(b, w, test), yt)
    def shipped_scores(idx: Sequence[int]) -> list[float]:
        return [L.risk_of(risks[keys[i]].features)[0] for i in idx]

    report("shipped in lifecycle.py", shipped_scores(test), yt)
    for j, name in enumerate(FEATURES):
        bj, wj = fit([[xs[i][j]] for i in train], [ys[i] for i in train])
        report(f"only {name}", [1 / (1 + math.exp(-(bj + wj[0] * xs[i][j]))) for i in test], yt)
    report("always 'will die' (base rate)", [1.0] * len(test), yt)
    talking = [i for i in test if at7[keys[i]] != "silent"]
    report(f"fitted, {len(talking)} not yet silent at day 7", scores(b, w, talking), [ys[i] for i in talking])
    folds = 5
    aucs = []
    for f in range(folds):
        held = order[f::folds]
        rest = [i for i in order if i not in set(held)]
        bf, wf = fit([xs[i] for i in rest], [ys[i] for i in rest], steps=1500)
        aucs.append(auc(scores(bf, wf, held), [ys[i] for i in held]))
    print(f"  {folds}-fold cross-validated AUC: mean {sum(aucs) / folds:.3f}, "
          f"min {min(aucs):.3f}, max {max(aucs):.3f}")
    report("shipped, on all groups of this run", shipped_scores(order), [ys[i] for i in order])
    talking = [i for i in order if at7[keys[i]] != "silent"]
    report(f"shipped, {len(talking)} not yet silent at day 7", shipped_scores(talking), [ys[i] for i in talking])
    raw = [1 / (1 + math.exp(-(math.log(s / (1 - s)) - L.PRIOR_SHIFT))) for s in shipped_scores(order)]
    report("shipped without the prior shift", raw, [ys[i] for i in order])
    spec = [L.at_base_rate(s) for s in shipped_scores(order)]
    report("shipped, at the SPEC's 70% base rate", spec, [ys[i] for i in order])
    flagged = sum(1 for k in keys if risks[k].score >= L.WARN_AT)
    print(f"\nearly_warning() with the shipped model flags {flagged} of {len(keys)} groups at day 7")
    print("\nreal data (Gitter rooms, state rule only):")
    for name in ("gitter.txt", "docker.txt"):
        if (GITTER / name).exists():
            gitter_states(GITTER / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
