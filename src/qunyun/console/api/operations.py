"""API: operations — the moderation log, elimination, the configuration, the audit log."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from qunyun.console.accounts import RANK
from qunyun.console.api.common import ERRORS, Ok, Reader, Writer, ok
from qunyun.console.pages import audit as audit_page
from qunyun.console.pages import config as config_page
from qunyun.console.pages import elimination as elimination_page
from qunyun.console.pages import moderation as moderation_page
from qunyun.console.web import audit

router = APIRouter(tags=["operations"], responses=ERRORS)

PREFIX = "/communities/{community}"


# ------------------------------------------------------------------ moderation


class ModerationAction(BaseModel):
    type: str
    status: str
    member: str | None = None
    downgraded_from: str | None = None


class ModerationEntry(BaseModel):
    id: int
    ts: str
    playbook: str
    kind: str
    group: str
    member: str | None
    name: str | None
    data: dict[str, Any]
    actions: list[ModerationAction]


class ModerationPage(BaseModel):
    total: int
    page: int
    per_page: int
    entries: list[ModerationEntry]


@router.get(PREFIX + "/moderation", response_model=Ok[ModerationPage], summary="The moderation log")
def moderation(
    call: Reader,
    kind: Annotated[str | None, Query(description="playbook.kind, e.g. moderation.hit, hours.strike",
                                      max_length=64)] = None,
    group: Annotated[str | None, Query(max_length=256)] = None,
    member: Annotated[str | None, Query(description="user id, or part of a name", max_length=200)] = None,
    since: Annotated[date | None, Query(description="first local day (YYYY-MM-DD)")] = None,
    until: Annotated[date | None, Query(description="last local day (YYYY-MM-DD)")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    if kind is not None and kind not in moderation_page.KIND_KEYS:
        raise HTTPException(422, f"kind must be one of: {', '.join(moderation_page.KIND_KEYS)}")
    f = moderation_page.LogFilter(kind=kind, group=group or None, member=(member or "").strip() or None,
                                  since=since, until=until)
    tz = call.community.tz
    with call.read() as conn:
        total = moderation_page.count_log(conn, call.community.id, tz, f)
        rows = moderation_page.read_log(conn, call.community.id, tz, f, offset=(page - 1) * per_page, limit=per_page)
    entries = [
        ModerationEntry(id=r["id"], ts=r["ts"].isoformat(), playbook=r["playbook"], kind=r["kind"], group=r["group_key"],
                        member=r["member"], name=r["name"], data=r["data"] if isinstance(r["data"], dict) else {},
                        actions=[ModerationAction(**a) for a in r["actions"]])
        for r in rows
    ]
    return ok(ModerationPage(total=total, page=page, per_page=per_page, entries=entries))


# ------------------------------------------------------------------ elimination


class PreviewAnswer(BaseModel):
    as_of: str
    groups: list[dict[str, Any]]
    batches: list[dict[str, Any]] = Field(description="pending batches, then the most recent finished ones")


@router.get(PREFIX + "/elimination/preview", response_model=Ok[PreviewAnswer],
            summary="Who would be warned or removed, and why (changes nothing)")
def elimination_preview(
    call: Reader,
    as_of: Annotated[date | None, Query(description="measure as of this local day; default: the last day "
                                                    "with activity")] = None,
    group: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    groups = {g.key for g in call.community.groups.values() if "elimination" in g.playbooks}
    if group is not None and group not in groups:
        raise HTTPException(404, f"elimination does not run in a group {group!r} of this community")
    today = call.state.clock.now().astimezone(call.community.tz).date()
    with call.read() as conn:
        day = as_of or elimination_page.default_day(conn, call.community.id, today)
        listed = elimination_page.batches(conn, call.community.id)
    if not groups:
        return ok(PreviewAnswer(as_of=day.isoformat(), groups=[], batches=listed))
    if not (elimination_page.EARLIEST <= day <= elimination_page.LATEST):
        raise HTTPException(422, "as_of is out of range")
    result = elimination_page.preview(call.state, call.community.id, day, group)
    for b in listed:
        b["updated_at"] = b["updated_at"].isoformat() if b.get("updated_at") else None
    return ok(PreviewAnswer(as_of=result["as_of"], groups=result["groups"], batches=listed))


class ApproveRequest(BaseModel):
    batch: str = Field(min_length=1, max_length=300, description="the batch id, e.g. remove-20261208-g-main")
    exclude: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=1000,
                                                                 description="user ids to leave out")


class ApproveAnswer(BaseModel):
    batch: str
    kind: str
    group: str
    warned: list[str] | None = None
    removed: list[str] | None = None
    invited: list[str] | None = None
    skipped: list[dict[str, str]]
    actions: list[dict[str, Any]] = Field(description="the actions the approval put in the outbox")


@router.post(PREFIX + "/elimination/approve", response_model=Ok[ApproveAnswer],
             summary="Carry out a prepared batch (measures everyone again; leaves `exclude` out)")
def elimination_approve(call: Writer, body: ApproveRequest) -> dict[str, Any]:
    _batch, result = elimination_page.approve(call, body.batch, body.exclude)
    with call.read() as conn:
        after = elimination_page.read_batch(conn, call.community.id, body.batch) or _batch
        actions = elimination_page.queued(conn, call.community.id, after)
    return ok(ApproveAnswer(**{k: v for k, v in result.items() if k in ApproveAnswer.model_fields}, actions=actions))


class DiscardRequest(BaseModel):
    batch: str = Field(min_length=1, max_length=300)


@router.post(PREFIX + "/elimination/discard", response_model=Ok[dict[str, str]], summary="Drop a prepared batch")
def elimination_discard(call: Writer, body: DiscardRequest) -> dict[str, Any]:
    result = elimination_page.discard(call, body.batch)
    return ok({k: str(v) for k, v in result.items()})


# ------------------------------------------------------------------ configuration


class ConfigSection(BaseModel):
    path: str
    first_line: int = Field(description="the line of the file where this community's entry starts")
    text: str = Field(description="this community's entry under `communities:`, de-indented")
    sha256: str = Field(description="send it back as `base` when saving, to detect concurrent edits")


class ConfigText(BaseModel):
    text: str = Field(max_length=config_page.MAX_TEXT)


class ConfigSave(ConfigText):
    note: str | None = Field(default=None, max_length=500)
    base: str | None = Field(default=None, max_length=64, description="the sha256 the text was read with")


class Problem(BaseModel):
    text: str = Field(description="file:line: key: what (reworded where it would name another community)")
    line: int | None = Field(description="the line in the file")
    editor_line: int | None = Field(description="the line in the section text")


class Validation(BaseModel):
    valid: bool
    problems: list[Problem]


class Saved(Validation):
    saved: bool
    version: int | None


def _section(call: Any) -> config_page.Section:
    try:
        return config_page.current(call.state, call.community.id)
    except config_page.EditError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get(PREFIX + "/config", response_model=Ok[ConfigSection], summary="This community's configuration section")
def config_get(call: Reader) -> dict[str, Any]:
    section = _section(call)
    return ok(ConfigSection(path=str(call.state.config_path), first_line=section.first_line, text=section.text,
                            sha256=section.digest))


@router.post(PREFIX + "/config/validate", response_model=Ok[Validation],
             summary="Validate a section without saving (the same problems as the CLI)")
def config_validate(call: Reader, body: ConfigText) -> dict[str, Any]:
    if RANK[call.role] < RANK["admin"]:
        raise HTTPException(403, "this needs the admin role in the community")
    checked = config_page.check(Path(call.state.config_path), _section(call), body.text, call.community.id)
    return ok(Validation(valid=checked.ok, problems=[Problem(**p) for p in checked.problems]))


@router.put(PREFIX + "/config", response_model=Ok[Saved],
            summary="Validate and save this community's section (422 with the problems when invalid)")
def config_put(call: Writer, body: ConfigSave) -> Any:
    def record(action: str, **kw: Any) -> None:
        audit(call.state, call.user, call.community.id, action,
              ip=call.request.client.host if call.request.client else None, **kw)

    try:
        checked, version = config_page.save(call.state, call.user, call.community.id, body.text, body.note,
                                            body.base, record)
    except config_page.EditError as exc:
        raise HTTPException(409, str(exc)) from None
    if not checked.ok:
        problems = "; ".join(p["text"] for p in checked.problems)
        return JSONResponse({"ok": False, "error": f"invalid configuration, nothing saved: {problems}",
                             "code": "invalid_config"}, status_code=422)
    return ok(Saved(valid=True, problems=[], saved=version is not None, version=version))


# ------------------------------------------------------------------ audit


class AuditRow(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    before: Any
    after: Any
    ip: str | None


class AuditPage(BaseModel):
    total: int
    page: int
    per_page: int
    entries: list[AuditRow]


@router.get(PREFIX + "/audit", response_model=Ok[AuditPage], summary="The audit log (admins)")
def audit_log(
    call: Reader,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64, description="an action, or its area (`fund`)")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    if RANK[call.role] < RANK["admin"]:
        raise HTTPException(403, "this needs the admin role in the community")
    with call.read() as conn:
        total = audit_page.count_entries(conn, call.community.id, actor or None, action or None)
        rows = audit_page.read_entries(conn, call.community.id, actor or None, action or None,
                                       offset=(page - 1) * per_page, limit=per_page)
    entries = [AuditRow(**{**r, "at": r["at"].isoformat()}) for r in rows]
    return ok(AuditPage(total=total, page=page, per_page=per_page, entries=entries))

