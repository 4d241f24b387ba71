"""The Action contract (fixed, ``"v": 1``).

Actions are what playbooks decide to do in a chat. They are written to the
outbox in the same transaction as the event that caused them and delivered
by an adapter at least once. ``id`` is deterministic, so a redelivery or a
replay never produces a second, different action. See ``docs/actions.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

ACTION_TYPES = (
    "send",
    "direct",
    "remove",
    "delete",
    "mute",
    "invite",
    "create_group",
    "dissolve_group",
    "pin",
    "notify_admins",
)

Id = Annotated[str, Field(min_length=1, max_length=256)]


class BaseAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: Id
    ts: AwareDatetime
    group: Id
    #: The playbook that decided it.
    playbook: Id
    #: The event id (or ``job:…`` firing) that caused it.
    cause: Id


class Send(BaseAction):
    type: Literal["send"] = "send"
    text: str
    mentions: list[Id] = Field(default_factory=list)
    reply_to: Id | None = None


class Direct(BaseAction):
    type: Literal["direct"] = "direct"
    member: Id
    text: str


class Remove(BaseAction):
    type: Literal["remove"] = "remove"
    member: Id
    reason: str = ""


class Delete(BaseAction):
    type: Literal["delete"] = "delete"
    msg_id: Id


class Mute(BaseAction):
    type: Literal["mute"] = "mute"
    member: Id
    until: AwareDatetime


class Invite(BaseAction):
    type: Literal["invite"] = "invite"
    member: Id


class CreateGroup(BaseAction):
    type: Literal["create_group"] = "create_group"
    template: Id


class DissolveGroup(BaseAction):
    type: Literal["dissolve_group"] = "dissolve_group"


class Pin(BaseAction):
    type: Literal["pin"] = "pin"
    msg_id: Id


class NotifyAdmins(BaseAction):
    type: Literal["notify_admins"] = "notify_admins"
    text: str


Action = Annotated[
    Send
    | Direct
    | Remove
    | Delete
    | Mute
    | Invite
    | CreateGroup
    | DissolveGroup
    | Pin
    | NotifyAdmins,
    Field(discriminator="type"),
]

ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)

__all__ = [
    "ACTION_ADAPTER",
    "ACTION_TYPES",
    "Action",
    "BaseAction",
    "CreateGroup",
    "Delete",
    "Direct",
    "DissolveGroup",
    "Invite",
    "Mute",
    "NotifyAdmins",
    "Pin",
    "Remove",
    "Send",
]
