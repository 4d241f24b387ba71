"""The Matrix adapter: one bot account on one homeserver, through mautrix-python.

- **Login**: an access token (``access_token_env``) or a password
  (``password_env``) with a fixed ``device_id``, so the homeserver's
  transaction-id de-duplication (per device) survives restarts.
- **Receiving**: a ``/sync`` long-poll loop. The ``next_batch`` token is
  saved to ``state_file`` only after every event of that batch was taken by
  the sink, so a restart resumes where it stopped (an event may come twice;
  the engine ignores a known event id). While events stream in it is
  written at most once per :attr:`MatrixAdapter.STATE_SAVE_SECONDS` (a
  write costs milliseconds of the event loop on a busy disk), and always
  when the adapter stops. The very first run starts "now":
  the rooms' earlier history is not replayed as if it had just happened.
- **Sync gaps**: a ``limited`` timeline means the homeserver skipped events.
  The gap is logged and recorded (:attr:`MatrixAdapter.gaps`); with
  ``backfill`` on, the missing events are fetched from ``/messages``
  (between the timeline's ``prev_batch`` and the previous ``next_batch``),
  up to ``backfill_limit``, and handed over in order before the rest.
- **Actions**: every call that may create something uses the action id as
  the transaction id (``send``, ``direct``, ``delete``), is a no-op when
  repeated (``pin``), checks the membership when the homeserver refuses a
  repeat (``remove``, ``invite``), or finds what the first attempt created
  through a room alias derived from the action id (``create_group``).
- **Faults**: an unreachable homeserver or a 5xx is a ``retry``; a 429 is a
  ``retry`` after the homeserver's ``retry_after_ms``; a refusal (no power,
  not in the room) is a permanent ``failed`` with the homeserver's words.
  The sync loop reconnects with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout
from mautrix.api import HTTPAPI, Method
from mautrix.api import Path as MPath
from mautrix.errors import MatrixConnectionError, MatrixRequestError, make_request_error

from qunyun.adapters.base import (
    Adapter,
    Backoff,
    DeliveryResult,
    DoctorCheck,
    PayloadError,
    Sink,
    listing,
)
from qunyun.adapters.matrix import mapping
from qunyun.adapters.matrix.settings import MatrixSettings
from qunyun.core.errors import Msg

log = logging.getLogger("qunyun.adapters.matrix")


class _API(HTTPAPI):
    """mautrix's HTTP layer, keeping the ``retry_after_ms`` of a 429 on the error it raises."""

    async def _send(self, method: Any, url: Any, content: Any, query_params: Any, headers: Any) -> Any:
        request = self.session.request(str(method), url, data=content, params=query_params, headers=headers)
        async with request as response:
            if response.status < 200 or response.status >= 300:
                text = await response.text()
                errcode = message = None
                retry_after: float | None = None
                try:
                    data = json.loads(text)
                    errcode, message = data.get("errcode"), data.get("error")
                    if isinstance(data.get("retry_after_ms"), int | float):
                        retry_after = data["retry_after_ms"] / 1000
                except (ValueError, AttributeError):
                    pass
                header = response.headers.get("Retry-After")
                if retry_after is None and header and header.isdigit():
                    retry_after = float(header)
                err = make_request_error(http_status=response.status, text=text, errcode=errcode, message=message)
                err.retry_after = retry_after  # type: ignore[attr-defined]
                raise err
            return await response.json(), response


@dataclass
class Gap:
    """A sync gap (``limited`` timeline) in one room."""

    room: str
    group: str
    #: events fetched from /messages to fill it
    fetched: int
    #: True: filled completely; False: some events may be missing (``missing`` says how many we know of)
    complete: bool
    #: events known to be missing: 0 when complete; None when unknown (backfill off or limit reached)
    missing: int | None


@dataclass
class Removal:
    """The bot was kicked or banned from a configured room."""

    room: str
    by: str
    ban: bool
    reason: str


def _local_alias(action_id: str) -> str:
    return "qunyun-" + hashlib.blake2b(action_id.encode(), digest_size=10).hexdigest()


class MatrixAdapter(Adapter):
    """Serves the configured Matrix rooms for one bot account."""

    #: The sync position is written at most this often while events stream in. A crash then reads again at
    #: most this much of the rooms' history, which the engine recognises by event id and ignores.
    STATE_SAVE_SECONDS = 1.0

    def __init__(
        self,
        settings: MatrixSettings,
        *,
        rooms: Mapping[str, str] | None = None,
        access_token: str | None = None,
        password: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.platform = settings.platform
        self.capabilities = mapping.CAPABILITIES
        self.limits = settings.limits.limits()
        #: configured room (id or alias) → group key
        self.rooms = dict(rooms or {})
        self._token = access_token
        self._password = password
        if not access_token and not password:
            raise ValueError("the Matrix adapter needs an access token or a password")
        self.backoff = Backoff(base=1.0, cap=60.0, rng=rng or random.Random())
        self.state_path = Path(settings.state_file)
        self.user_id = settings.user_id
        self.api: _API | None = None
        self._session: ClientSession | None = None
        self._sink: Sink | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected = False
        self._filter_id: str | None = None
        #: room id → group key (aliases resolved)
        self._groups: dict[str, str] = {}
        #: configured alias → room id
        self._aliases: dict[str, str] = {}
        #: room id → user id → display name
        self._names: dict[str, dict[str, str]] = {}
        #: user id → DM room id (m.direct of the bot)
        self._dm: dict[str, str] = {}
        self._dm_locks: dict[str, asyncio.Lock] = {}
        self._next_batch: str | None = None
        self._created: dict[str, str] = {}
        self.gaps: list[Gap] = []
        self.removed: dict[str, Removal] = {}
        self.join_problems: dict[str, str] = {}
        #: set after every sync that was processed (tests wait on it)
        self.synced = asyncio.Event()
        self.syncs = 0
        self.sync_errors = 0
        self.last_error: str | None = None
        #: the event loop's time of the last sync-position write, and the write waiting for its turn
        self._saved_at = -1e9
        self._save_later: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------- state file

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read %s (%s); starting without a stored sync position", self.platform,
                        self.state_path, exc)
            return
        if not isinstance(data, dict) or data.get("user_id") != self.user_id:
            log.warning("%s: %s belongs to another account; starting without a stored sync position", self.platform,
                        self.state_path)
            return
        nb = data.get("next_batch")
        self._next_batch = nb if isinstance(nb, str) else None
        for key, target in (("dm", self._dm), ("created", self._created)):
            value = data.get(key)
            if isinstance(value, dict):
                target.update({str(k): str(v) for k, v in value.items()})

    def _save_state(self) -> None:
        data = {"user_id": self.user_id, "next_batch": self._next_batch, "dm": self._dm, "created": self._created}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state_path)  # atomic: a crash leaves the old or the new position, never half

    def _position_taken(self) -> None:
        """A sync's events were all taken: write the new position now, or once the last write is old enough."""
        loop = asyncio.get_running_loop()
        due = self._saved_at + self.STATE_SAVE_SECONDS
        if loop.time() >= due:
            self._write_position()
        elif self._save_later is None:
            self._save_later = loop.call_at(due, self._write_position)

    def _write_position(self) -> None:
        if self._save_later is not None:
            self._save_later.cancel()
            self._save_later = None
        try:
            self._save_state()
        except OSError as exc:  # the next sync tries again; a restart would read some events twice
            log.error("%s: cannot write the sync position to %s: %s; check that the directory is writable "
                      "and the disk not full", self.platform, self.state_path, exc)
        self._saved_at = asyncio.get_running_loop().time()

    @property
    def next_batch(self) -> str | None:
        return self._next_batch

    # -------------------------------------------------------------- lifecycle

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        self._stopping = False
        self._load_state()
        timeout = ClientTimeout(total=None, sock_connect=self.settings.request_timeout_seconds)
        self._session = ClientSession(timeout=timeout)
        self.api = _API(self.settings.homeserver, self._token or "", client_session=self._session,
                        default_retry_count=0)
        try:
            await self._connect()
        except (MatrixConnectionError, ClientError, TimeoutError, OSError) as exc:
            self.last_error = f"homeserver unreachable: {exc}"
            log.warning("%s: %s; will keep trying", self.platform, self.last_error)
        self._task = asyncio.create_task(self._loop(), name=f"qunyun-matrix-sync-{self.platform}")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._save_later is not None:  # the last position taken, not yet written
            self._write_position()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _call(self, method: Method, path: Any, content: Any = None, query: Mapping[str, Any] | None = None,
                    timeout: float | None = None) -> Any:
        if self.api is None:
            raise MatrixConnectionError("the adapter is not started")
        limit = self.settings.request_timeout_seconds if timeout is None else timeout
        return await asyncio.wait_for(
            self.api.request(method, path, content, query_params=dict(query or {})), limit
        )

    async def _connect(self) -> None:
        """Log in (or check the token), join the configured rooms, prepare the first sync."""
        assert self.api is not None
        if self._password and not self._token:
            await self._login()
        try:
            who = await self._call(Method.GET, MPath.v3.account.whoami)
        except MatrixRequestError as exc:
            if exc.errcode == "M_UNKNOWN_TOKEN" and self._password:
                await self._login()
                who = await self._call(Method.GET, MPath.v3.account.whoami)
            else:
                raise
        if who.get("user_id") != self.user_id:
            raise ValueError(f"the access token belongs to {who.get('user_id')}, not the configured {self.user_id}")
        room_filter = {
            "timeline": {"limit": self.settings.timeline_limit},
            "state": {"lazy_load_members": True},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        }
        sync_filter = {
            "room": room_filter,
            "presence": {"not_types": ["*"]},
            "account_data": {"types": ["m.direct"]},
        }
        made = await self._call(Method.POST, MPath.v3.user[self.user_id].filter, sync_filter)
        self._filter_id = str(made["filter_id"])
        await self._join_configured()
        try:
            direct = await self._call(Method.GET, MPath.v3.user[self.user_id].account_data["m.direct"])
        except MatrixRequestError as exc:
            if exc.http_status != 404:
                raise
            direct = {}
        self._read_direct(direct)
        self._connected = True
        if self._next_batch is None:
            # first run: start from now, without treating the rooms' history as new
            first = await self._call(Method.GET, MPath.v3.sync, query={"filter": self._filter_id, "timeout": "0"})
            self._remember(first, deliver=False)
            self._next_batch = str(first["next_batch"])
            self._save_state()
        log.info("%s: logged in as %s on %s; serving %d room(s)", self.platform, self.user_id,
                 self.settings.homeserver, len(self._groups))

    async def _login(self) -> None:
        assert self.api is not None
        out = await self._call(Method.POST, MPath.v3.login, {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.user_id},
            "password": self._password,
            "device_id": self.settings.device_id,
            "initial_device_display_name": "qunyun",
        })
        self._token = str(out["access_token"])
        self.api.token = self._token

    async def _join_configured(self) -> None:
        joined = set((await self._call(Method.GET, MPath.v3.joined_rooms)).get("joined_rooms", []))
        self._groups = {}
        for configured, group in self.rooms.items():
            room = configured
            if configured.startswith("#"):
                try:
                    found = await self._call(Method.GET, MPath.v3.directory.room[configured])
                except MatrixRequestError as exc:
                    self.join_problems[configured] = f"alias {configured} cannot be resolved: {exc.errcode} {exc.message}"
                    log.warning("%s: %s", self.platform, self.join_problems[configured])
                    continue
                room = str(found["room_id"])
                self._aliases[configured] = room
            self._groups[room] = group
            if room in joined:
                self.join_problems.pop(configured, None)
                continue
            try:
                await self._call(Method.POST, MPath.v3.join[configured], {})
                self.join_problems.pop(configured, None)
                self.removed.pop(room, None)
                log.info("%s: joined %s (group %s)", self.platform, configured, group)
            except MatrixRequestError as exc:
                self.join_problems[configured] = f"cannot join {configured}: {exc.errcode} {exc.message}"
                log.warning("%s: %s (invite the bot, it joins by itself)", self.platform, self.join_problems[configured])

    def _read_direct(self, content: Any) -> None:
        if not isinstance(content, dict):
            return
        for user, room_ids in content.items():
            if isinstance(room_ids, list) and room_ids and isinstance(room_ids[-1], str):
                self._dm.setdefault(user, room_ids[-1])

    # -------------------------------------------------------------- sync loop

    async def _loop(self) -> None:
        attempt = 0
        catch_up = True  # the first sync after (re)connecting returns at once with what is waiting
        while not self._stopping:
            try:
                if not self._connected:
                    await self._connect()
                wait_ms = 0 if catch_up else int(self.settings.sync_timeout_seconds * 1000)
                resp = await self._call(
                    Method.GET, MPath.v3.sync,
                    query={"since": self._next_batch, "filter": self._filter_id, "timeout": str(wait_ms)},
                    timeout=self.settings.sync_timeout_seconds + self.settings.request_timeout_seconds,
                )
                attempt = 0
                catch_up = False
                if self.last_error is not None:
                    log.info("%s: homeserver reachable again", self.platform)
                    self.last_error = None
                if not await self._process(resp):
                    log.info("%s: the runtime stopped taking events; the sync position is kept for the next run",
                             self.platform)
                    return
            except asyncio.CancelledError:
                raise
            except (MatrixConnectionError, ClientError, TimeoutError, OSError, MatrixRequestError) as exc:
                if isinstance(exc, MatrixRequestError) and exc.errcode == "M_UNKNOWN_TOKEN":
                    if self._password:
                        self._token = None
                        self._connected = False
                    else:
                        log.error("%s: the access token is no longer valid; set a new one", self.platform)
                attempt += 1
                self.sync_errors += 1
                catch_up = True
                wait = self.backoff.delay(attempt)
                retry_after = getattr(exc, "retry_after", None)
                if isinstance(retry_after, float):
                    wait = max(wait, retry_after)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: sync failed (%s); retrying in %.1f s", self.platform, self.last_error, wait)
                await asyncio.sleep(wait)
            except Exception:
                attempt += 1
                self.sync_errors += 1
                log.exception("%s: unexpected error in the sync loop", self.platform)
                await asyncio.sleep(self.backoff.delay(attempt))

    def _remember(self, resp: Mapping[str, Any], *, deliver: bool) -> None:
        """Update names and DM rooms from a sync response (without handing events over)."""
        for room, data in (resp.get("rooms", {}).get("join", {}) or {}).items():
            for ev in (data.get("state", {}) or {}).get("events", []) or []:
                self._note_member(room, ev)
            if not deliver:
                for ev in (data.get("timeline", {}) or {}).get("events", []) or []:
                    self._note_member(room, ev)
        for ev in (resp.get("account_data", {}) or {}).get("events", []) or []:
            if isinstance(ev, dict) and ev.get("type") == "m.direct":
                self._read_direct(ev.get("content"))

    def _note_member(self, room: str, ev: Any) -> None:
        if not isinstance(ev, dict) or ev.get("type") != "m.room.member":
            return
        user = ev.get("state_key")
        content = ev.get("content")
        if not isinstance(user, str) or not isinstance(content, dict):
            return
        name = content.get("displayname")
        if content.get("membership") == "join" and isinstance(name, str):
            self._names.setdefault(room, {})[user] = name

    async def _process(self, resp: Mapping[str, Any]) -> bool:
        """Hand the events of one sync over; save the position when all were taken."""
        since = self._next_batch
        self._remember(resp, deliver=True)
        rooms = resp.get("rooms", {}) or {}
        for room in (rooms.get("invite", {}) or {}):
            if room in self._groups or room in self.rooms:
                try:
                    await self._call(Method.POST, MPath.v3.join[room], {})
                    self.removed.pop(room, None)
                    log.info("%s: invited back into %s; joined", self.platform, room)
                except MatrixRequestError as exc:
                    log.warning("%s: invited into %s but cannot join: %s", self.platform, room, exc)
        for section in ("join", "leave"):
            for room, data in (rooms.get(section, {}) or {}).items():
                if not await self._room(room, data, since):
                    return False
        self._next_batch = str(resp["next_batch"])
        self._position_taken()
        self.syncs += 1
        self.synced.set()
        return True

    async def _room(self, room: str, data: Mapping[str, Any], since: str | None) -> bool:
        timeline = data.get("timeline", {}) or {}
        events = [e for e in timeline.get("events", []) or [] if isinstance(e, dict)]
        group = self._groups.get(room)
        if group is None:
            self._watch_dm(room, events)
            return True
        if timeline.get("limited") and since is not None:
            events = await self._fill_gap(room, group, timeline.get("prev_batch"), since, len(events)) + events
        for ev in events:
            self._note_member(room, ev)
            if ev.get("type") == "m.room.member" and ev.get("state_key") == self.user_id:
                self._own_membership(room, ev)
                continue
            if not await self._hand_over(room, group, ev):
                return False
        return True

    async def _hand_over(self, room: str, group: str, ev: Mapping[str, Any]) -> bool:
        where = f"{room} event {ev.get('event_id', '?')}"
        try:
            data = mapping.to_event(ev, room=room, group=group, platform=self.platform, self_id=self.user_id,
                                    names=self._names.get(room, {}))
        except PayloadError as exc:
            self.report_bad(where, str(exc))
            return True
        if data is None:
            return True
        event = self.validate(data, where)
        if event is None or self._sink is None:
            return True
        return await self._sink(event)

    def _own_membership(self, room: str, ev: Mapping[str, Any]) -> None:
        raw = ev.get("content")
        content: dict[str, Any] = raw if isinstance(raw, dict) else {}
        membership = content.get("membership")
        sender = str(ev.get("sender"))
        if membership in ("leave", "ban") and sender != self.user_id:
            given = content.get("reason")
            reason = given if isinstance(given, str) else ""
            self.removed[room] = Removal(room, sender, membership == "ban", reason)
            log.warning("%s: the bot was %s from %s (group %s) by %s%s; actions there fail until it is invited back",
                        self.platform, "banned" if membership == "ban" else "removed", room, self._groups.get(room),
                        sender, f": {reason}" if reason else "")
        elif membership == "join":
            self.removed.pop(room, None)

    def _watch_dm(self, room: str, events: list[dict[str, Any]]) -> None:
        """Forget a DM room its member left (the next direct message creates a new one)."""
        for user, dm_room in list(self._dm.items()):
            if dm_room != room:
                continue
            for ev in events:
                if (ev.get("type") == "m.room.member" and ev.get("state_key") == user
                        and (ev.get("content") or {}).get("membership") in ("leave", "ban")):
                    del self._dm[user]
                    log.info("%s: %s left the DM room %s; the next direct message opens a new one",
                             self.platform, user, room)

    async def _fill_gap(self, room: str, group: str, prev_batch: Any, since: str, shown: int) -> list[dict[str, Any]]:
        """Events skipped by a limited timeline, oldest first (fetched from /messages up to the limit)."""
        limit = self.settings.backfill_limit if self.settings.backfill else 0
        fetched: list[dict[str, Any]] = []
        complete = False
        token = prev_batch if isinstance(prev_batch, str) else None
        if token is not None and limit > 0:
            try:
                while len(fetched) < limit:
                    page = await self._call(Method.GET, MPath.v3.rooms[room].messages, query={
                        "from": token, "to": since, "dir": "b", "limit": str(min(100, limit - len(fetched))),
                    })
                    chunk = [e for e in page.get("chunk", []) or [] if isinstance(e, dict)]
                    fetched.extend(chunk)
                    end = page.get("end")
                    if not chunk or not isinstance(end, str) or end == token:
                        complete = True
                        break
                    token = end
            except MatrixRequestError as exc:
                log.warning("%s: backfill of %s failed: %s", self.platform, room, exc)
        fetched.reverse()
        missing = 0 if complete else None
        self.gaps.append(Gap(room, group, len(fetched), complete, missing))
        if complete:
            log.warning("%s: sync gap in %s (group %s): %d skipped event(s) fetched from /messages", self.platform,
                        room, group, len(fetched))
        else:
            log.warning("%s: sync gap in %s (group %s): %d event(s) fetched, an unknown number more may be missing "
                        "(backfill %s, limit %d)", self.platform, room, group, len(fetched),
                        "on" if self.settings.backfill else "off", limit)
        return fetched

    # ----------------------------------------------------------------- actions

    def _room_id(self, action: Mapping[str, Any]) -> str:
        room = str(action.get("room") or action.get("group"))
        return self._aliases.get(room, room)

    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        if self.api is None:
            return DeliveryResult.retry("the Matrix adapter is not started")
        kind = action.get("type")
        aid = str(action.get("id"))
        try:
            if kind in ("send", "notify_admins"):
                room = self._room_id(action)
                if room in self.removed:
                    return self._removed_result(room)
                msgtype = "m.notice" if kind == "notify_admins" or action.get("notify_admins") else self.settings.msgtype
                content = mapping.message_content(
                    str(action.get("text", "")), list(action.get("mentions") or []), names=self._names.get(room, {}),
                    reply_to=action.get("reply_to"), msgtype=msgtype,
                )
                return await self._send(room, content, aid)
            if kind == "direct":
                member = str(action["member"])
                room = await self._dm_room(member)
                content = mapping.message_content(str(action.get("text", "")), [], names={},
                                                  msgtype=self.settings.msgtype)
                return await self._send(room, content, aid)
            if kind == "remove":
                return await self._kick(action)
            if kind == "delete":
                room = self._room_id(action)
                if room in self.removed:
                    return self._removed_result(room)
                out = await self._call(Method.PUT, MPath.v3.rooms[room].redact[str(action["msg_id"])][aid], {})
                return DeliveryResult.ok(out.get("event_id"))
            if kind == "invite":
                return await self._invite(action)
            if kind == "pin":
                return await self._pin(action)
            if kind == "create_group":
                return await self._create_group(action)
            return DeliveryResult.failed(f"Matrix cannot {kind}: not supported by the Matrix adapter")
        except MatrixRequestError as exc:
            return self._judge(exc)
        except (MatrixConnectionError, ClientError, TimeoutError, OSError) as exc:
            return DeliveryResult.retry(f"homeserver unreachable: {type(exc).__name__}: {exc}")
        except (KeyError, ValueError, TypeError) as exc:
            return DeliveryResult.failed(f"malformed {kind} action: {exc}")

    def _removed_result(self, room: str) -> DeliveryResult:
        return DeliveryResult.failed(str(self._removal_text(room)))

    def _judge(self, exc: MatrixRequestError) -> DeliveryResult:
        status = getattr(exc, "http_status", 0) or 0
        what = f"{exc.errcode or 'HTTP ' + str(status)}: {exc.message or exc}"
        if status == 429 or exc.errcode == "M_LIMIT_EXCEEDED":
            after = getattr(exc, "retry_after", None)
            return DeliveryResult.retry(what, after=after, everywhere=True)  # Matrix limits are per user
        if status >= 500 or status == 0:
            return DeliveryResult.retry(what)
        if exc.errcode == "M_UNKNOWN_TOKEN" and self._password:
            self._connected = False
            return DeliveryResult.retry(what)
        return DeliveryResult.failed(what)

    async def _send(self, room: str, content: dict[str, Any], txn: str) -> DeliveryResult:
        out = await self._call(Method.PUT, MPath.v3.rooms[room].send["m.room.message"][txn], content)
        return DeliveryResult.ok(out.get("event_id"))

    async def _membership(self, room: str, user: str) -> str | None:
        try:
            state = await self._call(Method.GET, MPath.v3.rooms[room].state["m.room.member"][user])
        except MatrixRequestError as exc:
            if exc.http_status in (403, 404):
                return None
            raise
        value = state.get("membership")
        return value if isinstance(value, str) else None

    async def _kick(self, action: Mapping[str, Any]) -> DeliveryResult:
        room = self._room_id(action)
        if room in self.removed:
            return self._removed_result(room)
        member = str(action["member"])
        body: dict[str, Any] = {"user_id": member}
        if action.get("reason"):
            body["reason"] = str(action["reason"])[:500]
        try:
            await self._call(Method.POST, MPath.v3.rooms[room].kick, body)
        except MatrixRequestError as exc:
            if exc.http_status == 403 and await self._membership(room, member) in ("leave", "ban", None):
                return DeliveryResult.ok()  # already gone (a redelivery, or they left first)
            raise
        return DeliveryResult.ok()

    async def _invite(self, action: Mapping[str, Any]) -> DeliveryResult:
        room = self._room_id(action)
        if room in self.removed:
            return self._removed_result(room)
        member = str(action["member"])
        try:
            await self._call(Method.POST, MPath.v3.rooms[room].invite, {"user_id": member})
        except MatrixRequestError as exc:
            if exc.http_status == 403 and await self._membership(room, member) in ("invite", "join"):
                return DeliveryResult.ok()
            raise
        return DeliveryResult.ok()

    async def _pin(self, action: Mapping[str, Any]) -> DeliveryResult:
        room = self._room_id(action)
        if room in self.removed:
            return self._removed_result(room)
        event_id = str(action["msg_id"])
        try:
            current = await self._call(Method.GET, MPath.v3.rooms[room].state["m.room.pinned_events"])
            pinned = [p for p in current.get("pinned", []) if isinstance(p, str)]
        except MatrixRequestError as exc:
            if exc.http_status != 404:
                raise
            pinned = []
        if event_id in pinned:
            return DeliveryResult.ok()
        out = await self._call(Method.PUT, MPath.v3.rooms[room].state["m.room.pinned_events"],
                               {"pinned": [*pinned, event_id]})
        return DeliveryResult.ok(out.get("event_id"))

    async def _create_group(self, action: Mapping[str, Any]) -> DeliveryResult:
        aid = str(action["id"])
        if aid in self._created:
            return DeliveryResult.ok(self._created[aid])
        name = str(action["template"])
        template = self.settings.room_templates.get(name)
        if template is None:
            known = ", ".join(sorted(self.settings.room_templates)) or "none"
            return DeliveryResult.failed(f"no room template named {name!r} (configured: {known})")
        body: dict[str, Any] = {"preset": template.preset, "visibility": template.visibility,
                                "invite": list(template.invite), "creation_content": {"org.qunyun.action": aid}}
        if template.name:
            body["name"] = template.name
        if template.topic:
            body["topic"] = template.topic
        if template.power_users:
            body["power_level_content_override"] = {"users": {**template.power_users, self.user_id: 100}}
        alias = None
        if template.alias:
            body["room_alias_name"] = _local_alias(aid)
            alias = f"#{body['room_alias_name']}:{self.user_id.split(':', 1)[1]}"
        try:
            out = await self._call(Method.POST, MPath.v3.createRoom, body)
            room = str(out["room_id"])
        except MatrixRequestError as exc:
            if exc.errcode != "M_ROOM_IN_USE" or alias is None:
                raise
            room = str((await self._call(Method.GET, MPath.v3.directory.room[alias]))["room_id"])
        self._created[aid] = room
        self._save_state()
        log.info("%s: created room %s from template %s; add it to the configuration to serve it", self.platform,
                 room, name)
        return DeliveryResult.ok(room)

    async def _dm_room(self, member: str) -> str:
        """The DM room with ``member``: the one remembered (m.direct), or a new one, created once."""
        lock = self._dm_locks.setdefault(member, asyncio.Lock())
        async with lock:
            room = self._dm.get(member)
            if room is not None:
                return room
            out = await self._call(Method.POST, MPath.v3.createRoom, {
                "is_direct": True, "invite": [member], "preset": "trusted_private_chat",
            })
            room = str(out["room_id"])
            self._dm[member] = room
            self._save_state()
            try:
                direct = await self._call(Method.GET, MPath.v3.user[self.user_id].account_data["m.direct"])
            except MatrixRequestError as exc:
                if exc.http_status != 404:
                    raise
                direct = {}
            rooms = [r for r in direct.get(member, []) if isinstance(r, str) and r != room]
            direct[member] = [*rooms, room]
            await self._call(Method.PUT, MPath.v3.user[self.user_id].account_data["m.direct"], direct)
            log.info("%s: opened a DM room with %s: %s", self.platform, member, room)
            return room

    # ----------------------------------------------------------------- doctor

    async def check(self) -> list[DoctorCheck]:
        name = Msg("{platform} (Matrix {homeserver})", platform=self.platform, homeserver=self.settings.homeserver)
        if self.api is None:
            return [DoctorCheck(name, None, Msg("not running: start `qunyun run`"))]
        try:
            who = await self._call(Method.GET, MPath.v3.account.whoami)
        except MatrixRequestError as exc:
            return [DoctorCheck(name, False, Msg("the homeserver refuses the bot: {errcode} {error}",
                                                 errcode=exc.errcode, error=exc.message))]
        except (MatrixConnectionError, ClientError, TimeoutError, OSError) as exc:
            return [DoctorCheck(name, False, Msg("homeserver unreachable: {error}", error=str(exc)))]
        checks = [DoctorCheck(name, True, Msg("logged in as {user}", user=who.get("user_id")))]
        for configured, group in sorted(self.rooms.items()):
            checks.append(await self._check_room(self._aliases.get(configured, configured), configured, group))
        return checks

    async def _check_room(self, room: str, configured: str, group: str) -> DoctorCheck:
        name = Msg("{platform} room {group}", platform=self.platform, group=group)
        if room in self.removed:
            return DoctorCheck(name, False, self._removal_text(room))
        if configured in self.join_problems:  # the homeserver's words, as `qunyun run` logged them
            return DoctorCheck(name, False, self.join_problems[configured], [Msg("invite the bot into the room")])
        try:
            levels = await self._call(Method.GET, MPath.v3.rooms[room].state["m.room.power_levels"])
        except MatrixRequestError as exc:
            return DoctorCheck(name, False, Msg("cannot read the room: {errcode} {error}",
                                                errcode=exc.errcode, error=exc.message))
        except (MatrixConnectionError, ClientError, TimeoutError, OSError) as exc:
            return DoctorCheck(name, False, Msg("homeserver unreachable: {error}", error=str(exc)))
        users = levels.get("users") if isinstance(levels.get("users"), dict) else {}
        mine = int(users.get(self.user_id, levels.get("users_default", 0)))
        state_default = int(levels.get("state_default", 50))
        events = levels.get("events") if isinstance(levels.get("events"), dict) else {}
        needs = {
            Msg("remove members"): int(levels.get("kick", 50)),
            Msg("delete messages"): int(levels.get("redact", 50)),
            Msg("invite"): int(levels.get("invite", 0)),
            Msg("pin"): int(events.get("m.room.pinned_events", state_default)),
            Msg("post"): int(events.get("m.room.message", levels.get("events_default", 0))),
        }
        missing = [Msg("{what} (needs {level})", what=what, level=level) for what, level in needs.items() if mine < level]
        if missing:
            return DoctorCheck(name, False, Msg("the bot's power level {level} is too low to {missing}",
                                                level=mine, missing=listing(missing)),
                               [Msg("give {user} power level {level} (moderator) in {room}",
                                    user=self.user_id, level=max(needs.values()), room=configured)])
        return DoctorCheck(name, True, Msg("joined, power level {level}: it can post, remove, delete, invite and pin",
                                           level=mine))

    def _removal_text(self, room: str) -> Msg:
        """Why nothing can be done in ``room``: the bot was removed (for a failed delivery and for doctor)."""
        r = self.removed[room]
        if r.ban:
            if r.reason:
                return Msg("the bot was banned from {room} by {by} ({reason}); invite it back to act there",
                           room=room, by=r.by, reason=r.reason)
            return Msg("the bot was banned from {room} by {by}; invite it back to act there", room=room, by=r.by)
        if r.reason:
            return Msg("the bot was removed from {room} by {by} ({reason}); invite it back to act there",
                       room=room, by=r.by, reason=r.reason)
        return Msg("the bot was removed from {room} by {by}; invite it back to act there", room=room, by=r.by)


__all__ = ["Gap", "MatrixAdapter", "Removal"]
