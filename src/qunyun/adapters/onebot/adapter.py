"""The OneBot adapter: QQ through OneBot 11 (NapCat, LLBot), WeChat through OneBot 12.

qunyun is the *application* side. It listens (``aiohttp.web``) and the
OneBot implementation connects to it:

- **reverse WebSocket** (``ws_path``): the implementation connects with
  ``Authorization: Bearer <token>`` (or ``?access_token=``); OneBot 11 adds
  ``X-Self-ID`` (the bot's QQ number) and ``X-Client-Role`` (``Universal``,
  ``Event`` or ``API``); OneBot 12 offers ``Sec-WebSocket-Protocol:
  12.<impl>``. Events arrive on it, and qunyun's API calls go out on it with
  an ``echo`` each, answered by a response carrying the same ``echo``.
- **HTTP POST** (``http_path``): events only. OneBot 11 signs the body
  (``X-Signature: sha1=<HMAC-SHA1 of the body with the secret>``, checked in
  constant time); OneBot 12 webhooks carry the bearer token instead. The
  reply is ``204``: qunyun never uses "quick operations", every action goes
  through the outbox.

Payloads are turned into events at the edge (:mod:`.mapping`); a malformed
or oversized payload is reported (:meth:`Adapter.report_bad`) and dropped,
and the connection carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from qunyun.adapters.base import (
    Adapter,
    DeliveryResult,
    DoctorCheck,
    Limits,
    PayloadError,
    Rate,
    Sink,
)
from qunyun.adapters.onebot import mapping
from qunyun.core.clock import Clock, SystemClock
from qunyun.core.errors import Msg

log = logging.getLogger("qunyun.adapters.onebot")


@dataclass(frozen=True)
class OneBotOptions:
    """Resolved settings of one OneBot adapter (secrets already read)."""

    platform: str = "onebot"
    version: int = 11
    host: str = "127.0.0.1"
    port: int = 8080
    ws_path: str = "/onebot/ws"
    http_path: str | None = "/onebot/http"
    access_token: str | None = None
    secret: str | None = None
    self_id: str | None = None
    extensions: frozenset[str] = frozenset()
    max_payload_bytes: int = 1_048_576
    api_timeout: float = 30.0
    limits: Limits = field(default_factory=lambda: Limits(Rate(20, 60.0), Rate(5, 1.0)))
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    concurrency: int = 8

    @classmethod
    def from_spec(cls, spec: Any, *, access_token: str | None, secret: str | None) -> OneBotOptions:
        def rate(r: Any) -> Rate | None:
            return None if r is None else Rate(r.count, r.per_seconds)

        return cls(
            platform=spec.platform,
            version=spec.version,
            host=spec.host,
            port=spec.port,
            ws_path=spec.ws_path,
            http_path=spec.http_path,
            access_token=access_token,
            secret=secret,
            self_id=spec.self_id,
            extensions=frozenset(spec.extensions),
            max_payload_bytes=spec.max_payload_bytes,
            api_timeout=spec.api_timeout_seconds,
            limits=Limits(rate(spec.limits.per_group), rate(spec.limits.overall)),
            max_attempts=spec.retry.max_attempts,
            backoff_base=spec.retry.base_seconds,
            backoff_cap=spec.retry.cap_seconds,
            concurrency=spec.concurrency,
        )


class _Connection:
    __slots__ = ("api", "events", "peer", "self_id", "ws")

    def __init__(self, ws: web.WebSocketResponse, *, api: bool, events: bool, self_id: str | None, peer: str) -> None:
        self.ws = ws
        self.api = api
        self.events = events
        self.self_id = self_id
        self.peer = peer


class OneBotAdapter(Adapter):
    """Serves one OneBot implementation (one bot account) over reverse WebSocket and HTTP."""

    def __init__(
        self,
        options: OneBotOptions,
        *,
        rooms: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        if options.version not in (11, 12):
            raise ValueError("OneBot version must be 11 or 12")
        self.options = options
        self.platform = options.platform
        self.capabilities = mapping.capabilities(options.version, options.extensions)
        self.limits = options.limits
        #: platform room id → group key (groups whose config says ``room:``)
        self.rooms = dict(rooms or {})
        self.clock = clock or SystemClock()
        self._sink: Sink | None = None
        self._runner: web.AppRunner | None = None
        self._connections: list[_Connection] = []
        self._pending: dict[str, tuple[asyncio.Future[Any], _Connection]] = {}
        self._echo = itertools.count(1)
        #: (room, user) → the flag of their pending join request (v11)
        self._requests: dict[tuple[str, str], str] = {}
        self.port: int | None = None
        self.connected_self_ids: set[str] = set()
        self.refused = 0

    # ------------------------------------------------------------- lifecycle

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        opts = self.options
        app = web.Application(client_max_size=opts.max_payload_bytes + 1)
        app.router.add_get(opts.ws_path, self._ws_handler)
        if opts.http_path is not None:
            app.router.add_post(opts.http_path, self._http_handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, opts.host, opts.port)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else opts.port
        log.info(
            "%s: OneBot %d listening on ws://%s:%d%s%s", self.platform, opts.version, opts.host, self.port,
            opts.ws_path, f" and http://{opts.host}:{self.port}{opts.http_path}" if opts.http_path else "",
        )

    async def stop(self) -> None:
        for conn in list(self._connections):
            await conn.ws.close(code=1001, message=b"qunyun is stopping")
        self._fail_pending(None, "qunyun is stopping")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def connected(self) -> bool:
        return any(c.api and not c.ws.closed for c in self._connections)

    # ------------------------------------------------------------------ auth

    def _token_ok(self, request: web.Request) -> tuple[bool, int]:
        """(authorised, status to refuse with: 401 no token, 403 wrong token)."""
        token = self.options.access_token
        if not token:
            return True, 0
        header = request.headers.get("Authorization", "")
        given: str | None = None
        if header[:7].lower() == "bearer ":
            given = header[7:]
        elif header[:6].lower() == "token ":
            given = header[6:]  # some v11 implementations send "Token <t>"
        elif "access_token" in request.query:
            given = request.query["access_token"]
        if given is None:
            return False, 401
        return hmac.compare_digest(given.encode(), token.encode()), 403

    def _refuse(self, request: web.Request, status: int, why: str) -> web.Response:
        self.refused += 1
        log.warning("%s: refused %s %s from %s: %s", self.platform, request.method, request.path, request.remote, why)
        return web.Response(status=status, text=why + "\n")

    # ------------------------------------------------------------- websocket

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ok, status = self._token_ok(request)
        if not ok:
            return self._refuse(request, status, "missing access token" if status == 401 else "wrong access token")
        opts = self.options
        self_id: str | None = None
        api = events = True
        protocols: tuple[str, ...] = ()
        if opts.version == 11:
            self_id = request.headers.get("X-Self-ID", "").strip()
            if not self_id.isdigit():
                return self._refuse(request, 400, "X-Self-ID (the bot's QQ number) is missing")
            role = request.headers.get("X-Client-Role", "").strip().lower()
            if role not in ("universal", "event", "api"):
                return self._refuse(request, 400, "X-Client-Role must be Universal, Event or API")
            api = role in ("universal", "api")
            events = role in ("universal", "event")
        else:
            offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
            protocols = tuple(p for p in offered if p.startswith("12."))
        if opts.self_id is not None and self_id is not None and self_id != opts.self_id:
            return self._refuse(request, 403, f"bot {self_id} is not the configured self_id")
        ws = web.WebSocketResponse(
            protocols=protocols, heartbeat=30.0, max_msg_size=max(4 * opts.max_payload_bytes, 4_194_304)
        )
        await ws.prepare(request)
        conn = _Connection(ws, api=api, events=events, self_id=self_id, peer=str(request.remote))
        self._connections.append(conn)
        if self_id:
            self.connected_self_ids.add(self_id)
        log.info("%s: implementation connected from %s (bot %s, %s)", self.platform, conn.peer, self_id or "?",
                 "api+events" if api and events else "api" if api else "events")
        count = 0
        try:
            async for msg in ws:
                count += 1
                where = f"ws {conn.peer} frame {count}"
                if msg.type == WSMsgType.TEXT:
                    await self._ws_text(conn, msg.data, where)
                elif msg.type == WSMsgType.BINARY:
                    self.report_bad(where, "binary frame (MessagePack) is not supported; use JSON")
                elif msg.type == WSMsgType.ERROR:
                    self.report_bad(where, f"connection error: {ws.exception()}")
        finally:
            self._connections.remove(conn)
            self._fail_pending(conn, "the implementation disconnected")
            log.info("%s: implementation from %s disconnected", self.platform, conn.peer)
        return ws

    async def _ws_text(self, conn: _Connection, text: str, where: str) -> None:
        size = len(text.encode()) if len(text) * 4 > self.options.max_payload_bytes else len(text)
        if size > self.options.max_payload_bytes:
            self.report_bad(where, f"payload of {size:,} bytes is over the {self.options.max_payload_bytes:,}-byte limit")
            return
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.report_bad(where, f"not valid JSON: {exc}")
            return
        if isinstance(payload, dict) and "echo" in payload and ("retcode" in payload or "status" in payload):
            entry = self._pending.get(str(payload.get("echo")))
            if entry is not None and not entry[0].done():
                entry[0].set_result(payload)
            return
        if not conn.events:
            self.report_bad(where, "an event arrived on an API-only connection")
            return
        await self._event(payload, where)

    # ------------------------------------------------------------------ http

    async def _http_handler(self, request: web.Request) -> web.StreamResponse:
        opts = self.options
        where = f"http {request.remote}"
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.report_bad(where, f"payload over the {opts.max_payload_bytes:,}-byte limit")
            return web.Response(status=413, text="payload too large\n")
        if opts.version == 11 and opts.secret:
            given = request.headers.get("X-Signature", "")
            expected = "sha1=" + hmac.new(opts.secret.encode(), body, hashlib.sha1).hexdigest()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return self._refuse(request, 403 if given else 401, "bad or missing X-Signature")
        elif opts.version == 12 or opts.access_token:
            ok, status = self._token_ok(request)
            if not ok:
                return self._refuse(request, status, "missing access token" if status == 401 else "wrong access token")
        if opts.version == 11:
            self_id = request.headers.get("X-Self-ID", "").strip()
            if opts.self_id is not None and self_id and self_id != opts.self_id:
                return self._refuse(request, 403, f"bot {self_id} is not the configured self_id")
        if len(body) > opts.max_payload_bytes:
            self.report_bad(where, f"payload of {len(body):,} bytes is over the {opts.max_payload_bytes:,}-byte limit")
            return web.Response(status=413, text="payload too large\n")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self.report_bad(where, f"not valid JSON: {exc}")
            return web.Response(status=400, text="not valid JSON\n")
        taken = await self._event(payload, where)
        return web.Response(status=204 if taken is not False else 503)

    # ---------------------------------------------------------------- events

    async def _event(self, payload: Any, where: str) -> bool | None:
        """Map and hand one payload to the sink. None: nothing for qunyun; False: refused."""
        opts = self.options
        if opts.version == 12 and isinstance(payload, dict) and opts.self_id is not None:
            me = payload.get("self")
            if isinstance(me, dict) and str(me.get("user_id")) != opts.self_id:
                self.report_bad(where, f"event for bot {me.get('user_id')}, not the configured self_id")
                return False
        try:
            event = mapping.payload_to_event(
                payload, version=opts.version, platform=self.platform, rooms=self.rooms, self_id=opts.self_id
            )
        except PayloadError as exc:
            ident = (payload.get("id") or payload.get("message_id")) if isinstance(payload, dict) else None
            self.report_bad(where + (f" (id {ident})" if ident is not None else ""), str(exc))
            return False
        if event is None:
            return None
        if event["type"] == "join_request":
            flag = event.get("onebot", {}).get("flag")
            room = str(payload.get("group_id"))
            if flag:
                self._requests[(room, event["actor"]["id"])] = flag
        if self._sink is None:
            return False
        return await self._sink(event)

    # ------------------------------------------------------------------- API

    def _api_connection(self) -> _Connection | None:
        for conn in reversed(self._connections):
            if conn.api and not conn.ws.closed:
                return conn
        return None

    def _fail_pending(self, conn: _Connection | None, why: str) -> None:
        for echo, (fut, owner) in list(self._pending.items()):
            if conn is not None and owner is not conn:
                continue
            if not fut.done():
                fut.set_exception(ConnectionError(why))
            self._pending.pop(echo, None)

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        """One API call over the WebSocket; returns the response. Raises ConnectionError/TimeoutError."""
        conn = self._api_connection()
        if conn is None:
            raise ConnectionError("no OneBot implementation is connected")
        echo = f"qunyun-{next(self._echo)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[echo] = (fut, conn)
        try:
            await conn.ws.send_str(orjson.dumps({"action": action, "params": params, "echo": echo}).decode())
            return await asyncio.wait_for(fut, self.options.api_timeout)
        finally:
            self._pending.pop(echo, None)

    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        opts = self.options
        if action.get("type") == "invite" and opts.version == 11:
            action = {**action, "flag": await self._flag(str(action.get("room")), action)}
        try:
            name, params = mapping.action_to_call(
                action, version=opts.version, extensions=opts.extensions, now=self.clock.now()
            )
        except (mapping.Unsupported, KeyError, ValueError) as exc:
            return DeliveryResult.failed(f"cannot be done on OneBot {opts.version}: {exc}")
        try:
            response = await self.call(name, params)
        except ConnectionError as exc:
            return DeliveryResult.retry(str(exc))
        except TimeoutError:
            return DeliveryResult.retry(f"no answer to {name} within {opts.api_timeout:g} s")
        result = mapping.interpret(response)
        if result.status != "ok":
            result = DeliveryResult(result.status, f"{name}: {result.reason}", result.retry_after, result.everywhere)
        elif action.get("type") == "invite":
            self._requests.pop((str(action.get("room")), str(action.get("member"))), None)
        return result

    async def _flag(self, room: str, action: Mapping[str, Any]) -> str | None:
        member = str(action.get("member"))
        flag = self._requests.get((room, member))
        if flag is None and self.history is not None:
            stored = await self.history(self.platform, str(action.get("group")), "join_request", member)
            onebot = stored.get("onebot") if isinstance(stored, dict) else None
            if isinstance(onebot, dict) and isinstance(onebot.get("flag"), str):
                flag = onebot["flag"]
        return flag

    # ---------------------------------------------------------------- doctor

    async def check(self) -> list[DoctorCheck]:
        opts = self.options
        name = Msg("{platform} (OneBot {version})", platform=self.platform, version=opts.version)
        if self._runner is None:
            return [DoctorCheck(name, None, Msg("not running: start `qunyun run` and connect the implementation"))]
        if not self.connected:
            return [DoctorCheck(name, False, Msg("listening on port {port}, but no implementation is connected",
                                                 port=self.port),
                                [Msg("point the implementation's reverse WebSocket at ws://{host}:{port}{path}",
                                     host=opts.host, port=self.port, path=opts.ws_path)])]
        checks: list[DoctorCheck] = []
        try:
            info = await self.call("get_login_info" if opts.version == 11 else "get_self_info", {})
            data = info.get("data") if isinstance(info, dict) else None
            who = data.get("user_id") if isinstance(data, dict) else "?"
            checks.append(DoctorCheck(name, True, Msg("connected as {who}", who=who)))
        except (ConnectionError, TimeoutError) as exc:
            return [DoctorCheck(name, False, Msg("connected, but the implementation does not answer: {error}",
                                                 error=str(exc)))]
        if opts.version == 11:
            for room, group in sorted(self.rooms.items()):
                checks.append(await self._check_admin(room, group, str(who)))
        return checks

    async def _check_admin(self, room: str, group: str, me: str) -> DoctorCheck:
        name = Msg("{platform} group {group}", platform=self.platform, group=group)
        if not room.isdigit() or not me.isdigit():
            return DoctorCheck(name, None, Msg("not checked: not a QQ group/bot number"))
        try:
            resp = await self.call("get_group_member_info", {"group_id": int(room), "user_id": int(me), "no_cache": True})
        except (ConnectionError, TimeoutError) as exc:
            return DoctorCheck(name, False, Msg("no answer: {error}", error=str(exc)))
        data = resp.get("data") if isinstance(resp, dict) else None
        role = data.get("role") if isinstance(data, dict) else None
        if role in ("owner", "admin"):
            return DoctorCheck(name, True, Msg("the bot is {role}: it can remove, mute and delete", role=role))
        if role is None:
            return DoctorCheck(name, False, Msg("the bot is not in this group (or the implementation cannot tell)"))
        return DoctorCheck(name, False, Msg("the bot is a plain member: removing, muting and deleting will fail"),
                           [Msg("make the bot an admin of the group, or expect admins to be asked to do it by hand")])

