"""Files as they come: truncated, GBK-encoded, columns moved, big, broken in the middle."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
from pathlib import Path

import pytest

from qunyun.core.errors import EventError
from qunyun.core.events import BaseEvent
from qunyun.importers import FORMATS, BadRow, IdentityChange
from qunyun.importers.base import detect_encoding
from qunyun.importers.jsonstream import JsonStream

DATA = Path(__file__).resolve().parent.parent / "data" / "import"
SHARED = Path("/work/shared/data")


def split(items: object) -> tuple[list[BaseEvent], list[BadRow]]:
    events: list[BaseEvent] = []
    bad: list[BadRow] = []
    for item in items:  # type: ignore[attr-defined]
        if isinstance(item, BaseEvent):
            events.append(item)
        elif isinstance(item, BadRow):
            bad.append(item)
    return events, bad


# ------------------------------------------------------------------ encodings


def test_gbk_csv_is_detected(tmp_path: Path) -> None:
    text = (DATA / "wechatmsg.csv").read_text(encoding="utf-8-sig")
    gbk = tmp_path / "wechat_gbk.csv"
    gbk.write_bytes(text.encode("gbk"))
    with pytest.raises(UnicodeDecodeError):
        gbk.read_bytes().decode("utf-8")
    expected, _ = split(FORMATS["wechatmsg"]().read(DATA / "wechatmsg.csv"))
    events, bad = split(FORMATS["wechatmsg"]().read(gbk))
    assert [e.model_dump() for e in events] == [e.model_dump() for e in expected]
    assert [b.line for b in bad] == [7]


def test_one_corrupt_byte_does_not_turn_a_utf8_file_into_gb18030(tmp_path: Path) -> None:
    """Only the damaged row is hurt (U+FFFD in its text); the header and the other rows read as UTF-8."""
    raw = (DATA / "wechatmsg.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    expected, expected_bad = split(FORMATS["wechatmsg"]().read(DATA / "wechatmsg.csv"))
    at = raw.rindex(b"\xe4")
    damaged = tmp_path / "damaged.csv"
    damaged.write_bytes(raw[:at] + b"\xff" + raw[at + 1 :])
    events, bad = split(FORMATS["wechatmsg"]().read(damaged))
    assert len(events) == len(expected) and len(bad) == len(expected_bad)
    changed = [e for e, x in zip(events, expected, strict=True) if e.model_dump() != x.model_dump()]
    assert len(changed) == 1 and "\ufffd" in changed[0].text  # type: ignore[attr-defined]


def test_encoding_detection_without_a_byte_order_mark() -> None:
    text = (DATA / "wechatmsg.csv").read_text(encoding="utf-8-sig") * 20
    utf8 = text.encode("utf-8")
    at = utf8.rindex(b"\xe4")
    assert detect_encoding(utf8) == "utf-8-sig"
    assert detect_encoding(utf8[:at] + b"\xff" + utf8[at + 1 :]) == "utf-8-sig"  # one damaged byte in thousands
    assert detect_encoding(text.encode("gbk")) == "gb18030"
    assert detect_encoding("周末一起去爬山吗？".encode("gbk")) == "gb18030"


def test_encoding_can_be_forced(tmp_path: Path) -> None:
    text = (DATA / "wechatmsg_9col.csv").read_text(encoding="utf-8")
    path = tmp_path / "utf16.csv"
    path.write_bytes(text.encode("utf-16"))
    events, bad = split(FORMATS["wechatmsg"](encoding="utf-16").read(path))
    assert bad == [] and events[0].text == "周末一起去爬山吗？"  # type: ignore[attr-defined]
    with pytest.raises(EventError, match="unknown text encoding"):
        FORMATS["wechatmsg"](encoding="no-such-codec")


# ------------------------------------------------------------------- columns


def test_columns_in_another_order_are_found_by_header(tmp_path: Path) -> None:
    with open(DATA / "wechatmsg.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    order = list(reversed(range(len(rows[0]))))
    moved = tmp_path / "moved.csv"
    with open(moved, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        for row in rows:
            out.writerow([row[i] for i in order])
    expected, _ = split(FORMATS["wechatmsg"]().read(DATA / "wechatmsg.csv"))
    events, bad = split(FORMATS["wechatmsg"]().read(moved))
    assert [e.model_dump() for e in events] == [e.model_dump() for e in expected]
    assert [b.line for b in bad] == [7]


def test_a_file_without_a_header_is_read_in_the_documented_order(tmp_path: Path) -> None:
    lines = (DATA / "wechatmsg_9col.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(lines[1:]), encoding="utf-8")
    events, bad = split(FORMATS["wechatmsg"]().read(bare))
    assert bad == [] and [e.id for e in events] == [
        "wxid_friend01:7:1709600400", "wxid_friend01:8:1709600490", "wxid_friend01:9:1709600700",
    ]


def test_a_header_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("localId,Type,Text\n1,1,hello\n", encoding="utf-8")
    with pytest.raises(EventError, match=r"other\.csv:1: the header has no column TalkerId"):
        list(FORMATS["wechatmsg"]().read(path))


def test_truncated_csv_reports_the_torn_last_row(tmp_path: Path) -> None:
    data = (DATA / "wechatmsg.csv").read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.index(b"106,")] + b"106,38123456789@chatroom,49,6")
    events, bad = split(FORMATS["wechatmsg"]().read(cut))
    assert len(events) == 4
    assert [b.line for b in bad] == [7, 8]
    assert "row has 4 fields, the header has 12" in bad[1].error
    assert str(bad[1]).startswith(f"{cut}:8: ")


# ---------------------------------------------------------------------- JSON


@pytest.mark.parametrize(("fmt", "name", "complete"), [("telegram", "telegram_chat.json", 9), ("discord", "discord.json", 5)])
def test_truncated_json_keeps_what_came_before(tmp_path: Path, fmt: str, name: str, complete: int) -> None:
    data = (DATA / name).read_bytes()
    for cut_at in (len(data) - 5, len(data) * 2 // 3, 40):
        cut = tmp_path / name
        cut.write_bytes(data[:cut_at])
        events, bad = split(FORMATS[fmt]().read(cut))
        full, _ = split(FORMATS[fmt]().read(DATA / name))
        assert [e.id for e in events] == [e.id for e in full[: len(events)]]
        assert bad and "truncated" in bad[-1].error and "the rest of the file was not read" in bad[-1].error
        if cut_at == len(data) - 5:
            assert len(events) == complete


def test_json_syntax_error_in_the_middle_is_reported_with_its_line(tmp_path: Path) -> None:
    text = (DATA / "telegram_chat.json").read_text(encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"id": 4,\n   "type": "message",', '"id": 4,\n   "type": "message"', 1), encoding="utf-8")
    events, bad = split(FORMATS["telegram"]().read(broken))
    assert [e.id for e in events] == ["1987654321:1", "1987654321:2", "1987654321:3"]
    assert len(bad) == 1 and "the rest of the file was not read" in bad[0].error
    line = text.splitlines().index('   "id": 4,')  # 0-based: the element's "{" line, 1-based
    assert bad[0].line == line


def test_json_that_is_not_an_export(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    events, bad = split(FORMATS["telegram"]().read(path))
    assert events == [] and bad[0].line == 1 and "not a JSON object" in bad[0].error


def test_a_chat_with_a_malformed_type_is_skipped_not_a_crash(tmp_path: Path) -> None:
    """A full export whose chat "type" is not text: that chat is left out, the next one is read."""
    path = tmp_path / "result.json"
    good = {"type": "private_supergroup", "id": 2, "name": "g", "messages": [
        {"id": 1, "type": "message", "date": "2024-01-01T10:00:00", "from": "A", "from_id": "user1", "text": "hi"}]}
    bad_chat = dict(good, id=1, type={"oops": 1})
    path.write_text(json.dumps({"chats": {"list": [bad_chat, good]}}), encoding="utf-8")
    events, bad = split(FORMATS["telegram"]().read(path))
    assert [e.id for e in events] == ["2:1"] and bad == []


def test_minified_json_is_read_too(tmp_path: Path) -> None:
    data = json.loads((DATA / "discord.json").read_text(encoding="utf-8"))
    path = tmp_path / "min.json"
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    events, bad = split(FORMATS["discord"]().read(path))
    assert len(events) == 5 and [b.line for b in bad] == [1]


def test_stream_reads_values_across_buffer_boundaries() -> None:
    doc = {"a": 1234567890123, "messages": [{"id": i, "text": "字" * (i % 7)} for i in range(500)], "z": "end"}
    raw = json.dumps(doc, ensure_ascii=False, indent=2).encode()
    stream = JsonStream(io.BytesIO(raw))
    stream.CHUNK = 7  # type: ignore[misc]  # force a refill in the middle of every value and character
    seen: dict[str, object] = {}
    got = []
    for key in stream.fields():
        if key == "messages":
            got = [obj for _offset, obj in stream.elements()]
        else:
            seen[key] = stream.value()
    assert got == doc["messages"] and seen == {"a": 1234567890123, "z": "end"}


# -------------------------------------------------------------- big files


def _wechat_rows(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status",
                      "StrContent", "StrTime", "Remark", "NickName", "Sender"])
        for i in range(n):
            out.writerow([i, "1@chatroom", 1, 0, 0, 1_700_000_000 + i, 2, f"message number {i} " * 3,
                          "", "", f"成员{i % 300}", f"wxid_{i % 300}"])


def _telegram(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{\n "name": "big",\n "type": "private_supergroup",\n "id": 42,\n "messages": [\n')
        for i in range(n):
            body = json.dumps(
                {"id": i, "type": "message", "date_unixtime": str(1_700_000_000 + i), "from": f"m{i % 300}",
                 "from_id": f"user{i % 300}", "text": [f"message {i} ", {"type": "bold", "text": "x" * 40}]},
                indent=1,
            ).replace("\n", "\n  ")
            fh.write(("  " if i == 0 else ",\n  ") + body)
        fh.write("\n ]\n}\n")


def _peak(fmt: str, path: Path) -> tuple[int, int]:
    tracemalloc.start()
    n = 0
    for item in FORMATS[fmt]().read(path):
        assert isinstance(item, BaseEvent)
        n += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return n, peak


@pytest.mark.parametrize(("fmt", "write"), [("wechatmsg", _wechat_rows), ("telegram", _telegram)])
def test_big_files_stream_in_bounded_memory(tmp_path: Path, fmt: str, write: object) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    write(small, 20_000)  # type: ignore[operator]
    write(big, 60_000)  # type: ignore[operator]
    n_small, peak_small = _peak(fmt, small)
    n_big, peak_big = _peak(fmt, big)
    assert (n_small, n_big) == (20_000, 60_000)
    # three times the messages, not more memory: the reader holds a buffer and one row
    assert peak_big < peak_small * 1.2 + 500_000, (peak_small, peak_big)
    assert peak_big < big.stat().st_size, (peak_big, big.stat().st_size)


# ------------------------------------------------------------------ real data


def test_real_gitter_room() -> None:
    path = SHARED / "gitter" / "docker.txt"
    text = path.read_text(encoding="utf-8")
    starts = re.findall(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] <([^>]+)>", text, re.M)
    events, bad = split(FORMATS["gitter"]().read(path))
    assert bad == []
    assert len(events) == len(starts) == 28_586
    assert len({e.actor.id for e in events}) == len(set(starts)) == 2_356
    assert {e.group for e in events} == {"docker"}
    assert len({e.id for e in events}) == len(events)
    assert events[0].ts.isoformat() == "2016-01-04T19:59:51+00:00"


def test_real_irc_day() -> None:
    path = SHARED / "irc-ubuntu" / "2006-06-01.train-a.raw.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    timed = [ln for ln in lines if re.match(r"\[\d\d:\d\d\] ", ln)]
    joins = [ln for ln in lines if re.match(r"=== \S+ \[.*\]\s+has joined #", ln)]
    leaves = [ln for ln in lines if re.match(r"=== \S+ (\[.*\]\s+)?has (left|quit)|=== \S+ was kicked off", ln)]
    renames = [ln for ln in lines if re.match(r"=== \S+ is now known as \S+$", ln)]
    notices = [ln for ln in lines if re.match(r"=== (\.\.\[topic/|mode/|[A-Za-z]+: )", ln)]
    other = [ln for ln in lines if ln.startswith("===")]
    actions = len(other) - len(joins) - len(leaves) - len(renames) - len(notices)
    importer = FORMATS["irc"]()
    items = list(importer.read(path))
    events, bad = split(items)
    assert bad == []
    kinds = [e.type for e in events]  # type: ignore[attr-defined]
    assert kinds.count("message") == len(timed) + actions
    assert kinds.count("member_joined") == len(joins)
    assert kinds.count("member_left") == len(leaves)
    changes = [i for i in items if isinstance(i, IdentityChange)]
    assert len(changes) == len(renames) > 0
    assert len(timed) > 1000
    assert {e.group for e in events} == {"irc-ubuntu"}
    # ids carry the 0-based raw line number, as the reply annotations count lines
    first = next(e for e in events if e.type == "message")  # type: ignore[attr-defined]
    line0 = int(first.id.rsplit(":", 1)[1])
    assert lines[line0].endswith(first.text)  # type: ignore[attr-defined]
    # every renamed nick speaks as the person it was renamed from
    for change in changes:
        assert importer.people[change.new.casefold()] == change.person or any(
            c.old.casefold() == change.new.casefold() for c in changes
        )


def test_irc_needs_a_date_in_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "channel.log"
    path.write_text("[10:00] <a> hi\n", encoding="utf-8")
    with pytest.raises(EventError, match="must start with its date"):
        list(FORMATS["irc"]().read(path))
