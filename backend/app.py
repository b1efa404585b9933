"""The FastAPI application: ``create_app(settings)``; ``tricklab serve`` runs it under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from backend import migrate, statistics
from backend.api.body_limit import BodySizeLimit
from backend.api.errors import add_error_handlers
from backend.api.main import api_router
from backend.db import Database
from backend.security.middleware import SecurityMiddleware
from backend.services.sweep_loop import SweepLoop
from backend.settings import Settings
from backend.web import errors, login, pages


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(migrate.upgrade, database)
        await anyio.to_thread.run_sync(statistics.refresh, database)
        controller = SweepLoop(database=database, settings=settings) if settings.sweep_controller else None
        if controller is not None:
            controller.start()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(statistics.keep_current, database)
            yield
            tasks.cancel_scope.cancel()
        if controller is not None:
            await anyio.to_thread.run_sync(controller.stop)
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
    add_error_handlers(app)
    errors.install(app, pages.templates)
    app.add_middleware(BodySizeLimit)
    # Added last, so outermost: every request, the docs and the static files included, passes its
    # checks before any body is read or any route runs.
    app.add_middleware(SecurityMiddleware, settings=settings, database=database)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(pages.router)
    app.include_router(login.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app
