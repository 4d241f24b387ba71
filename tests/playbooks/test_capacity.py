"""capacity: the live join link routes newcomers to groups with room."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import yaml

import qunyun.playbooks.profile as profile
from qunyun.core.errors import CommandError, ConfigError
from qunyun.testing import Chat

Make = Callable[..., Chat]


def config(
    capacity: dict[str, Any] | None = None,
    *,
    groups: Sequence[tuple[str, int]] = (("g-entry", 500), ("g-a", 4), ("g-b", 4)),
    locale: str = "zh-CN",
) -> str:
    """A community whose join link lives in g-entry, with an admins' group."""
    settings = {"entry_group": "g-entry", "full_at": 0.75, **(capacity or {})}
    doc = {
        "communities": [
            {
                "id": "test",
                "name": "测试社群",
                "timezone": "Asia/Shanghai",
                "locale": locale,
                "roles": {"admin": ["boss"]},
                "groups": [
                    *({"id": key, "name": f"{key} 群", "capacity": cap} for key, cap in groups),
                    {"id": "g-admin", "admin": True},
                ],
                "playbooks": {"capacity": settings},
            }
        ]
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def request(chat: Chat, uid: str, **fields: Any) -> None:
    chat.event("join_request", uid, group="g-entry", answers={"why": "学习"}, **fields)


def invites(chat: Chat) -> list[tuple[str, str]]:
    """(member, group) of new invite actions; consumes the new actions."""
    return [(a["member"], a["group"]) for a in chat.take() if a["type"] == "invite"]


def exported_by(chat: Chat, uid: str) -> dict[str, Any]:
    out = chat.engine.export_member("test", "sim", uid)
    return dict(out.get("playbooks", out).get("capacity") or {})


def status(chat: Chat, tag: str) -> dict[str, Any]:
    return chat.command("capacity", "status", id=f"status-{tag}")


def rows(chat: Chat, tag: str) -> dict[str, tuple[int, int, int]]:
    """group → (members, held, room)."""
    return {r["group"]: (r["members"], r["held"], r["room"]) for r in status(chat, tag)["groups"]}


# ------------------------------------------------------------------ routing


def test_newcomers_fill_groups_in_order(make_chat: Make) -> None:
    chat = make_chat(config())  # capacity 4 × 0.75: three places each
    request(chat, "n1")
    sent = chat.assert_sent(playbook="capacity", count=2)
    assert [(a["type"], a["group"], a["member"]) for a in sent] == [
        ("invite", "g-a", "n1"),
        ("direct", "g-entry", "n1"),
    ]
    assert "g-a 群" in sent[1]["text"]
    request(chat, "n2")
    request(chat, "n3")
    request(chat, "n4")  # g-a has three places held now
    assert invites(chat) == [("n2", "g-a"), ("n3", "g-a"), ("n4", "g-b")]
    assert rows(chat, "1") == {"g-a": (0, 3, 0), "g-b": (0, 1, 2)}
    # they accept: the held places become memberships
    for uid in ("n1", "n2", "n3"):
        chat.join(uid, group="g-a", via="invite")
    chat.join("n4", group="g-b", via="invite")
    chat.assert_nothing_sent()
    assert rows(chat, "2") == {"g-a": (3, 0, 0), "g-b": (1, 0, 2)}
    assert [r["member"] for r in chat.records("capacity", "routed")] == ["n1", "n2", "n3", "n4"]


def test_full_groups_are_skipped_and_a_leave_frees_a_place(make_chat: Make) -> None:
    chat = make_chat(config({"full_at": 1.0}, groups=(("g-entry", 500), ("g-a", 2), ("g-b", 3))))
    for uid in ("a1", "a2"):
        chat.join(uid, group="g-a", via="invite")
    chat.join("b1", group="g-b", via="invite")
    request(chat, "n1")
    assert invites(chat) == [("n1", "g-b")]
    chat.leave("a1", group="g-a")
    chat.assert_nothing_sent()  # nobody waiting: a freed place is just room
    request(chat, "n2")
    assert invites(chat) == [("n2", "g-a")]
    assert status(chat, "x")["next"] == "g-b"


def test_a_join_through_the_link_is_routed_but_other_joins_are_not(make_chat: Make) -> None:
    chat = make_chat(config())
    chat.join("n1", group="g-entry", via="qr")
    assert invites(chat) == [("n1", "g-a")]
    chat.join("n2", group="g-entry", via="invite")  # someone added them by hand
    chat.join("boss", group="g-entry", via="link")  # the team is not routed
    chat.join("n3", group="g-a", via="link")  # not the entry group
    assert invites(chat) == []


def test_a_newcomer_asking_again_is_invited_once(make_chat: Make) -> None:
    chat = make_chat(config())
    for _ in range(5):
        request(chat, "n1")
    assert invites(chat) == [("n1", "g-a")]
    assert rows(chat, "held")["g-a"] == (0, 1, 2)
    # a member already in a routed group is not routed again
    chat.join("m1", group="g-b", via="invite")
    request(chat, "m1")
    chat.assert_nothing_sent()
    assert chat.command("capacity", "route", member="m1")["status"] == "already a member"


def test_an_unused_invitation_gives_its_place_back(make_chat: Make) -> None:
    chat = make_chat(config({"hold_hours": 24}))
    request(chat, "n1")
    assert rows(chat, "before")["g-a"] == (0, 1, 2)
    chat.advance(hours=25)
    assert rows(chat, "after")["g-a"] == (0, 0, 3)


def test_members_before_counts_until_they_are_seen_leaving(make_chat: Make) -> None:
    chat = make_chat(
        config({"full_at": 1.0, "groups": [{"group": "g-a", "capacity": 3, "members_before": 2}, {"group": "g-b"}]})
    )
    assert rows(chat, "0") == {"g-a": (2, 0, 1), "g-b": (0, 0, 4)}
    chat.leave("old1", group="g-a")  # joined before qunyun: now seen leaving
    assert rows(chat, "1")["g-a"] == (1, 0, 2)


def test_the_full_at_line_rounds_up_to_whole_people(make_chat: Make) -> None:
    chat = make_chat(config({"full_at": 0.95}, groups=(("g-entry", 10), ("g-a", 500), ("g-b", 3))))
    table = {r["group"]: r["limit"] for r in status(chat, "limits")["groups"]}
    assert table == {"g-a": 475, "g-b": 3}


# --------------------------------------------------------------- tags/city


@pytest.fixture
def profiles(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Stands in for the profile playbook's ``tags_of`` (what newcomers told us)."""
    known: dict[str, set[str]] = {}
    monkeypatch.setattr(profile, "tags_of", lambda ctx, uid: set(known.get(uid, set())), raising=False)
    return known


def test_newcomers_go_to_the_group_of_their_city_or_tags(make_chat: Make, profiles: dict[str, set[str]]) -> None:
    profiles.update({"sh": {"city:上海"}, "py": {"python", "city:北京"}, "bj": {"city:北京"}})
    chat = make_chat(
        config(
            {
                "groups": [
                    {"group": "g-a"},
                    {"group": "g-b", "city": "上海"},
                    {"group": "g-c", "tags": ["Python"], "exclusive": True},
                ]
            },
            groups=(("g-entry", 500), ("g-a", 40), ("g-b", 40), ("g-c", 40)),
        )
    )
    request(chat, "sh")
    request(chat, "py")
    request(chat, "bj")
    request(chat, "nobody")  # no profile: by order only, never into an exclusive group
    assert invites(chat) == [("sh", "g-b"), ("py", "g-c"), ("bj", "g-a"), ("nobody", "g-a")]
    table = status(chat, "rules")["groups"]
    assert [(r["group"], r["city"], r["tags"], r["exclusive"]) for r in table] == [
        ("g-a", None, [], False),
        ("g-b", "上海", [], False),
        ("g-c", None, ["python"], True),
    ]


def test_a_preferred_group_that_is_full_falls_back_to_order(make_chat: Make, profiles: dict[str, set[str]]) -> None:
    profiles.update({"sh1": {"city:上海"}, "sh2": {"city:上海"}})
    chat = make_chat(
        config({"full_at": 1.0, "groups": [{"group": "g-a"}, {"group": "g-b", "city": "上海", "capacity": 1}]})
    )
    request(chat, "sh1")
    request(chat, "sh2")
    assert invites(chat) == [("sh1", "g-b"), ("sh2", "g-a")]


def test_routing_by_order_when_the_profile_knows_nothing(make_chat: Make) -> None:
    # whatever the profile playbook says about a stranger, an empty answer means order only
    chat = make_chat(config({"groups": [{"group": "g-b", "city": "上海"}, {"group": "g-a"}]}))
    request(chat, "n1")
    assert invites(chat) == [("n1", "g-b")]


# ------------------------------------------------------------ all are full


def test_all_full_asks_for_one_new_group_and_waits(make_chat: Make, db_url: str) -> None:
    small = (("g-entry", 500), ("g-a", 1), ("g-b", 1))
    chat = make_chat(config({"full_at": 1.0, "template": "study-group"}, groups=small))
    request(chat, "n1", id="r1")
    request(chat, "n2", id="r2")
    assert invites(chat) == [("n1", "g-a"), ("n2", "g-b")]
    chat.join("n1", group="g-a", via="invite")
    chat.join("n2", group="g-b", via="invite")
    request(chat, "n3", id="r3")
    sent = chat.take()
    assert [(a["type"], a.get("template")) for a in sent] == [("direct", None), ("create_group", "study-group")]
    assert "满" in sent[0]["text"] and sent[0]["member"] == "n3"
    for i in range(4, 8):
        request(chat, f"n{i}", id=f"r{i}")
    assert [a["type"] for a in chat.take()] == ["direct"] * 4  # no second create_group
    st = status(chat, "full")
    assert st["next"] is None and st["waiting"] == 5 and st["request"]["template"] == "study-group"
    # a member of g-a leaves: the first one waiting gets the place, in the leave's own transaction
    chat.event("member_left", "n1", group="g-a", id="l1")
    assert invites(chat) == [("n3", "g-a")]
    # the operator adds a new group; on the next retry the others are invited there
    bigger = config(
        {"full_at": 1.0, "template": "study-group"}, groups=(*small, ("g-c", 3))
    )
    later = Chat(bigger, db_url=db_url, start=chat.now)
    try:
        later.advance(hours=1)
        assert [(a["member"], a["group"]) for a in later.take() if a["type"] == "invite"] == [
            ("n4", "g-c"),
            ("n5", "g-c"),
            ("n6", "g-c"),
        ]
        assert [r["data"]["groups"] for r in later.records("capacity", "group_ready")] == [["g-c"]]
        st = later.command("capacity", "status", id="after")
        assert st["request"] is None and st["waiting"] == 1
        # still full for the last one: a new request, once
        later.advance(hours=1)
        kinds = [a["type"] for a in later.take()]
        assert kinds.count("create_group") == 0  # waiting is retried, but asking is for newcomers
        later.event("join_request", "n8", group="g-entry", id="r8")
        assert [a["type"] for a in later.take()].count("create_group") == 1
    finally:
        later.close()


def test_an_unanswered_request_times_out_and_admins_are_told(make_chat: Make) -> None:
    chat = make_chat(
        config({"full_at": 1.0, "request_timeout_hours": 24}, groups=(("g-entry", 500), ("g-a", 1)))
    )
    request(chat, "n1")
    request(chat, "n2")
    assert [a["type"] for a in chat.take()] == ["invite", "direct", "direct", "create_group"]
    chat.join("n1", group="g-a", via="invite")
    chat.advance(hours=23)
    assert [a["type"] for a in chat.take() if a["type"] != "invite"] == []
    chat.advance(hours=2)
    [note] = [a for a in chat.take() if a["type"] == "notify_admins"]
    assert "24" in note["text"] and "1" in note["text"]
    assert [r["kind"] for r in chat.records("capacity") if r["kind"] in ("create_group", "request_timeout")] == [
        "create_group",
        "request_timeout",
    ]
    chat.advance(days=3)
    assert [a for a in chat.take() if a["type"] == "notify_admins"] == []  # said once
    request(chat, "n3")  # the next full house may ask again
    assert [a["type"] for a in chat.take()].count("create_group") == 1


# ---------------------------------------------------------------- commands


def test_operators_route_and_read_the_table(make_chat: Make) -> None:
    chat = make_chat(config({"groups": [{"group": "g-a"}, {"group": "g-nope"}, {"group": "g-b"}]}))
    assert chat.command("capacity", "route", member="x1", dry_run=True) == {
        "member": "x1",
        "group": "g-a",
        "status": "dry run",
    }
    chat.assert_nothing_sent()
    assert chat.command("capacity", "route", member="x1")["group"] == "g-a"
    assert invites(chat) == [("x1", "g-a")]
    st = status(chat, "ops")
    assert st["entry_group"] == "g-entry" and st["next"] == "g-a"
    nope = next(r for r in st["groups"] if r["group"] == "g-nope")
    assert nope["problem"] == "not in the configuration" and nope["room"] == 0
    with pytest.raises(CommandError, match="member"):
        chat.command("capacity", "route", member="  ")
    with pytest.raises(CommandError, match="no command"):
        chat.command("capacity", "explode")


def test_without_an_entry_group_nothing_is_routed_by_itself(make_chat: Make) -> None:
    chat = make_chat(config({"entry_group": None}))
    request(chat, "n1")
    chat.join("n2", group="g-entry", via="link")
    chat.assert_nothing_sent()
    # the default routing order: every non-admin group (here including g-entry) in configuration order
    assert [r["group"] for r in status(chat, "plain")["groups"]] == ["g-entry", "g-a", "g-b"]


def test_bad_settings_are_refused_at_load_time() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        Chat(config({"groups": [{"group": "g-a"}, {"group": "g-a"}]}))
    with pytest.raises(ConfigError, match="full_at"):
        Chat(config({"full_at": 1.5}))
    with pytest.raises(ConfigError, match="tags"):
        Chat(config({"groups": [{"group": "g-a", "tags": [" "]}]}))


def test_english_texts(make_chat: Make) -> None:
    chat = make_chat(config({"full_at": 1.0}, groups=(("g-entry", 500), ("g-a", 1)), locale="en"))
    request(chat, "n1")
    assert "g-a 群" in chat.assert_sent(type="direct", count=1)[0]["text"]
    request(chat, "n2")
    chat.assert_sent("Every group is full", type="direct", count=1)


def test_erasing_a_newcomer_drops_their_hold_and_place_in_line(make_chat: Make) -> None:
    chat = make_chat(config({"full_at": 1.0}, groups=(("g-entry", 500), ("g-a", 1))))
    request(chat, "n1")
    request(chat, "n2")
    assert "waiting" in exported_by(chat, "n2") and "holds" in exported_by(chat, "n1")
    for uid in ("n1", "n2"):
        assert chat.engine.erase_member("test", "sim", uid) == []
        assert not exported_by(chat, uid)
    assert chat.state("capacity", "holds") == {} and chat.state("capacity", "waiting") == []
