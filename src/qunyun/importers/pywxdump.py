"""PyWxDump CSV exports.

Columns: ``id, MsgSvrID, type_name, is_sender, talker, room_name, msg, src,
CreateTime`` (older versions have one ``content`` column, a JSON text, in
place of ``msg`` and ``src``). ``talker`` is the speaker's wxid (``我`` for
the exporter's own messages), ``room_name`` the chat's id, ``type_name`` a
Chinese label (文本, 图片, 语音…) and ``CreateTime`` local time
(``YYYY-MM-DD HH:MM:SS``, read in the import's time zone, Asia/Shanghai by
default).

- id: ``<room_name>:<MsgSvrID>`` (the server's message id, stable across
  exports); without one, ``<room_name>:row<id>:<CreateTime>``;
- group: ``--group``, else ``room_name``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from qunyun.importers.base import BadRow, Importer, Item, Progress, describe
from qunyun.importers.csvfile import CsvSource
from qunyun.importers.wechatmsg import ME, local_time

COLUMNS = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime")
OLD_COLUMNS = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "content", "CreateTime")

#: Keywords of ``type_name``, checked in this order, → content type.
TYPE_WORDS: tuple[tuple[str, str], ...] = (
    ("红包", "red_packet"),
    ("转账", "system"),
    ("系统", "system"),
    ("拍一拍", "system"),
    ("撤回", "system"),
    ("通话", "system"),
    ("表情", "sticker"),
    ("图片", "image"),
    ("语音", "voice"),
    ("视频号", "link"),
    ("视频", "video"),
    ("文件", "file"),
    ("链接", "link"),
    ("卡片", "link"),
    ("小程序", "link"),
    ("合并转发", "link"),
    ("引用", "text"),
    ("文本", "text"),
)
_SELF_NAMES = frozenset({"我", "me", "self"})
_SYSTEM_NAMES = frozenset({"系统", "未知", "system", ""})
_TEXTLESS = frozenset({"image", "voice", "video", "sticker"})


def content_type(type_name: str) -> str:
    for word, ctype in TYPE_WORDS:
        if word in type_name:
            return ctype
    return "text"


def _old_content(cell: str) -> str:
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        msg = value.get("msg")
        return msg if isinstance(msg, str) else ""
    return cell


class PyWxDumpImporter(Importer):
    format = "pywxdump"
    platform = "wechat"
    default_timezone = "Asia/Shanghai"
    summary = "PyWxDump CSV"

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        source = CsvSource(
            path,
            columns=dict.fromkeys((*COLUMNS, "content"), ()),
            required=("MsgSvrID", "talker", "room_name", "CreateTime"),
            orders={9: COLUMNS, 8: OLD_COLUMNS},
            encoding=self.encoding,
            progress=progress,
        )
        name = str(path)
        tz = self.tz
        for item in source.rows():
            if isinstance(item, BadRow):
                yield item
                continue
            line, row = item
            ix = source.index
            try:
                room = row[ix["room_name"]].strip()
                if not room:
                    raise ValueError("room_name is empty")
                created = row[ix["CreateTime"]].strip()
                ts = datetime.fromtimestamp(int(created), tz) if created.isdigit() else local_time(created, tz)
                server_id = row[ix["MsgSvrID"]].strip()
                if server_id and server_id != "0":
                    event_id = f"{room}:{server_id}"
                else:
                    local = row[ix["id"]].strip() if "id" in ix else ""
                    event_id = f"{room}:row{local}:{int(ts.timestamp())}"
                ctype = content_type(row[ix["type_name"]]) if "type_name" in ix else "text"
                if "msg" in ix:
                    text = row[ix["msg"]]
                elif "content" in ix:
                    text = _old_content(row[ix["content"]])
                else:
                    text = ""
                talker = row[ix["talker"]].strip()
                is_me = "is_sender" in ix and row[ix["is_sender"]].strip() == "1"
                if is_me or talker in _SELF_NAMES:
                    actor, nick = ME, None
                elif talker in _SYSTEM_NAMES or ctype == "system":
                    actor, nick = "system", "system"
                else:
                    actor, nick = talker, None
                if ctype in _TEXTLESS:
                    text = ""
                yield self.message(
                    id=event_id,
                    ts=ts,
                    group=self.group or room,
                    actor=actor,
                    name=nick,
                    text=text,
                    content_type=ctype,
                )
            except (ValueError, KeyError, IndexError) as exc:
                yield BadRow(name, line, describe(exc) + "; skipped")
