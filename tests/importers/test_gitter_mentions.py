"""Gitter mentions: a name glued to the next word is still that person, not a new member."""

from __future__ import annotations

from pathlib import Path

from qunyun.core.events import BaseEvent
from qunyun.importers import FORMATS
from qunyun.importers.gitter import known_names, resolve_mentions

LOG = """\
[2016-01-04 10:00:00] <alice> hi all, docker question
[2016-01-04 10:01:00] <bob> @alicethanks for asking, @alice: I had that too
[2016-01-04 10:02:00] <alice> @bob, great.@bobI tried it, @carol what do you think?
[2016-01-04 10:03:00] <bob> @carolyour setup is fine, see https://medium.com/@writer/post and mail me@example.org
[2016-01-04 10:04:00] <alice> @all please read the FAQ; @channel too
[2016-01-04 10:05:00] <bob> @dave_99
"""


def _events(tmp_path: Path) -> list[BaseEvent]:
    path = tmp_path / "room.txt"
    path.write_text(LOG, encoding="utf-8")
    return [e for e in FORMATS["gitter"]().read(path) if isinstance(e, BaseEvent)]


def test_glued_and_punctuated_mentions_resolve_to_known_names(tmp_path: Path) -> None:
    events = _events(tmp_path)
    assert [e.mentions for e in events] == [
        [],
        ["alice"],  # "@alicethanks" and "@alice:" are alice
        ["bob", "carol"],  # "@bob," and "@bobI"; carol never wrote but is mentioned with a clean end
        ["carol"],  # "@carolyour" is carol; "/@writer" in a link and "me@example.org" are not mentions
        [],  # room-wide mentions are not people
        ["dave_99"],  # a handle at the end of a message
    ]
    people = {e.actor.id for e in events} | {m for e in events for m in e.mentions}
    assert people == {"alice", "bob", "carol", "dave_99"}


def test_known_names_and_resolution() -> None:
    known = known_names(iter(LOG.splitlines(keepends=True)))
    assert known == {"alice", "bob", "carol", "dave_99"}
    from qunyun.importers.gitter import _by_prefix

    prefixes = _by_prefix(known)
    assert resolve_mentions("@bobby? @carolina @alice", known, prefixes) == ["bob", "carol", "alice"]
    assert resolve_mentions("@zed hello", known, prefixes) == []
