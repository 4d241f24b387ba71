"""Expensive numbers and charts for console pages, memoised per community epoch.

Every write the engine makes for a community bumps the community's
``epoch``; an answer memoised under one epoch is reused until the next
write, so a page shows new data on the first request after it arrives and
costs nothing on the others::

    states = memo(page.state, cid, "lifecycle:states", lambda: lifecycle.group_states(conn, cid, day))
    svg = svg_chart(page.state, cid, f"activity:{page.lang}", lambda labels, lang: draw(...), page.lang)

One entry per (community, name) is kept: a new epoch replaces the old
answer, so the memo does not grow with the community's history; at most
:data:`MEMO_LIMIT` entries are kept, the least recently used leaving first. Two
requests that need the same answer at once compute it once (a lock per
entry): the overview's charts load in parallel and share their inputs.

Charts are drawn with the report's chart code (:mod:`qunyun.analytics.charts`,
matplotlib) as inline SVG with their words kept as text. Matplotlib's SVG
writer escapes every text it writes (a member name included), so the SVG
may be marked safe for the templates. Pyplot keeps global state: charts
are drawn one at a time.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from markupsafe import Markup

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from qunyun.console.web import ConsoleState

T = TypeVar("T")
log = logging.getLogger("qunyun.console")

#: pyplot's state (rcParams, current figure) is global: one chart at a time
_DRAWING = threading.Lock()
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def _lock(key: tuple[str, str]) -> threading.Lock:
    with _LOCKS_GUARD:
        found = _LOCKS.get(key)
        if found is None:
            found = _LOCKS[key] = threading.Lock()
        return found


def memo(state: ConsoleState, community: str, name: str, build: Callable[[], T]) -> T:
    """``build()``'s answer for ``community`` under its current epoch (computed once per epoch).

    The epoch is read before building: data written while the answer is
    being computed bumps it, and the next request computes again.

    With ``state.stale_for`` set (``qunyun console`` sets 5 minutes), an
    answer from an older epoch that is younger than that is served at once
    while a fresh one is computed in the background: a live community writes
    with every message, and its dashboards should not wait for a full
    recomputation on each view. The page shows the time its numbers are of.
    """
    epoch = state.epoch(community)
    key = (community, name)
    hit = state.memo.get(key)
    if hit is not None and hit[0] == epoch:
        _touch(state, key, hit)
        return hit[1]  # type: ignore[no-any-return]
    if hit is not None and state.stale_for and state.clock.now() - hit[2] <= state.stale_for:
        _refresh(state, key, epoch, build)
        return hit[1]  # type: ignore[no-any-return]
    with _lock(key):
        hit = state.memo.get(key)
        if hit is not None and hit[0] == epoch:
            return hit[1]  # type: ignore[no-any-return]
        value = build()
        _store(state, key, (epoch, value, state.clock.now()))
        return value


#: answers kept at most (least recently used go first): a group's chart is memoised
#: per group, and a community may have thousands
MEMO_LIMIT = 400


def _touch(state: ConsoleState, key: tuple[str, str], hit: Any) -> None:
    """Mark ``key`` as just used (the dict's order is the order of use)."""
    state.memo.pop(key, None)
    state.memo[key] = hit


def _store(state: ConsoleState, key: tuple[str, str], entry: Any) -> None:
    state.memo.pop(key, None)
    state.memo[key] = entry
    while len(state.memo) > MEMO_LIMIT:
        try:
            state.memo.pop(next(iter(state.memo)), None)
        except (StopIteration, RuntimeError):  # emptied or resized by another thread meanwhile
            break


def _refresh(state: ConsoleState, key: tuple[str, str], epoch: int, build: Callable[[], Any]) -> None:
    """Recompute ``key`` in a background thread unless that is already under way."""
    lock = _lock(key)
    if not lock.acquire(blocking=False):
        return

    def run() -> None:
        try:
            value = build()
            _store(state, key, (epoch, value, state.clock.now()))
        except Exception:  # the stale answer stays; the next request tries again
            log.exception("console: refreshing %s failed", key)
        finally:
            lock.release()

    threading.Thread(target=run, name=f"refresh-{key[1]}", daemon=True).start()


def peek(state: ConsoleState, community: str, name: str) -> Any | None:
    """The memoised answer if it is current (or servable stale), else None (nothing is computed)."""
    hit = state.memo.get((community, name))
    if hit is None:
        return None
    if hit[0] == state.epoch(community):
        return hit[1]
    if state.stale_for and state.clock.now() - hit[2] <= state.stale_for:
        return hit[1]
    return None


def draw_svg(draw: Callable[[dict[str, str], str], Figure], lang: str, salt: str = "") -> Markup:
    """Draw one figure with the report's fonts and labels in ``lang``; its inline SVG.

    ``draw(labels, lang)`` returns a matplotlib figure; ``labels`` are the
    report's chart words (:data:`qunyun.analytics.charts.LABELS`) in ``lang``.
    ``salt`` keeps the SVG's internal ids distinct between charts of one page.
    """
    import matplotlib.pyplot as plt

    from qunyun.analytics import charts as ach

    lang = lang if lang in ach.LABELS else "en"
    with _DRAWING, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-glyph warnings while laying out SVG text
        ach._setup(lang)
        plt.rcParams["svg.hashsalt"] = salt or None
        fig = draw(ach.LABELS[lang], lang)
        try:
            svg = ach._svg(fig)
        finally:
            plt.close(fig)
    # matplotlib escapes every text it writes into the SVG (names included)
    return Markup(svg)


def svg_chart(
    state: ConsoleState, community: str, name: str, lang: str, draw: Callable[[dict[str, str], str], Figure]
) -> Markup:
    """A chart as inline SVG, memoised per (community, epoch, ``name``, ``lang``)."""
    return memo(state, community, f"svg:{name}:{lang}", lambda: draw_svg(draw, lang, salt=name))


__all__ = ["draw_svg", "memo", "peek", "svg_chart"]
