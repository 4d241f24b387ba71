"""WeChatMsg (留痕) CSV exports.

Columns: ``localId, TalkerId, Type, SubType, IsSender, CreateTime, Status,
StrContent, StrTime, Remark, NickName, Sender`` (UTF-8 with a byte-order
mark). In a group chat ``Sender`` is the speaker's wxid, ``NickName`` their
nickname and ``Remark`` the exporter's note for them. The older 9-column
files stop at ``StrTime``: there the speaker is the exporter (``IsSender``
1) or the chat partner.

- id: ``<TalkerId>:<localId>:<CreateTime>`` — ``localId`` is the row id in
  the exporter's local database, unique per database file, so the time is
  added to keep two databases' rows apart;
- time: ``CreateTime`` (epoch seconds; milliseconds are recognised) or,
  without it, ``StrTime`` read in the import's time zone (Asia/Shanghai);
- content type from ``Type``/``SubType`` (see :data:`TYPES`);
- group: ``--group``, else ``TalkerId`` (the chat's own id, e.g. ``…@chatroom``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from qunyun.importers.base import BadRow, Importer, Item, Progress, describe
from qunyun.importers.csvfile import CsvSource

COLUMNS = (
    "localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status",
    "StrContent", "StrTime", "Remark", "NickName", "Sender",
)

#: (Type, SubType) → content type; ``(Type, None)`` covers every SubType.
TYPES: dict[tuple[int, int | None], str] = {
    (1, None): "text",
    (3, None): "image",
    (34, None): "voice",
    (43, None): "video",
    (47, None): "sticker",
    (48, None): "text",  # location share
    (42, None): "link",  # contact card
    (49, 6): "file",
    (49, 57): "text",  # a reply quoting another message
    (49, 2000): "system",  # money transfer notice
    (49, 2001): "red_packet",
    (49, None): "link",  # shared links, mini programs, forwarded chat records…
    (50, None): "system",  # voice/video call record
    (10000, None): "system",
    (10002, None): "system",
}

_MEDIA_TEXTLESS = frozenset({"image", "voice", "video", "sticker"})
_TITLE = re.compile(r"<title>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</title>", re.S)
_GROUP_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{2,63}):\n")
#: The exporter's own messages in files that do not name the sender.
ME = "me"


def content_type(kind: int, sub: int) -> str:
    return TYPES.get((kind, sub)) or TYPES.get((kind, None)) or "text"


def local_time(text: str, tz: object) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)  # type: ignore[arg-type]


class WeChatMsgImporter(Importer):
    format = "wechatmsg"
    platform = "wechat"
    default_timezone = "Asia/Shanghai"
    summary = "WeChatMsg / 留痕 CSV (12 or 9 columns)"

    def _read(self, path: Path, progress: Progress | None) -> Iterator[Item]:
        source = CsvSource(
            path,
            columns=dict.fromkeys(COLUMNS, ()),
            required=("localId", "TalkerId", "Type", "IsSender", "StrContent"),
            orders={12: COLUMNS, 9: COLUMNS[:9]},
            encoding=self.encoding,
            progress=progress,
        )
        name = str(path)
        tz = self.tz
        fromts = datetime.fromtimestamp
        for item in source.rows():
            if isinstance(item, BadRow):
                yield item
                continue
            line, row = item
            ix = source.index
            try:
                local_id = row[ix["localId"]].strip()
                talker = row[ix["TalkerId"]].strip()
                if not local_id or not talker:
                    raise ValueError("localId and TalkerId must not be empty")
                kind = int(row[ix["Type"]])
                sub_cell = row[ix["SubType"]].strip() if "SubType" in ix else ""
                sub = int(sub_cell) if sub_cell else 0
                created = row[ix["CreateTime"]].strip() if "CreateTime" in ix else ""
                if created.isdigit():
                    seconds = int(created)
                    ts = fromts(seconds / 1000 if seconds > 100_000_000_000 else seconds, tz)
                elif "StrTime" in ix and row[ix["StrTime"]].strip():
                    ts = local_time(row[ix["StrTime"]], tz)
                    created = str(int(ts.timestamp()))
                else:
                    raise ValueError("no time: CreateTime and StrTime are both empty or unreadable")
                text = row[ix["StrContent"]]
                ctype = content_type(kind, sub)
                is_me = row[ix["IsSender"]].strip() == "1"
                sender = row[ix["Sender"]].strip() if "Sender" in ix else ""
                nick = row[ix["NickName"]].strip() if "NickName" in ix else ""
                if not nick and "Remark" in ix:
                    nick = row[ix["Remark"]].strip()
                if not sender:
                    found = _GROUP_PREFIX.match(text) if talker.endswith("@chatroom") else None
                    if found is not None:
                        sender, text = found.group(1), text[found.end():]
                    else:
                        sender = ME if is_me else talker
                if ctype == "system":
                    sender, nick = "system", "system"
                if ctype in _MEDIA_TEXTLESS:
                    text = ""
                elif text.lstrip().startswith("<"):
                    title = _TITLE.search(text)
                    text = title.group(1).strip() if title else ""
                event_id = f"{talker}:{local_id}:{created}"
                yield self.message(
                    id=event_id,
                    ts=ts,
                    group=self.group or talker,
                    actor=sender,
                    name=nick or None,
                    text=text,
                    content_type=ctype,
                )
            except (ValueError, KeyError, IndexError) as exc:
                yield BadRow(name, line, describe(exc) + "; skipped")
        if source.headerless:
            self.counts["files without a header row"] += 1
