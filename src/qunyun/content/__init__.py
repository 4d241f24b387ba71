"""Content of the community (输出): what the ``essence``, ``digest`` and
``knowledge`` playbooks share.

- :mod:`qunyun.content.messages` — read-only lookups in the engine's
  ``messages``, ``groups``, ``members`` and ``records`` tables (the text of a
  message that is marked as essence, an answer's text, a member's awards);
- :mod:`qunyun.content.collect` — periods (``2026-11-02``, ``2026-W45``) and
  the entries of a digest, a book and a talent archive, gathered from the
  ``essence`` state and, when they run, the ``qa`` and ``sessions`` states;
- :mod:`qunyun.content.render` — Markdown and HTML from the Jinja2 templates
  in ``templates/`` (HTML autoescaped; Markdown escaped by the environment
  itself, so a template cannot forget it).
"""
