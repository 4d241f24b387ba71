"""Console page: fund."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
