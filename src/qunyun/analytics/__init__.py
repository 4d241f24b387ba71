"""Analytics: community health metrics from the rollups, and the health report.

- :mod:`qunyun.analytics.metrics` — members, joins, leaves, messages,
  speakers, active ratio, concentration, activation, retention, lurkers,
  check-ins and size vs activity, per group or community, per day, week or
  month, in the community's time zone. Read from the rollups, never from raw
  messages.
- :mod:`qunyun.analytics.report` — the health report (HTML, PNG charts, a
  text summary); :mod:`qunyun.analytics.charts` draws the charts.
- ``lifecycle``, ``value`` and ``replies`` — group lifecycle, member value
  and question answering (their own modules).
"""

from __future__ import annotations

from qunyun.analytics.metrics import AnalyticsError, Scope, dashboard, scope

__all__ = ["AnalyticsError", "Scope", "dashboard", "scope"]
