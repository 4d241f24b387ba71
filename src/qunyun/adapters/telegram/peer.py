"""A loopback Telegram Bot API server, for tests.

No real Telegram can run offline, so this plays ``api.telegram.org`` on
``127.0.0.1``: ``/bot<token>/<method>`` as the published Bot API describes
it (parameters in the query string, ``application/x-www-form-urlencoded``,
``multipart/form-data`` or JSON; every answer ``{"ok": …}`` with
``error_code``, ``description`` and ``parameters`` on failure). Its answers
are the recorded-shape responses in ``fixtures/response_*.json``.

It records every call (:attr:`calls`) so tests can assert on what the
adapter asked for, queues updates for ``getUpdates`` (:meth:`push`, with
offsets confirming them the way Telegram does), plays Telegram posting to a
registered webhook (:meth:`post_webhook`) and can be told to fail
(:meth:`fail`, e.g. with a 429 ``retry_after``).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: Parameters the Bot API types as Integer (chat_id: Integer or String).
_INTEGER = frozenset(
    {"chat_id", "user_id", "message_id", "offset", "limit", "timeout", "until_date", "member_limit", "expire_date",
     "sender_chat_id", "message_thread_id", "max_connections"}
)
_BOOLEAN = frozenset(
    {"disable_notification", "revoke_messages", "only_if_banned", "use_independent_chat_permissions",
     "drop_pending_updates", "creates_join_request", "protect_content"}
)
#: Parameters sent JSON-serialised in form bodies.
_JSON = frozenset({"entities", "reply_parameters", "permissions", "allowed_updates", "reply_markup", "link_preview_options"})
_REQUIRED = {
    "sendMessage": ("chat_id", "text"),
    "deleteMessage": ("chat_id", "message_id"),
    "banChatMember": ("chat_id", "user_id"),
    "unbanChatMember": ("chat_id", "user_id"),
    "banChatSenderChat": ("chat_id", "sender_chat_id"),
    "unbanChatSenderChat": ("chat_id", "sender_chat_id"),
    "restrictChatMember": ("chat_id", "user_id", "permissions"),
    "createChatInviteLink": ("chat_id",),
    "revokeChatInviteLink": ("chat_id", "invite_link"),
    "pinChatMessage": ("chat_id", "message_id"),
    "getChatMember": ("chat_id", "user_id"),
    "setWebhook": ("url",),
    "getMe": (),
    "getUpdates": (),
    "deleteWebhook": (),
    "getWebhookInfo": (),
}


def fixture(name: str) -> Any:
    """A fixture beside the adapter, parsed (``update_message_text``, ``response_getMe``…)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    """One request the peer received: the method and its parameters, typed as the Bot API types them."""

    method: str
    params: dict[str, Any]


class _Failure(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("description"))
        self.body = body


class BotAPIPeer:
    """Plays the Bot API for one bot token on 127.0.0.1 (a free port)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._failures: dict[str, list[dict[str, Any]]] = {}
        self._message_ids = itertools.count(5001)
        self._links = itertools.count(1)
        #: (chat id, user id) → ChatMember (getChatMember); the bot is an administrator unless told otherwise
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        #: users who never started the bot: a private message to them is refused (403)
        self.no_dm: set[int] = set()
        #: chats the bot was kicked from: everything there is refused (403)
        self.kicked_from: set[int] = set()
        self.webhook: dict[str, Any] = {}
        self.unauthorized = 0
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -------------------------------------------------------------- control

    @property
    def base(self) -> str:
        """What to give the adapter as ``api_base``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> BotAPIPeer:
        app = web.Application(client_max_size=64 * 1_048_576)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._arrived.set()  # a long poll in progress answers now
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates for getUpdates."""
        for update in updates:
            self.updates.append(copy.deepcopy(update))
        self.updates.sort(key=lambda u: u["update_id"] if isinstance(u.get("update_id"), int) else -1)
        self._arrived.set()

    def fail(self, method: str, response: str | dict[str, Any], times: int = 1, *, after: int = 0) -> None:
        """``times`` calls of ``method`` get this error (a fixture name or a response object), once ``after``
        more calls have gone through."""
        body = fixture(response) if isinstance(response, str) else response
        self._failures.setdefault(method, []).extend([{"_pass": True}] * after + [body] * times)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``method``, in order."""
        return [c.params for c in self.calls if c.method == method]

    async def post_webhook(self, update: Any, *, secret: str | None = "use-registered",
                           raw: bytes | None = None) -> int:
        """Post an update to the registered webhook as Telegram does; returns the HTTP status."""
        headers = {"Content-Type": "application/json"}
        token = self.webhook.get("secret_token") if secret == "use-registered" else secret
        if token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        body = raw if raw is not None else json.dumps(update, ensure_ascii=False).encode()
        async with aiohttp.ClientSession() as session, session.post(self.webhook["url"], data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    # ------------------------------------------------------------- serving

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                form = await request.post()
                raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str):
                if key in _JSON:
                    value = json.loads(value)
                elif key in _INTEGER and value.lstrip("-").isdigit():
                    value = int(value)
                elif key in _BOOLEAN:
                    value = value.lower() == "true"
            params[key] = value
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            self.unauthorized += 1
            return web.json_response(fixture("response_unauthorized"), status=401)
        try:
            params = await self._params(request)
        except (ValueError, json.JSONDecodeError):
            return self._error(400, "Bad Request: can't parse request parameters")
        self.calls.append(Call(method, params))
        if method not in _REQUIRED:
            return self._error(404, "Not Found")
        for name in _REQUIRED[method]:
            if params.get(name) in (None, ""):
                return self._error(400, f"Bad Request: {name} is empty" if name != "text" else "Bad Request: message text is empty")
        queued = self._failures.get(method)
        if queued:
            body = queued.pop(0)
            if "_pass" not in body:
                return web.json_response(body, status=int(body["error_code"]))
        try:
            result = await getattr(self, f"_{method}")(params)
        except _Failure as failure:
            return web.json_response(failure.body, status=int(failure.body["error_code"]))
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str) -> web.Response:
        return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)

    def _chat(self, params: dict[str, Any]) -> int:
        chat = params.get("chat_id")
        if not isinstance(chat, int):
            raise _Failure({"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if chat in self.kicked_from:
            raise _Failure(fixture("response_forbidden_kicked"))
        return chat

    # ------------------------------------------------------------- methods

    async def _getMe(self, params: dict[str, Any]) -> Any:
        return fixture("response_getMe")["result"]

    async def _getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            raise _Failure(fixture("response_conflict_webhook"))
        offset = params.get("offset")
        if isinstance(offset, int):  # confirmed: forgotten, as Telegram does
            self.updates = [u for u in self.updates if not (isinstance(u.get("update_id"), int) and u["update_id"] < offset)]
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        if not self.updates and timeout > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return []
        return self.updates[:limit]

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = dict(params)
        return True

    async def _getWebhookInfo(self, params: dict[str, Any]) -> Any:
        info = fixture("response_getWebhookInfo")["result"]
        if self.webhook.get("url"):
            info["url"] = self.webhook["url"]
            info["allowed_updates"] = self.webhook.get("allowed_updates", [])
        return info

    async def _sendMessage(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        text = str(params["text"])
        if chat > 0 and chat in self.no_dm:
            raise _Failure(fixture("response_forbidden_dm"))
        if _utf16_len(text) > 4096:
            raise _Failure({"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        entities = params.get("entities") or []
        total = _utf16_len(text)
        for i, entity in enumerate(entities):
            offset, length = entity.get("offset"), entity.get("length")
            if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 1 or offset + length > total:
                raise _Failure({"ok": False, "error_code": 400,
                                "description": f"Bad Request: can't parse entities: entity {i} is outside the text"})
            if entity.get("type") == "text_mention" and not isinstance((entity.get("user") or {}).get("id"), int):
                raise _Failure({"ok": False, "error_code": 400,
                                "description": "Bad Request: can't parse entities: a text_mention needs user.id"})
        message = fixture("response_sendMessage")["result"]
        message["message_id"] = next(self._message_ids)
        message["text"] = text
        if chat > 0:
            message["chat"] = {"id": chat, "type": "private", "first_name": "member"}
        else:
            message["chat"]["id"] = chat
        if entities:
            message["entities"] = entities
        return message

    async def _deleteMessage(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        return True

    async def _banChatMember(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        self.members[(params["chat_id"], params["user_id"])] = {"user": {"id": params["user_id"], "is_bot": False,
                                                                         "first_name": "member"}, "status": "kicked",
                                                                "until_date": 0}
        return True

    async def _unbanChatMember(self, params: dict[str, Any]) -> Any:
        key = (self._chat(params), params["user_id"])
        if self.members.get(key, {}).get("status") == "kicked":
            self.members[key] = {"user": self.members[key]["user"], "status": "left"}
        return True

    async def _banChatSenderChat(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        return True

    async def _unbanChatSenderChat(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        return True

    async def _restrictChatMember(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        if not isinstance(params.get("permissions"), dict):
            raise _Failure({"ok": False, "error_code": 400, "description": "Bad Request: invalid permissions specified"})
        return True

    async def _createChatInviteLink(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        limit = params.get("member_limit")
        if limit is not None and not 1 <= limit <= 99999:
            raise _Failure({"ok": False, "error_code": 400, "description": "Bad Request: invalid member limit specified"})
        link = fixture("response_createChatInviteLink")["result"]
        link["invite_link"] = f"{link['invite_link']}{next(self._links)}"
        link["member_limit"] = limit
        link["name"] = params.get("name", "")
        if "expire_date" in params:
            link["expire_date"] = params["expire_date"]
        return link

    async def _revokeChatInviteLink(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        link = fixture("response_createChatInviteLink")["result"]
        link.update(invite_link=params["invite_link"], is_revoked=True)
        return link

    async def _pinChatMessage(self, params: dict[str, Any]) -> Any:
        self._chat(params)
        return True

    async def _getChatMember(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        found = self.members.get((chat, params["user_id"]))
        if found is not None:
            return found
        return fixture("response_getChatMember_administrator")["result"]
