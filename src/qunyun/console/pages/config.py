"""The configuration editor: this community's section of the deployment YAML.

The configuration file is the whole deployment: several communities, the
database, the adapters. A community's admin must neither see nor change
another community's section, so the editor works on **this community's
entry only** (its item under ``communities:``), cut out of the file by the
YAML parser's positions and spliced back in as text: every other byte of the
file — other communities, the deployment section, comments, formatting —
stays as it was. The whole file is then validated exactly as ``qunyun``
loads it (:func:`settings_from_text` with the file's path as source), so the
problems name the same file, line and key as the CLI — except that the editor
never shows another community: a problem located outside the section, or
naming another community, is said again about the section itself (see
:func:`private`). ``qunyun doctor`` keeps the full text for the operator who
owns the whole file. The page shows the problems in its language; privacy is
decided on the English text first, and only what is kept is translated.

A save is refused when the file changed since the editor opened it, when the
result does not validate, when this community's id is changed or removed,
or when anything outside the section would change. It writes the file
atomically (temporary file + rename), keeps every version of the section as
a ``config_versions`` row (with the version found on disk first, if the file
was edited by hand since), reloads the console's settings and writes an
audit entry with the before/after hashes and a diff summary.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection, func, insert, select

from qunyun.config.model import settings_from_text
from qunyun.console.web import Admin, Page, Viewer
from qunyun.core.errors import ConfigError, QunyunError, in_lang
from qunyun.store.models import ConfigVersion, table

router = APIRouter()

CV = table(ConfigVersion)
#: the largest section the editor accepts (characters)
MAX_TEXT = 200_000
HISTORY_PAGE = 20
#: the largest id a version can have (a 64-bit integer)
MAX_ID = 2**63 - 1


class EditError(QunyunError):
    """The section cannot be cut out of, or put back into, the file."""


@dataclass
class Section:
    """This community's entry in the file: where it stands and its text, de-indented."""

    file_text: str
    start: int
    end: int
    indent: int
    #: 1-based line of the file where the section starts
    first_line: int
    text: str

    @property
    def digest(self) -> str:
        return sha(self.text)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_section(file_text: str, community: str) -> Section:
    """Locate ``community``'s mapping under ``communities:`` in ``file_text``."""
    try:
        root = yaml.compose(file_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"the configuration file is not valid YAML ({exc})") from None
    if not isinstance(root, yaml.MappingNode):
        raise EditError("the configuration file is not a mapping")
    seq = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "communities"), None)
    if not isinstance(seq, yaml.SequenceNode):
        raise EditError("the configuration file has no communities list")
    for item in seq.value:
        if not isinstance(item, yaml.MappingNode):
            continue
        ident = next((v.value for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "id"
                      and isinstance(v, yaml.ScalarNode)), None)
        if str(ident) != community:
            continue
        if item.flow_style or seq.flow_style:
            raise EditError(
                f"community {community!r} is written in flow style ({{...}}); the editor needs block style",
                hint="rewrite that entry in block style (one key per line) in the file",
            )
        start, end = item.start_mark.index, item.end_mark.index
        raw = file_text[start:end]
        kept = raw.rstrip()
        end = start + len(kept)
        if file_text[end:end + 1] == "\n":
            end += 1
        indent = item.start_mark.column
        return Section(file_text, start, end, indent, item.start_mark.line + 1, _dedent(kept, indent) + "\n")
    raise EditError(f"community {community!r} is not in the configuration file")


def _dedent(text: str, indent: int) -> str:
    lines = text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        out.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
    return "\n".join(out)


def splice(section: Section, new_text: str) -> str:
    """The whole file with ``new_text`` in place of the section (indented back)."""
    body = new_text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n ")
    lines = body.split("\n")
    pad = " " * section.indent
    placed = "\n".join([lines[0].lstrip(), *[(pad + line) if line.strip() else "" for line in lines[1:]]]) + "\n"
    return section.file_text[: section.start] + placed + section.file_text[section.end :]


@dataclass
class Checked:
    """What validating an edited section found."""

    problems: list[dict[str, Any]]
    text: str  # the whole file as it would be saved

    @property
    def ok(self) -> bool:
        return not self.problems


_WHERE = re.compile(r"^(?P<file>.*?):(?P<line>\d+): ")


def _problem(text: str, section: Section, path: str, say: dict[str, Any] | None = None,
             lang: str | None = None) -> dict[str, Any]:
    """A problem line as the CLI prints it, plus the editor's line number when it falls in the section.

    ``say`` (``{"where", "key", "values"}``) is the same problem as a console label, for the page to
    show in the reader's language. ``text`` is in ``lang`` (English when None, as the API gives it);
    the location it starts with is the same in either language.
    """
    found = _WHERE.match(text) if text.startswith(path) else None
    line = int(found.group("line")) if found else None
    editor = line - section.first_line + 1 if line is not None and line >= section.first_line else None
    return {"text": in_lang(text, lang), "line": line, "editor_line": editor, "say": say}


def _said(where: str, key: str, text: str, **values: Any) -> tuple[str, dict[str, Any]]:
    """A problem of the editor's own: the English line (as the CLI would write it) and its label."""
    return f"{where}: {text}", {"where": where, "key": key, "values": values}


def _keep_id(source: str, section: Section, community: str) -> tuple[str, dict[str, Any]]:
    return _said(f"{source}:{section.first_line}", "config.problem.keep_id",
                 f"communities: the section must keep id: {community} (the editor cannot rename or remove "
                 "the community it edits)", id=community)


def _other_marks(file_text: str, community: str) -> set[str]:
    """How the CLI's problems would quote the other communities of the file: ``'id'`` and ``'name'``."""
    try:
        data = yaml.safe_load(file_text)
    except yaml.YAMLError:
        return set()
    entries = data.get("communities") if isinstance(data, dict) else None
    marks: set[str] = set()
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and str(entry.get("id")) != community:
            marks |= {repr(str(entry[k])) for k in ("id", "name") if entry.get(k) not in (None, "")}
    return marks


def _own_lines(new_text: str) -> tuple[list[tuple[str, str, int]], int | None]:
    """The edited section's groups ``(id, platform, line in the text)`` and the line of its
    ``catch_all`` key (0-based lines of ``new_text``), as far as its YAML can be read."""
    try:
        node = yaml.compose(new_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return [], None
    if not isinstance(node, yaml.MappingNode):
        return [], None
    groups: list[tuple[str, str, int]] = []
    catch_all = None
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value == "catch_all":
            catch_all = key.start_mark.line
        if key.value != "groups" or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            if not isinstance(item, yaml.MappingNode):
                continue
            fields = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
            ident, platform = fields.get("id"), fields.get("platform")
            if isinstance(ident, yaml.ScalarNode):
                name = platform.value if isinstance(platform, yaml.ScalarNode) else "sim"
                groups.append((str(ident.value), str(name), ident.start_mark.line))
    return groups, catch_all


def private(problems: list[str], section: Section, new_text: str, community: str,
            source: str, lang: str | None = None) -> list[dict[str, Any]]:
    """The problems as this community's admin may see them: never another community's id or name,
    never a line outside the section.

    The whole file is validated, so a collision with another community is reported where the CLI
    finds it — perhaps in the other community's entry, naming it. Such a problem is said again about
    the edited section, without the other's identity: a group id already taken (at that group's line
    here), a community id used twice (the section must keep its id), ``catch_all`` set twice; any
    other problem outside the section says only that the file has one (``qunyun doctor`` shows it to
    the operator who owns the file).

    The decisions read the English text (a :class:`~qunyun.core.errors.Msg` is one); a problem kept
    as it is is then given in ``lang``.
    """
    first = section.first_line
    last = first + new_text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n ").count("\n")
    marks = _other_marks(section.file_text, community)
    groups, catch_all = _own_lines(new_text)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for text in problems:
        found = _WHERE.match(text) if text.startswith(source) else None
        line = int(found.group("line")) if found else None
        if found:
            what = text[found.end():]
        else:
            what = text[len(source):].lstrip(":").strip() if text.startswith(source) else text
        outside = line is not None and not first <= line <= last
        naming = any(mark in what for mark in marks)
        said: tuple[str, dict[str, Any]] | None = None
        if what == "only one community may set catch_all: true":
            at = first + catch_all if catch_all is not None else first
            said = _said(f"{source}:{at}", "config.problem.catch_all_taken",
                         "catch_all: true is already set elsewhere in this deployment; only one community may set it")
        elif outside or naming:
            taken = next(((gid, platform, at) for gid, platform, at in groups
                          if f"group {gid!r} on {platform} is already in community " in what), None)
            if taken is not None:
                gid, platform, at = taken
                said = _said(f"{source}:{first + at}", "config.problem.group_taken",
                             f"group {gid!r} on {platform} is already used elsewhere in this deployment; "
                             "choose another id", group=repr(gid), platform=platform)
            elif what.startswith("community id ") and what.endswith(" is used twice"):
                said = _keep_id(source, section, community)
            elif outside and what.startswith("not valid YAML"):
                said = _said(f"{source}:{last}", "config.problem.unfinished",
                             "not valid YAML: the text does not end as a complete section; check the "
                             "indentation and quoting of its last lines")
            elif outside:
                said = _said(f"{source}:{first}", "config.problem.outside",
                             "the deployment file has a problem outside this community's section; the "
                             "operator who runs qunyun sees it with `qunyun doctor`")
            else:
                said = _said(f"{source}:{line}" if line is not None else source, "config.problem.conflict",
                             "this conflicts with another part of this deployment; the operator who runs "
                             "qunyun sees the details with `qunyun doctor`")
        shown = said[0] if said else text
        if shown not in seen:
            seen.add(shown)
            out.append(_problem(shown, section, source, said[1] if said else None, lang))
    return out


def _others(data: Any, community: str) -> Any:
    """Everything in the parsed file except this community's entry (to prove it is unchanged)."""
    if not isinstance(data, dict):
        return data
    rest = {k: v for k, v in data.items() if k != "communities"}
    entries = data.get("communities")
    if isinstance(entries, list):
        rest["communities"] = [c for c in entries if not (isinstance(c, dict) and str(c.get("id")) == community)]
    return rest


def check(path: Path, section: Section, new_text: str, community: str, lang: str | None = None) -> Checked:
    """Validate ``new_text`` as this community's section, in the whole file, as the CLI would.

    The problems' ``text`` is in ``lang`` (English when None); ``say`` carries the editor's own words.
    """
    source = str(path)

    def one(text: str, say: dict[str, Any], checked_text: str) -> Checked:
        return Checked([_problem(text, section, source, say, lang)], checked_text)

    if len(new_text) > MAX_TEXT:
        return one(*_said(source, "config.problem.too_long", f"the section is longer than {MAX_TEXT:,} characters",
                          max=f"{MAX_TEXT:,}"), section.file_text)
    if not new_text.strip():
        return one(*_said(f"{source}:{section.first_line}", "config.problem.empty",
                          f"communities: the section is empty; it must keep id: {community} and the community's "
                          "settings", id=community), section.file_text)
    whole = splice(section, new_text)
    try:
        settings = settings_from_text(whole, source=source)
    except ConfigError as exc:
        return Checked(private(exc.problems, section, new_text, community, source, lang), whole)
    except yaml.YAMLError as exc:  # e.g. a control character: not a MarkedYAMLError; PyYAML's words stay English
        return one(*_said(source, "config.problem.bad_yaml", f"not valid YAML: {exc}", error=str(exc)), whole)
    if community not in settings.communities:
        return one(*_keep_id(source, section, community), whole)
    try:
        before = _others(yaml.safe_load(section.file_text), community)
        after = _others(yaml.safe_load(whole), community)
    except yaml.YAMLError:
        before, after = None, {}
    if before != after:
        return one(*_said(f"{source}:{section.first_line}", "config.problem.reaches_outside",
                          f"communities: the edit reaches outside community {community!r} (another community or the "
                          "deployment section would change); edit only this community's keys",
                          community=repr(community)), whole)
    return Checked([], whole)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half of one."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def diff_summary(old: str, new: str) -> dict[str, int]:
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return {"added": added, "removed": removed}


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs for the template."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm=""):
        kind = "meta" if line.startswith(("+++", "---", "@@")) else {"+": "add", "-": "del"}.get(line[:1], "same")
        out.append((kind, line))
    return out


def current(state: Any, community: str) -> Section:
    path = Path(state.config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EditError(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    return find_section(text, community)


def save(state: Any, user: Any, community: str, new_text: str, note: str | None, base: str | None,
         audit: Any, lang: str | None = None) -> tuple[Checked, int | None]:
    """Validate and save; (the check with its problems in ``lang``, the new version id or None when refused)."""
    with state.lock:
        section = current(state, community)
        if base and base != section.digest:
            raise HTTPException(409, "the configuration changed since you opened it; reload the page, "
                                     "re-apply your edit and save again")
        checked = check(Path(state.config_path), section, new_text, community, lang)
        if not checked.ok:
            return checked, None
        new_section = find_section(checked.text, community)
        if new_section.text == section.text:
            return checked, None
        now = state.clock.now()
        with state.db.begin() as conn:
            latest = conn.execute(
                select(CV.c.text).where(CV.c.community_id == community).order_by(CV.c.id.desc()).limit(1)
            ).scalar()
            if latest != section.text:
                # the first save, or the file was edited by hand since: keep what was on disk
                conn.execute(insert(CV).values(community_id=community, path=str(state.config_path), text=section.text,
                                               actor="(file)", note="as found on disk", at=now))
            version = conn.execute(
                insert(CV).values(community_id=community, path=str(state.config_path), text=new_section.text,
                                  actor=user.actor, note=(note or "").strip()[:500] or None, at=now)
                .returning(CV.c.id)
            ).scalar()
        previous = section.file_text
        write_atomically(Path(state.config_path), checked.text)
        try:
            state.reload_settings()
        except QunyunError:
            write_atomically(Path(state.config_path), previous)
            state.reload_settings()
            raise
        audit("config.save", target=str(state.config_path),
              before={"sha256": section.digest, "lines": section.text.count("\n")},
              after={"sha256": new_section.digest, "lines": new_section.text.count("\n"), "version": version,
                     "note": note or None, **diff_summary(section.text, new_section.text)})
        return checked, int(version) if version is not None else None


def history(conn: Connection, community: str, offset: int = 0, limit: int = HISTORY_PAGE) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(CV.c.id, CV.c.actor, CV.c.note, CV.c.at, func.length(CV.c.text).label("size"))
        .where(CV.c.community_id == community).order_by(CV.c.id.desc()).offset(offset).limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


def version(conn: Connection, community: str, vid: int) -> dict[str, Any] | None:
    if not 1 <= vid <= MAX_ID:  # not an id the database could hold: none
        return None
    row = conn.execute(select(CV).where(CV.c.community_id == community, CV.c.id == vid)).first()
    return dict(row._mapping) if row else None


# ------------------------------------------------------------------ pages


def _section_or_error(page: Page) -> tuple[Section | None, str | None]:
    try:
        return current(page.state, page.community.id), None
    except EditError as exc:
        return None, str(exc)


def _editor(page: Page, text: str | None = None, checked: Checked | None = None, status: int = 200,
            saved: int | None = None) -> Response:
    section, problem = _section_or_error(page)
    with page.read() as conn:
        total = int(conn.execute(select(func.count()).select_from(CV)
                                 .where(CV.c.community_id == page.community.id)).scalar() or 0)
        paging = page.paging(total, per_page=HISTORY_PAGE)
        versions = history(conn, page.community.id, paging.offset, paging.per_page)
    return page.render(
        "config/editor.html", status=status, section=section, load_problem=problem,
        text=text if text is not None else (section.text if section else ""),
        checked=checked, versions=versions, paging=paging, path=str(page.state.config_path), saved=saved,
    )


@router.get("/c/{community}/config")
def editor(page: Viewer) -> Response:
    return _editor(page)


@router.post("/c/{community}/config/validate")
def validate(page: Admin, text: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> Response:
    section, problem = _section_or_error(page)
    if section is None:
        raise HTTPException(409, problem or "the configuration cannot be edited")
    checked = check(Path(page.state.config_path), section, text, page.community.id, page.lang)
    if page.request.headers.get("HX-Request"):
        return page.render("config/_problems.html", checked=checked)
    return _editor(page, text=text, checked=checked)


@router.post("/c/{community}/config")
def save_page(
    page: Admin,
    text: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
    base: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        checked, saved = save(page.state, page.user, page.community.id, text, note, base or None, page.audit,
                              page.lang)
    except EditError as exc:
        raise HTTPException(409, str(exc)) from None
    if not checked.ok:
        return _editor(page, text=text, checked=checked, status=422)
    return page.redirect("config", msg="msg.saved" if saved else "config.unchanged")


@router.get("/c/{community}/config/versions/{vid}")
def show_version(page: Viewer, vid: int) -> Response:
    with page.read() as conn:
        found = version(conn, page.community.id, vid)
        if found is None:
            raise HTTPException(404, "not_found")
        before = conn.execute(
            select(CV.c.id, CV.c.text).where(CV.c.community_id == page.community.id, CV.c.id < vid)
            .order_by(CV.c.id.desc()).limit(1)
        ).first()
    section, _problem_text = _section_or_error(page)
    against = page.request.query_params.get("against", "previous")
    if against == "current" and section is not None:
        diff = diff_lines(found["text"], section.text, f"#{vid}", page.t("config.current"))
    elif before is not None:
        diff = diff_lines(before.text, found["text"], f"#{before.id}", f"#{vid}")
    else:
        diff = diff_lines("", found["text"], "(none)", f"#{vid}")
    return page.render("config/version.html", version=found, diff=diff, against=against,
                       previous=before.id if before is not None else None, section=section)


@router.post("/c/{community}/config/versions/{vid}/restore")
def restore(page: Admin, vid: int, base: Annotated[str, Form(max_length=64)] = "") -> Response:
    with page.read() as conn:
        found = version(conn, page.community.id, vid)
    if found is None:
        raise HTTPException(404, "not_found")
    try:
        checked, saved = save(page.state, page.user, page.community.id, found["text"],
                              f"restored version #{vid}", base or None, page.audit, page.lang)
    except EditError as exc:
        raise HTTPException(409, str(exc)) from None
    if not checked.ok:
        return _editor(page, text=found["text"], checked=checked, status=422)
    return page.redirect("config", msg="msg.saved" if saved else "config.unchanged")
