"""The Telegram adapter: a bot in Telegram groups, through the Bot API.

- **Receiving.** ``mode: polling`` asks ``getUpdates`` in a loop (long
  polling, ``offset`` = last ``update_id`` + 1, ``allowed_updates`` listing
  ``chat_member`` and ``message_reaction``, which Telegram otherwise never
  sends); ``mode: webhook`` serves an aiohttp endpoint that Telegram posts
  to, refusing (401, nothing read) a request whose
  ``X-Telegram-Bot-Api-Secret-Token`` is missing or wrong — compared in
  constant time.
- **At the edge** every update is size-checked, validated one by one as
  aiogram's typed ``Update`` and mapped (:mod:`.mapping`); a malformed or
  oversized update is reported (:meth:`Adapter.report_bad`) and skipped,
  the others go on.
- **Actions** become Bot API calls through aiogram's client; a 429 becomes
  ``retry`` after Telegram's ``retry_after``, a 400/403 a permanent failure
  with Telegram's description.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import ChatPermissions, Update
from aiohttp import web
from pydantic import ValidationError

from qunyun.adapters.base import (
    Adapter,
    Backoff,
    DeliveryResult,
    DoctorCheck,
    PayloadError,
    Sink,
    Sleep,
    listing,
)
from qunyun.adapters.telegram import mapping
from qunyun.adapters.telegram.settings import TelegramOptions
from qunyun.core.clock import Clock, SystemClock
from qunyun.core.errors import Msg
from qunyun.core.text import display_name

log = logging.getLogger("qunyun.adapters.telegram")

#: What the adapter can do on Telegram (``create_group``/``dissolve_group``: bots cannot).
CAPABILITIES = frozenset({"send", "direct", "delete", "remove", "mute", "invite", "pin", "notify_admins"})
#: The administrator right each action needs.
RIGHTS = {
    "delete": "can_delete_messages",
    "remove": "can_restrict_members",
    "mute": "can_restrict_members",
    "invite": "can_invite_users",
    "pin": "can_pin_messages",
}
#: Two descriptions of one member change (a service message and a chat_member
#: update) at most this many seconds apart are the same change.
SAME_CHANGE_SECONDS = 60

INVITE_TEXT = {
    "zh-CN": "你好！这是加入「{group}」的专属链接，仅限使用一次，{hours} 小时内有效：\n{link}",
    "en": "Hello! Here is your personal link to join “{group}”. It works once and expires in {hours} hours:\n{link}",
}


class _RawUpdates(TelegramMethod[list[Any]]):
    """``getUpdates`` returning the raw JSON objects, so each update is validated on its own.

    aiogram's own ``GetUpdates`` validates the whole batch at once: one
    malformed update would fail the call, the offset would never move past
    it and the bot would be stuck.
    """

    __returning__ = list[Any]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


class _RawChatMember(TelegramMethod[dict[str, Any]]):
    """``getChatMember`` as a plain object (see :class:`mapping.TgMember` for why not aiogram's union)."""

    __returning__ = dict[str, Any]
    __api_method__ = "getChatMember"

    chat_id: int | str
    user_id: int


@dataclass
class Removed:
    """The bot was removed from a group (``my_chat_member``)."""

    when: str
    by: str | None
    status: str


class TelegramAdapter(Adapter):
    """One Telegram bot serving the configured groups."""

    def __init__(
        self,
        options: TelegramOptions,
        *,
        rooms: Mapping[str, str] | None = None,
        group_names: Mapping[str, str] | None = None,
        locales: Mapping[str, str] | None = None,
        needs: Mapping[str, frozenset[str]] | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.platform = options.platform
        self.capabilities = CAPABILITIES
        self.limits = options.limits
        #: chat id (as text) → group key, for groups whose config says ``room:``
        self.rooms = dict(rooms or {})
        self.group_names = dict(group_names or {})
        self.locales = dict(locales or {})
        #: group key → action types playbooks may need there (for ``check``); default: all
        self.needs = dict(needs or {})
        self.clock = clock or SystemClock()
        self._sleep = sleep
        self.backoff = Backoff(base=1.0, cap=60.0, rng=rng)
        self.bot = Bot(options.token, session=AiohttpSession(api=TelegramAPIServer.from_base(options.api_base)))
        self.directory = mapping.Directory()
        self._sink: Sink | None = None
        self._poller: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self.offset: int | None = None
        self.port: int | None = None
        #: (chat, user) → the last membership change emitted, to drop a second description of it
        self._changes: OrderedDict[tuple[str, str], mapping.MemberChange] = OrderedDict()
        #: chat id → how the bot was removed from it (cleared when it is added back)
        self.removed_from: dict[str, Removed] = {}
        #: action id → invite link already created for it (a retried invite reuses it)
        self._links: dict[str, str] = {}
        #: action id → pieces of a long message already sent (a retry sends the rest)
        self._sent_pieces: dict[str, int] = {}
        self.refused = 0
        self.webhook_error: str | None = None

    # ------------------------------------------------------------- lifecycle

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        self._stopping = False
        opts = self.options
        if opts.mode == "webhook":
            await self._serve()
            if opts.webhook_url:
                try:
                    await self.bot.set_webhook(
                        url=opts.webhook_url, secret_token=opts.webhook_secret,
                        allowed_updates=list(mapping.ALLOWED_UPDATES), drop_pending_updates=False,
                    )
                    log.info("%s: webhook registered: %s", self.platform, opts.webhook_url)
                except TelegramAPIError as exc:
                    self.webhook_error = exc.message
                    log.error("%s: could not register the webhook %s: %s", self.platform, opts.webhook_url, exc.message)
            return
        try:  # getUpdates refuses to work while a webhook is set
            await self.bot.delete_webhook(drop_pending_updates=False)
        except TelegramAPIError as exc:
            log.warning("%s: deleteWebhook failed (%s); polling will tell if a webhook is in the way",
                        self.platform, exc.message)
        self._poller = asyncio.create_task(self._poll_loop(), name=f"qunyun-{self.platform}-poll")
        log.info("%s: long polling %s", self.platform, opts.api_base)

    async def stop(self) -> None:
        self._stopping = True
        if self._poller is not None:
            poller, self._poller = self._poller, None
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            if self.offset is not None:  # confirm what was taken, so a restart does not fetch it again
                # if this fails they come again after a restart, and are duplicates by id
                with contextlib.suppress(TelegramAPIError, TimeoutError, OSError):
                    await asyncio.wait_for(self.bot(_RawUpdates(offset=self.offset, limit=1, timeout=0)), 5)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.bot.session.close()

    # ---------------------------------------------------------------- polling

    async def _poll_loop(self) -> None:
        opts = self.options
        failures = 0
        while not self._stopping:
            try:
                batch = await self.bot(
                    _RawUpdates(offset=self.offset, limit=100, timeout=opts.poll_timeout,
                                allowed_updates=list(mapping.ALLOWED_UPDATES)),
                    request_timeout=int(opts.poll_timeout + opts.api_timeout),
                )
            except asyncio.CancelledError:
                raise
            except TelegramRetryAfter as exc:
                log.warning("%s: getUpdates is rate-limited; waiting %s s", self.platform, exc.retry_after)
                await self._sleep(float(exc.retry_after))
                continue
            except (TelegramAPIError, ClientDecodeError) as exc:
                failures += 1
                wait = self.backoff.delay(failures)
                why = exc.message if isinstance(exc, TelegramAPIError) else str(exc)
                hint = ""
                if isinstance(exc, TelegramConflictError):
                    hint = " (another process polls with this token, or a webhook is set)"
                elif isinstance(exc, TelegramUnauthorizedError | TelegramNotFound):
                    hint = " (the bot token is refused: check token_env)"
                log.error("%s: getUpdates failed%s: %s; trying again in %.1f s", self.platform, hint, why, wait)
                await self._sleep(wait)
                continue
            failures = 0
            if not isinstance(batch, list):
                continue
            if not await self._batch(batch):
                await self._sleep(1.0)  # the runtime is not taking events now (stopping): ask again later

    async def _batch(self, batch: list[Any]) -> bool:
        """Handle one getUpdates result; False when the sink stopped taking events."""
        for item in batch:
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                self.report_bad("getUpdates", "an update without a numeric update_id")
                continue
            where = f"getUpdates update {update_id}"
            size = len(orjson.dumps(item))
            if size > self.options.max_update_bytes:
                self.report_bad(where, f"update of {size:,} bytes is over the {self.options.max_update_bytes:,}-byte limit")
            elif await self.process(item, where) is False:
                return False
            self.offset = max(self.offset or 0, update_id + 1)
        return True

    # ---------------------------------------------------------------- webhook

    async def _serve(self) -> None:
        opts = self.options
        app = web.Application(client_max_size=opts.max_update_bytes)
        app.router.add_post(opts.webhook_path, self._webhook)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, opts.webhook_host, opts.webhook_port).start()
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else opts.webhook_port
        log.info("%s: webhook listening on http://%s:%d%s", self.platform, opts.webhook_host, self.port, opts.webhook_path)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        expected = self.options.webhook_secret or ""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if not expected or given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            self.refused += 1
            log.warning("%s: refused a webhook request from %s: %s secret token", self.platform, request.remote,
                        "missing" if given is None else "wrong")
            return web.Response(status=401, text="unauthorized\n")
        where = f"webhook {request.remote}"
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.report_bad(where, f"update over the {self.options.max_update_bytes:,}-byte limit")
            return web.Response(status=200)  # answered, so Telegram does not send it again
        if self._stopping:
            return web.Response(status=503, text="stopping\n")  # Telegram retries it later
        try:
            item = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self.report_bad(where, f"not valid JSON: {exc}")
            return web.Response(status=200)
        if isinstance(item, dict) and isinstance(item.get("update_id"), int):
            where = f"webhook update {item['update_id']}"
        taken = await self.process(item, where)
        return web.Response(status=503 if taken is False else 200)

    # ----------------------------------------------------------------- events

    async def process(self, item: Any, where: str) -> bool | None:
        """Validate, map and hand over one update. None: nothing for qunyun; False: the sink refused."""
        if not isinstance(item, dict):
            self.report_bad(where, "an update must be a JSON object")
            return None
        update: Update | mapping.TgMemberUpdate
        try:
            if "chat_member" in item or "my_chat_member" in item:
                update = mapping.TgMemberUpdate.model_validate(item)
            else:
                update = Update.model_validate(item)
        except ValidationError as exc:
            self.report_bad(where, _describe(exc))
            return None
        if isinstance(update, mapping.TgMemberUpdate) and update.my_chat_member is not None:
            self._bot_status(update.my_chat_member)
            return None
        try:
            events = mapping.update_to_events(update, platform=self.platform, rooms=self.rooms, directory=self.directory)
        except PayloadError as exc:
            self.report_bad(where, str(exc))
            return None
        except Exception as exc:  # a mapping bug must not stop the poller: this update is dropped, the rest go on
            log.exception("%s: could not map %s", self.platform, where)
            self.report_bad(where, f"could not be mapped ({type(exc).__name__}: {exc})")
            return None
        taken: bool | None = None
        for data in events:
            change = mapping.member_change(data)
            if change is not None and self._same_change(change):
                log.debug("%s: %s describes a change already passed on", self.platform, data["id"])
                continue
            event = self.validate(data, where)
            if event is None:
                continue
            if self._sink is None or not await self._sink(event):
                return False
            if change is not None:
                self._remember(change)
            taken = True
        return taken

    def _same_change(self, change: mapping.MemberChange) -> bool:
        last = self._changes.get((change.room, change.user))
        return (
            last is not None and last.transition == change.transition
            and abs(last.date - change.date) <= SAME_CHANGE_SECONDS
        )

    def _remember(self, change: mapping.MemberChange) -> None:
        key = (change.room, change.user)
        self._changes.pop(key, None)
        self._changes[key] = change
        while len(self._changes) > 10_000:
            self._changes.popitem(last=False)

    def _bot_status(self, change: mapping.TgMemberUpdated) -> None:
        """The bot's own membership changed: log it; a removal is kept for ``check`` and ``deliver``."""
        room = str(change.chat.id)
        group = self.rooms.get(room, room)
        status = change.new_chat_member.status
        who = change.from_user
        by = f"{mapping.full_name(who)} ({who.id})" if who is not None else None
        if status in ("left", "kicked"):
            when = mapping.iso(change.date)
            self.removed_from[room] = Removed(when, by, str(status))
            log.error(
                "%s: the bot was %s group %s (%s) by %s at %s; nothing more can be done there until it is added back",
                self.platform, "banned from" if status == "kicked" else "removed from", group,
                change.chat.title or room, by or "?", when,
            )
        else:
            if self.removed_from.pop(room, None) is not None:
                log.info("%s: the bot is back in group %s (%s)", self.platform, group, status)
            elif status == "member" and change.old_chat_member.status == "administrator":
                log.warning("%s: the bot is no longer an administrator of group %s: moderation will fail there",
                            self.platform, group)

    # ---------------------------------------------------------------- actions

    async def deliver(self, action: dict[str, Any]) -> DeliveryResult:
        kind = str(action.get("type"))
        room = str(action.get("room") or action.get("group") or "")
        removed = self.removed_from.get(room)
        if removed is not None and kind != "direct":
            return DeliveryResult.failed(
                f"the bot was removed from this Telegram group at {removed.when}"
                + (f" by {removed.by}" if removed.by else "") + "; add it back to the group"
            )
        method = kind
        try:
            chat = _chat_id(room)
            if kind in ("send", "notify_admins"):
                method = "sendMessage"
                return await self._send(action, chat)
            if kind == "direct":
                method = "sendMessage"
                user = _user_id(action.get("member"))
                message = await self.bot.send_message(chat_id=user, text=str(action.get("text") or "")[: mapping.MAX_TEXT])
                return DeliveryResult.ok(str(message.message_id))
            if kind == "delete":
                method = "deleteMessage"
                try:
                    await self.bot.delete_message(chat_id=chat, message_id=_message_id(action.get("msg_id")))
                except TelegramBadRequest as exc:
                    if "not found" in exc.message.lower():
                        return DeliveryResult.ok()  # already gone (deleted by someone, or this is a redelivery)
                    raise
                return DeliveryResult.ok()
            if kind == "remove":
                return await self._remove(action, chat)
            if kind == "mute":
                method = "restrictChatMember"
                return await self._mute(action, chat)
            if kind == "invite":
                method = "createChatInviteLink"
                return await self._invite(action, chat)
            if kind == "pin":
                method = "pinChatMessage"
                await self.bot.pin_chat_message(
                    chat_id=chat, message_id=_message_id(action.get("msg_id")), disable_notification=True
                )
                return DeliveryResult.ok()
        except _Unusable as exc:
            return DeliveryResult.failed(f"cannot be done on Telegram: {exc}")
        except TelegramRetryAfter as exc:
            return DeliveryResult.retry(
                f"{exc.method.__api_method__}: 429 Too Many Requests, retry after {exc.retry_after} s",
                after=float(exc.retry_after),
            )
        except TelegramMigrateToChat as exc:
            return DeliveryResult.failed(
                f"{exc.method.__api_method__}: the group became a supergroup with id {exc.migrate_to_chat_id}; "
                f"set `room: \"{exc.migrate_to_chat_id}\"` for it in the configuration"
            )
        except TelegramForbiddenError as exc:
            return DeliveryResult.failed(self._forbidden(exc, kind, action))
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            return DeliveryResult.failed(f"{exc.method.__api_method__}: {exc.message}")
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            return DeliveryResult.failed(f"{exc.method.__api_method__}: {exc.message} (the bot token is refused)")
        except TelegramAPIError as exc:  # 5xx, network errors, Telegram restarting
            return DeliveryResult.retry(f"{exc.method.__api_method__}: {exc.message}")
        except ClientDecodeError as exc:
            return DeliveryResult.retry(f"{method}: Telegram's answer could not be read: {exc.message}")
        return DeliveryResult.failed(f"Telegram bots cannot do {kind!r}")

    def _forbidden(self, exc: TelegramForbiddenError, kind: str, action: Mapping[str, Any]) -> str:
        reason = f"{exc.method.__api_method__}: {exc.message}"
        text = exc.message.lower()
        if kind in ("direct", "invite") and ("initiate" in text or "blocked" in text or "deactivated" in text):
            reason += (
                f" — member {action.get('member')} has not started a chat with the bot (or blocked it); "
                "Telegram lets a bot write privately only to people who opened a chat with it and pressed Start"
            )
        return reason

    async def _names(self, group: str, uids: list[str]) -> dict[str, str | None]:
        """Names to find "@name" by: from updates seen, else from the stored events."""
        names: dict[str, str | None] = {}
        for uid in uids:
            name = self.directory.name(uid)
            if name is None and self.history is not None:
                for etype in ("message", "member_joined"):
                    stored = await self.history(self.platform, group, etype, uid)
                    actor = stored.get("actor") if isinstance(stored, dict) else None
                    if isinstance(actor, dict) and isinstance(actor.get("name"), str):
                        name = actor["name"]
                        break
            names[uid] = name
        return names

    async def _send(self, action: Mapping[str, Any], chat: int | str) -> DeliveryResult:
        text = str(action.get("text") or "")
        mentions = [str(m) for m in action.get("mentions") or ()]
        if not text.strip() and not mentions:
            raise _Unusable("the message is empty")
        names = await self._names(str(action.get("group") or ""), mentions)
        pieces = mapping.split_text(text)
        action_id = str(action.get("id") or "")
        done = self._sent_pieces.get(action_id, 0)
        last_id: str | None = None
        remaining = list(mentions)
        for index, piece in enumerate(pieces):
            here = [m for m in remaining if _mentioned_in(piece, m, names)] if len(pieces) > 1 else remaining
            if index == len(pieces) - 1:
                here = remaining  # whoever was not placed yet is mentioned in the last piece
            remaining = [m for m in remaining if m not in here]
            if index < done:
                continue
            body, entities = mapping.mention_entities(piece, here, names)
            params: dict[str, Any] = {"chat_id": chat, "text": body}
            if entities:
                params["entities"] = entities
            if action.get("reply_to") and index == 0:
                params["reply_parameters"] = {
                    "message_id": _message_id(action["reply_to"]), "allow_sending_without_reply": True,
                }
            message = await self.bot.send_message(**params)
            last_id = str(message.message_id)
            if action_id and len(pieces) > 1:
                self._sent_pieces[action_id] = index + 1
        self._sent_pieces.pop(action_id, None)
        return DeliveryResult.ok(last_id)

    async def _remove(self, action: Mapping[str, Any], chat: int | str) -> DeliveryResult:
        member = str(action.get("member") or "")
        if member.startswith("-") and member[1:].isdigit():
            # someone speaking as a channel: ban the channel, then lift the ban (a kick, not a ban)
            await self.bot.ban_chat_sender_chat(chat_id=chat, sender_chat_id=int(member))
            await self.bot.unban_chat_sender_chat(chat_id=chat, sender_chat_id=int(member))
            return DeliveryResult.ok()
        user = _user_id(member)
        # Telegram has no "kick": ban (they leave) then unban (they may come back by a link)
        await self.bot.ban_chat_member(chat_id=chat, user_id=user, revoke_messages=False)
        await self.bot.unban_chat_member(chat_id=chat, user_id=user, only_if_banned=True)
        return DeliveryResult.ok()

    async def _mute(self, action: Mapping[str, Any], chat: int | str) -> DeliveryResult:
        user = _user_id(action.get("member"))
        until = action.get("until")
        end = datetime.fromisoformat(until) if isinstance(until, str) else until
        if not isinstance(end, datetime) or end.tzinfo is None:
            raise _Unusable("mute needs 'until' with a time zone")
        now = self.clock.now()
        if end <= now:
            log.info("%s: mute of %s ended before it could be delivered; nothing to do", self.platform, user)
            return DeliveryResult.ok()
        # Telegram reads less than 30 s as "for ever"; a mute that short is made 31 s
        end = max(end, now + timedelta(seconds=31))
        silent = ChatPermissions(
            can_send_messages=False, can_send_audios=False, can_send_documents=False, can_send_photos=False,
            can_send_videos=False, can_send_video_notes=False, can_send_voice_notes=False, can_send_polls=False,
            can_send_other_messages=False, can_add_web_page_previews=False,
        )
        await self.bot.restrict_chat_member(
            chat_id=chat, user_id=user, permissions=silent, use_independent_chat_permissions=True,
            until_date=int(end.timestamp()),
        )
        return DeliveryResult.ok()

    async def _invite(self, action: Mapping[str, Any], chat: int | str) -> DeliveryResult:
        member = str(action.get("member") or "")
        user = _user_id(member)
        action_id = str(action.get("id") or "")
        group = str(action.get("group") or "")
        hours = self.options.invite_hours
        link = self._links.get(action_id)
        if link is None:
            created = await self.bot.create_chat_invite_link(
                chat_id=chat, name=f"qunyun {member}"[:32], member_limit=1,
                expire_date=int((self.clock.now() + timedelta(hours=hours)).timestamp()),
            )
            link = created.invite_link
            if action_id:
                self._links[action_id] = link
        locale = self.locales.get(group, self.options.locale)
        text = INVITE_TEXT.get(locale, INVITE_TEXT["en"]).format(
            group=display_name(self.group_names.get(group), group, limit=64), hours=hours, link=link
        )
        try:
            message = await self.bot.send_message(chat_id=user, text=text)
        except TelegramForbiddenError:
            self._links.pop(action_id, None)
            try:  # nobody can use it now; do not leave it lying around
                await self.bot.revoke_chat_invite_link(chat_id=chat, invite_link=link)
            except TelegramAPIError as exc:
                log.warning("%s: could not revoke the unused invite link: %s", self.platform, exc.message)
            raise
        self._links.pop(action_id, None)
        return DeliveryResult.ok(str(message.message_id))

    # ----------------------------------------------------------------- doctor

    async def check(self) -> list[DoctorCheck]:
        name = Msg("{platform} (Telegram)", platform=self.platform)
        try:
            me = await self.bot.get_me()
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            return [DoctorCheck(name, False, Msg("the bot token is refused: {error}", error=exc.message),
                                [Msg("check the variable named by token_env; @BotFather shows the token (/token)")])]
        except (TelegramAPIError, ClientDecodeError) as exc:
            return [DoctorCheck(name, False, Msg("cannot reach the Bot API at {api}: {error}",
                                                 api=self.options.api_base, error=str(exc)))]
        notes: list[str] = []
        if not me.can_read_all_group_messages:
            notes.append(Msg("privacy mode is on: in groups where it is not an administrator the bot sees only "
                             "commands, replies and mentions; turn it off in @BotFather (/setprivacy → Disable)"))
        connected = Msg("connected as @{bot} (id {id})", bot=me.username or me.first_name, id=me.id)
        checks = [DoctorCheck(name, True, connected, notes)]
        if self.options.mode == "webhook":
            checks.append(await self._check_webhook())
        for room, group in sorted(self.rooms.items(), key=lambda kv: kv[1]):
            checks.append(await self._check_group(room, group, me.id))
        return checks

    async def _check_webhook(self) -> DoctorCheck:
        name = Msg("{platform} webhook", platform=self.platform)
        try:
            info = await self.bot.get_webhook_info()
        except TelegramAPIError as exc:
            return DoctorCheck(name, False, Msg("getWebhookInfo failed: {error}", error=exc.message))
        want = self.options.webhook_url
        if not info.url:
            return DoctorCheck(name, False, Msg("no webhook is registered with Telegram"),
                               [Msg("set webhook.url so qunyun registers it, or call setWebhook yourself")])
        if want and info.url != want:
            return DoctorCheck(name, False, Msg("Telegram posts to {url}, not to the configured {want}",
                                                url=info.url, want=want))
        if info.last_error_message:
            return DoctorCheck(name, False, Msg("Telegram's last attempt to post failed: {error}",
                                                error=info.last_error_message),
                               [Msg("{n} updates are waiting", n=info.pending_update_count)])
        return DoctorCheck(name, True, Msg("Telegram posts to {url} ({n} waiting)",
                                           url=info.url, n=info.pending_update_count))

    async def _check_group(self, room: str, group: str, me: int) -> DoctorCheck:
        name = Msg("{platform} group {group}", platform=self.platform, group=group)
        removed = self.removed_from.get(room)
        try:
            member = await self.bot(_RawChatMember(chat_id=_chat_id(room), user_id=me))
        except _Unusable as exc:
            return DoctorCheck(name, False, str(exc))
        except (TelegramAPIError, ClientDecodeError) as exc:
            return DoctorCheck(name, False, Msg("getChatMember failed: {error}", error=str(getattr(exc, "message", exc))),
                               [Msg("check the group's `room:` (its chat id, e.g. -1001234567890) and that the bot is in it")])
        status = str(member.get("status"))
        if status in ("left", "kicked"):
            if removed is None:
                detail = Msg("the bot is not in this group")
            elif removed.by:
                detail = Msg("the bot is not in this group (removed at {when} by {by})", when=removed.when, by=removed.by)
            else:
                detail = Msg("the bot is not in this group (removed at {when})", when=removed.when)
            return DoctorCheck(name, False, detail, [Msg("add the bot to the group and make it an administrator")])
        needs = self.needs.get(group, CAPABILITIES)
        wanted = sorted({RIGHTS[a] for a in needs if a in RIGHTS})
        if status == "creator":
            return DoctorCheck(name, True, Msg("the bot owns the group: it can do everything"))
        if status == "administrator":
            missing = [r for r in wanted if member.get(r) is not True]
            if not missing:
                return DoctorCheck(name, True, Msg("the bot is an administrator with the rights it needs"))
            fails = sorted(a for a in needs if RIGHTS.get(a) in missing)
            return DoctorCheck(name, False, Msg("the bot is an administrator without {rights}", rights=listing(missing)),
                               [Msg("{actions} will fail here; grant the rights in the group's admin settings",
                                    actions=listing(fails))])
        if not wanted:
            return DoctorCheck(name, True, Msg("the bot is a {status}; nothing here needs more", status=status))
        return DoctorCheck(
            name, False, Msg("the bot is a {status}, not an administrator", status=status),
            [Msg("{actions} will fail, and Telegram sends join/leave and reaction updates only to administrators; "
                 "make the bot an administrator", actions=listing(sorted(a for a in needs if a in RIGHTS)))],
        )


class _Unusable(Exception):
    """The action cannot be expressed as a Telegram call (bad id, missing field)."""


def _chat_id(room: str) -> int | str:
    if room.lstrip("-").isdigit() and room not in ("", "-"):
        return int(room)
    if room.startswith("@") and len(room) > 1:
        return room
    raise _Unusable(f"{room!r} is not a Telegram chat id (a number like -1001234567890, or @username)")


def _user_id(value: Any) -> int:
    text = str(value or "")
    if not text.isdigit():
        raise _Unusable(f"member {text!r} is not a Telegram user id")
    return int(text)


def _message_id(value: Any) -> int:
    text = str(value or "")
    if not text.isdigit():
        raise _Unusable(f"message {text!r} is not a Telegram message id")
    return int(text)


def _mentioned_in(piece: str, uid: str, names: Mapping[str, str | None]) -> bool:
    return f"@{display_name(names.get(uid), uid)}" in piece or f"@{uid}" in piece


def _describe(exc: ValidationError) -> str:
    """A pydantic error as one line: field path and problem, the first three."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "update"
        parts.append(f"field {loc!r}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
