"""API: operations (see qunyun.console.api)."""

from __future__ import annotations

from fastapi import APIRouter

from qunyun.console.api.common import ERRORS

router = APIRouter(tags=["operations"], responses=ERRORS)
