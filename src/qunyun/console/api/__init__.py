"""The REST API under ``/api/v1``, one module per area (see ``qunyun.console.app.APIS``).

Every route authenticates with an API token (``Authorization: Bearer qy_…``;
scope ``read`` for GET, ``write`` for changes) or, from the console's own
pages, the session cookie plus the CSRF header. Success is
``{"ok": true, "data": …}``; an error is ``{"ok": false, "error", "code"}``.
"""
