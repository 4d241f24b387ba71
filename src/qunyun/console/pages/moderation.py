"""Console page: moderation."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
