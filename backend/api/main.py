from fastapi import APIRouter

from backend.api.routes import metrics, runs

api_router = APIRouter()
api_router.include_router(runs.router)
api_router.include_router(metrics.router)
