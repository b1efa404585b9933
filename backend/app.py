"""The FastAPI application: ``create_app(settings)``; ``tricklab serve`` runs it under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from backend import migrate
from backend.api.main import api_router
from backend.db import Database
from backend.security.middleware import SecurityMiddleware
from backend.services.errors import Conflict, InvalidConfig, InvalidParameter, InvalidStudy, InvalidSweep, NotFound
from backend.settings import Settings
from backend.web import errors, login, pages


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(migrate.upgrade, database)
        yield
        database.dispose()

    app = FastAPI(
        title="tricklab",
        summary="Launch, watch and compare Bag-of-Tricks image-classification runs",
        lifespan=lifespan,
        # Served by the pages from installed files instead, so that they work offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    _add_error_handlers(app)
    # Every request, the docs and the static files included, passes its checks before any route.
    app.add_middleware(SecurityMiddleware, settings=settings, database=database)
    errors.install(app, pages.templates)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(pages.router)
    app.include_router(login.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidConfig)
    async def _invalid_config(_request: Request, exc: InvalidConfig) -> JSONResponse:
        # FastAPI's own 422 shape, located at the field so a form can show the message beside it.
        detail = [
            {
                "loc": ["body", "overrides", field]
                if field in exc.overrides
                else ["body", "config", *field.split(".")],
                "msg": message,
                "type": "value_error",
            }
            for field, message in exc.errors.items()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(InvalidSweep)
    async def _invalid_sweep(_request: Request, exc: InvalidSweep) -> JSONResponse:
        detail = [
            {"loc": ["body", "sweep", field], "msg": message, "type": "value_error"}
            for field, message in exc.errors.items()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(InvalidParameter)
    async def _invalid_parameter(_request: Request, exc: InvalidParameter) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(InvalidStudy)
    async def _invalid_study(_request: Request, exc: InvalidStudy) -> JSONResponse:
        detail = [{"loc": ["body", *loc], "msg": message, "type": "value_error"} for loc, message in exc.errors.items()]
        return JSONResponse({"detail": detail}, status_code=422)
