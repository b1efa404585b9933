"""``api_router``: every route module of the REST API; the app serves it under /api/v1."""

from fastapi import APIRouter

from backend.api.query import KnownQueryOnly
from backend.api.routes import (
    compare,
    effects,
    epochs,
    health,
    lr_range,
    metrics,
    presets,
    reports,
    run_files,
    run_groups,
    runs,
    schedule,
    studies,
    sweeps,
    workers,
)
from backend.schemas.security import HOST_REFUSAL, REFUSALS

# Operation ids are the route functions' names (create_run, list_runs), as the Python client's methods are,
# so that generated clients in other languages read the same, not "create_run_api_v1_runs_post".
# Every route refuses a query parameter it does not declare (backend/api/query.py).
api_router = APIRouter(generate_unique_id_function=lambda route: route.name, dependencies=[KnownQueryOnly])
# Health is open: it needs no token, so only a foreign Host is refused.
api_router.include_router(health.router, responses=HOST_REFUSAL)
for routes in (
    runs,
    run_groups,
    run_files,
    lr_range,
    metrics,
    epochs,
    presets,
    schedule,
    compare,
    studies,
    sweeps,
    effects,
    reports,
    workers,
):
    api_router.include_router(routes.router, responses=REFUSALS)
