"""A small Markdown → HTML converter for digests an operator edited.

It knows the subset our own ``digest.md.j2`` writes — headings (``#`` to
``######``), quotes (``> ``), bullet lists (``- ``/``* ``), rules (``---``),
paragraphs and ``**bold**`` — plus backslash escapes. It is safe by
construction: every piece of text is HTML-escaped, and the only tags in the
output are the ones written here, without attributes. A member's (or an
operator's) ``<script>`` or ``[link](javascript:…)`` stays text. Anything else
Markdown can do (links, images, code, tables) is shown as the text it is.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_QUOTE = re.compile(r"^>[ \t]?(.*)$")
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(.*)$")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_INLINE = re.compile(r"\\(.)|(\*\*)")


def inline(text: str) -> Markup:
    """One line of Markdown text: escapes undone, ``**bold**``, the rest escaped."""
    out: list[str] = []
    bold = False
    pos = 0
    for found in _INLINE.finditer(text):
        out.append(str(escape(text[pos : found.start()])))
        if found.group(1) is not None:
            out.append(str(escape(found.group(1))))
        else:
            out.append("</strong>" if bold else "<strong>")
            bold = not bold
        pos = found.end()
    out.append(str(escape(text[pos:])))
    if bold:
        out.append("</strong>")
    return Markup("".join(out))


def to_html(md: str) -> Markup:
    """The HTML fragment for ``md`` (safe to put in a page as it is)."""
    blocks: list[str] = []
    para: list[str] = []
    quote: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append("<p>" + "<br>".join(str(inline(x)) for x in para) + "</p>")
            para.clear()
        if quote:
            blocks.append("<blockquote>" + "<br>".join(str(inline(x)) for x in quote) + "</blockquote>")
            quote.clear()
        if items:
            blocks.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in items) + "</ul>")
            items.clear()

    for raw in md.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        if _RULE.match(line):
            flush()
            blocks.append("<hr>")
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            continue
        quoted = _QUOTE.match(line)
        if quoted:
            if para or items:
                flush()
            quote.append(quoted.group(1))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            if para or quote:
                flush()
            items.append(bullet.group(1))
            continue
        if quote or items:
            flush()
        para.append(line.strip())
    flush()
    return Markup("\n".join(blocks))


def document(md: str, *, title: str, lang: str) -> str:
    """A whole HTML page for ``md``, styled like the digest's own HTML."""
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n"
        'body { font-family: -apple-system, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; '
        "max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.6; color: #222; }\n"
        "h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }\n"
        "blockquote { margin: .4rem 0; padding: .4rem .8rem; border-left: 4px solid #e0b84a; background: #fffaf0; "
        "word-break: break-word; }\n"
        f"</style>\n</head>\n<body>\n{to_html(md)}\n</body>\n</html>\n"
    )
