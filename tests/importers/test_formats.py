"""Each export format on a small hand-written file: exactly these events, these bad rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qunyun.core.events import BaseEvent
from qunyun.importers import FORMATS, BadRow, IdentityChange, Importer

DATA = Path(__file__).resolve().parent.parent / "data" / "import"
ROOM = "38123456789@chatroom"


def read(importer: Importer, name: str) -> tuple[list[dict[str, Any]], list[BadRow], list[IdentityChange]]:
    events: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    notes: list[IdentityChange] = []
    for item in importer.read(DATA / name):
        if isinstance(item, BaseEvent):
            d = item.model_dump(mode="json")
            assert d.pop("v") == 1 and d.pop("platform") == importer.platform
            events.append(d)
        elif isinstance(item, BadRow):
            bad.append(item)
        else:
            notes.append(item)
    return events, bad, notes


def msg(
    id: str, ts: str, group: str, actor: str, name: str | None, text: str, ctype: str = "text",
    mentions: list[str] | None = None, reply_to: str | None = None, msg_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id, "ts": ts, "group": group, "actor": {"id": actor, "name": name}, "type": "message",
        "msg_id": msg_id or id, "text": text, "content_type": ctype, "mentions": mentions or [],
        "reply_to": reply_to,
    }


def in_utc(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in events:
        e["ts"] = datetime.fromisoformat(e["ts"]).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return events


def where(bad: list[BadRow]) -> list[tuple[str, int]]:
    return [(Path(b.file).name, b.line) for b in bad]


def test_every_format_is_registered() -> None:
    assert set(FORMATS) == {"wechatmsg", "pywxdump", "telegram", "discord", "gitter", "irc"}
    assert {cls.platform for cls in FORMATS.values()} == {"wechat", "telegram", "discord", "gitter", "irc"}


def test_wechatmsg_twelve_columns() -> None:
    events, bad, _ = read(FORMATS["wechatmsg"](), "wechatmsg.csv")
    assert events == [
        msg(f"{ROOM}:101:1709600400", "2024-03-05T09:00:00+08:00", ROOM, "wxid_lin001", "小林",
            "大家早上好，今天读书会几点开始？"),
        msg(f"{ROOM}:102:1709600490", "2024-03-05T09:01:30+08:00", ROOM, "wxid_me999", "阿青", "", "image"),
        msg(f"{ROOM}:103:1709600700", "2024-03-05T09:05:00+08:00", ROOM, "wxid_me999", "阿青",
            "晚上八点开始\n地点：三楼会议室, 欢迎带朋友"),
        msg(f"{ROOM}:104:1709604000", "2024-03-05T10:00:00+08:00", ROOM, "system", "system",
            '"小周"通过扫描"阿青"分享的二维码加入群聊', "system"),
        msg(f"{ROOM}:106:1709604120", "2024-03-05T10:02:00+08:00", ROOM, "wxid_lin001", "小林",
            "读书会书单.pdf", "file"),
        msg(f"{ROOM}:107:1709604180", "2024-03-05T10:03:00+08:00", ROOM, "wxid_zhou42", "小周", "", "sticker"),
    ]
    # the row with Type "text" starts on line 7 (the quoted message spans lines 4–5)
    assert where(bad) == [("wechatmsg.csv", 7)]
    assert "int()" in bad[0].error and "skipped" in bad[0].error


def test_wechatmsg_nine_columns_and_group_option() -> None:
    events, bad, _ = read(FORMATS["wechatmsg"](group="hiking"), "wechatmsg_9col.csv")
    assert bad == []
    assert [(e["id"], e["group"], e["actor"]["id"], e["content_type"], e["ts"]) for e in events] == [
        ("wxid_friend01:7:1709600400", "hiking", "wxid_friend01", "text", "2024-03-05T09:00:00+08:00"),
        ("wxid_friend01:8:1709600490", "hiking", "me", "text", "2024-03-05T09:01:30+08:00"),
        # no CreateTime: StrTime, read as China time
        ("wxid_friend01:9:1709600700", "hiking", "wxid_friend01", "voice", "2024-03-05T09:05:00+08:00"),
    ]


def test_pywxdump() -> None:
    events, bad, _ = read(FORMATS["pywxdump"](), "pywxdump.csv")
    assert events == [
        msg(f"{ROOM}:7310000000000000001", "2024-03-05T09:00:00+08:00", ROOM, "wxid_lin001", None,
            "明天的分享会改到线上"),
        msg(f"{ROOM}:7310000000000000002", "2024-03-05T09:01:30+08:00", ROOM, "me", None, "", "image"),
        msg(f"{ROOM}:7310000000000000003", "2024-03-05T09:05:00+08:00", ROOM, "wxid_zhou42", None,
            "线上会议链接\n点这里加入", "link"),
        msg(f"{ROOM}:row4:1709604000", "2024-03-05T10:00:00+08:00", ROOM, "system", "system",
            '"小周"撤回了一条消息', "system"),
    ]
    assert where(bad) == [("pywxdump.csv", 7)]
    assert "2024-13-45" in bad[0].error


def test_telegram_single_chat() -> None:
    importer = FORMATS["telegram"](timezone="Asia/Shanghai")
    events, bad, _ = read(importer, "telegram_chat.json")
    chat = "1987654321"
    assert in_utc(events) == [
        msg(f"{chat}:1", "2024-03-05T01:00:00Z", chat, "1001", "Lin", "create_group: Reading Club", "system"),
        msg(f"{chat}:2", "2024-03-05T01:01:30Z", chat, "1001", "Lin", "Welcome! Please introduce yourselves."),
        {"id": f"{chat}:3", "ts": "2024-03-05T01:02:00Z", "group": chat, "actor": {"id": "1002", "name": "Qing"},
         "type": "member_joined", "inviter": None, "via": "link"},
        # numeric from_id 1002 and "user1002" are the same person; entity array flattened
        msg(f"{chat}:4", "2024-03-05T01:03:00Z", chat, "1002", "Qing",
            "Hi Lin, my list is here: https://example.org/books", "link", mentions=["1001"],
            reply_to=f"{chat}:2"),
        # no date_unixtime: "date" is local time in --timezone (Asia/Shanghai here)
        msg(f"{chat}:5", "2024-03-05T01:05:00Z", chat, "1002", "Qing", "", "image"),
        # invite_members names people: Qing is known by name, Zhou is not yet (skipped)
        {"id": f"{chat}:6:0", "ts": "2024-03-05T01:10:00Z", "group": chat, "actor": {"id": "1002", "name": "Qing"},
         "type": "member_joined", "inviter": "1001", "via": "invite"},
        msg(f"{chat}:7", "2024-03-05T01:12:00Z", chat, "1003", "Zhou", "", "sticker"),
        {"id": f"{chat}:9", "ts": "2024-03-05T01:20:00Z", "group": chat, "actor": {"id": "1002", "name": "Qing"},
         "type": "member_left", "by": None},
        msg(f"{chat}:10", "2024-03-05T01:21:00Z", chat, "1001", "Lin", "pin_message", "system"),
    ]
    lines = (DATA / "telegram_chat.json").read_text(encoding="utf-8").splitlines()
    opening = lines.index('   "id": 8,')  # 0-based index of the line after the element's "{"
    assert where(bad) == [("telegram_chat.json", opening)]
    assert "date" in bad[0].error
    assert importer.counts["joins/leaves naming an unknown person (skipped)"] == 1


def test_telegram_full_export_imports_group_chats_only() -> None:
    importer = FORMATS["telegram"]()
    events, bad, _ = read(importer, "telegram_full.json")
    assert bad == []
    assert [(e["id"], e["group"], e["actor"]["id"], e["reply_to"]) for e in events] == [
        ("4455667788:11", "4455667788", "1001", None),
        ("4455667788:12", "4455667788", "1002", "4455667788:11"),
        ("1122334455:3", "1122334455", "1001", None),  # a chat the account left still counts
    ]
    assert importer.counts["chats skipped (not a group)"] == 1


def test_telegram_full_export_group_option_selects_a_chat() -> None:
    events, bad, _ = read(FORMATS["telegram"](group="Hiking Group"), "telegram_full.json")
    assert bad == []
    assert {e["group"] for e in events} == {"Hiking Group"}
    assert [e["id"] for e in events] == ["4455667788:11", "4455667788:12"]


def test_discord() -> None:
    events, bad, _ = read(FORMATS["discord"](), "discord.json")
    channel = "800000000000000010"
    maria, tom = "700000000000000001", "700000000000000002"
    assert events == [
        {"id": "900000000000000001", "ts": "2024-03-05T09:00:00Z", "group": channel,
         "actor": {"id": maria, "name": "Maria"}, "type": "member_joined", "inviter": None, "via": "unknown"},
        msg("900000000000000002", "2024-03-05T09:01:30.123000Z", channel, maria, "Maria",
            "Hello everyone, where do we post homework?"),
        # the offset is kept; no nickname → the user name
        msg("900000000000000003", "2024-03-05T10:05:00+01:00", channel, tom, "tom",
            "In the homework channel, @Maria", mentions=[maria], reply_to="900000000000000002"),
        msg("900000000000000004", "2024-03-05T09:06:00Z", channel, maria, "Maria", "", "image"),
        msg("900000000000000005", "2024-03-05T09:07:00Z", channel, tom, "tom",
            "ChannelPinnedMessage: Pinned a message.", "system"),
    ]
    lines = (DATA / "discord.json").read_text(encoding="utf-8").splitlines()
    assert where(bad) == [("discord.json", lines.index('      "id": "900000000000000006",'))]
    assert "author" in bad[0].error


def test_gitter() -> None:
    events, bad, _ = read(FORMATS["gitter"](), "gitter_room.txt")
    assert [(e["ts"], e["actor"]["id"], e["text"], e["content_type"], e["mentions"]) for e in events] == [
        ("2024-03-05T09:00:00Z", "lin", "hello room, is anyone using compose v2?", "text", []),
        ("2024-03-05T09:01:30Z", "qing", "@lin yes, since last week\n  it works fine with the plugin", "text", ["lin"]),
        ("2024-03-05T09:07:00Z", "lin", "thanks! see [<-LINK->]", "link", []),
        ("2024-03-05T09:07:00Z", "lin", "thanks! see [<-LINK->]", "link", []),
    ]
    assert {e["group"] for e in events} == {"gitter_room"}
    # two identical lines in the same second are two messages with two ids
    assert len({e["id"] for e in events}) == 4
    assert all(e["id"].startswith("gitter_room:") for e in events)
    assert where(bad) == [("gitter_room.txt", 1), ("gitter_room.txt", 5), ("gitter_room.txt", 6)]


def test_gitter_ids_do_not_depend_on_the_line_position(tmp_path: Path) -> None:
    lines = (DATA / "gitter_room.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    moved = tmp_path / "gitter_room.txt"
    moved.write_text("".join(["[2024-03-04 08:00:00] <zoe> an earlier day\n", *lines[1:]]), encoding="utf-8")
    first, _, _ = read(FORMATS["gitter"](), "gitter_room.txt")
    again = [e.id for e in FORMATS["gitter"]().read(moved) if isinstance(e, BaseEvent)]
    assert again[1:] == [e["id"] for e in first]


def test_irc_follows_nick_changes_and_midnight() -> None:
    importer = FORMATS["irc"]()
    events, bad, notes = read(importer, "irc-demo/2024-03-05.txt")
    g = "irc-demo"
    assert [(e["id"], e["ts"], e["type"], e["actor"], e.get("text"), e.get("mentions"), e.get("by")) for e in events] == [
        (f"{g}:2024-03-05:0", "2024-03-05T23:50:00Z", "member_joined", {"id": "lin", "name": "lin"}, None, None, None),
        (f"{g}:2024-03-05:1", "2024-03-05T23:50:00Z", "message", {"id": "lin", "name": "lin"}, "anyone around?", [], None),
        (f"{g}:2024-03-05:2", "2024-03-05T23:50:00Z", "member_joined", {"id": "qing", "name": "qing"}, None, None, None),
        (f"{g}:2024-03-05:3", "2024-03-05T23:55:00Z", "message", {"id": "qing", "name": "qing"}, "lin: yes, hi", ["lin"], None),
        (f"{g}:2024-03-05:5", "2024-03-05T23:58:00Z", "message", {"id": "qing", "name": "qing_away"}, "waves", [], None),
        (f"{g}:2024-03-05:6", "2024-03-06T00:02:00Z", "message", {"id": "qing", "name": "qing_away"},
         "lin, it is past midnight here", ["lin"], None),
        (f"{g}:2024-03-05:7", "2024-03-06T00:02:00Z", "message", {"id": "lin", "name": "lin"}, "sighs", [], None),
        (f"{g}:2024-03-05:10", "2024-03-06T00:05:00Z", "message", {"id": "lin", "name": "lin"}, "ok bye", [], None),
        (f"{g}:2024-03-05:11", "2024-03-06T00:05:00Z", "member_left", {"id": "lin", "name": "lin"}, None, None, None),
        (f"{g}:2024-03-05:12", "2024-03-06T00:05:00Z", "member_left", {"id": "qing", "name": "qing_away"}, None, None, "lin"),
    ]
    assert notes == [IdentityChange(str(DATA / "irc-demo/2024-03-05.txt"), 5, "qing", "qing_away", "qing")]
    assert where(bad) == [("2024-03-05.txt", 10)]
    assert importer.counts["server notices (skipped)"] == 1
