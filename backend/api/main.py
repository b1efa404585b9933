"""``api_router``: every route module of the REST API; the app serves it under /api/v1."""

from fastapi import APIRouter

from backend.api.routes import compare, metrics, presets, runs, schedule, studies, workers

api_router = APIRouter()
for routes in (runs, metrics, presets, schedule, compare, studies, workers):
    api_router.include_router(routes.router)
