"""Console page: overview."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
