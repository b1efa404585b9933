"""Where the sweep controller runs: a thread of the server process, started and stopped with the app.

Not in a worker: workers never see Optuna (a worker runs anywhere, several per host, and may be killed
mid-run), while the server is one process per database, started first and already holding it. The
thread does database and Optuna work only (no training, no torch), waking every ``sweep_poll_seconds``;
the event loop that serves requests never waits on it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError

from backend.db import Database, is_unavailable, unavailable_reason
from backend.services import sweeps
from backend.services.sweep_controller import advance
from backend.settings import Settings

log = logging.getLogger("tricklab.sweeps")


class SweepLoop:
    def __init__(self, *, database: Database, settings: Settings):
        self.database = database
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-controller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def tick(self) -> None:
        """One step of every active sweep; a sweep whose step fails is logged and tried again next tick."""
        with self.database.session() as session:
            active = sweeps.active_sweep_ids(session=session)
        for sweep_id in active:
            if self._stop.is_set():
                return
            try:
                advance(database=self.database, settings=self.settings, sweep_id=sweep_id)
            except Exception as exc:
                if is_unavailable(exc):
                    raise  # not the sweep's fault: the loop waits for the database
                log.exception("sweep %s: the controller's step failed; it is tried again", sweep_id)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sweep_poll_seconds):
            try:
                self.tick()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("sweep controller: reading the active sweeps failed")
                    continue
                # A database away is the machine's fault, which the API answers with 503s: a line, no traceback.
                reason = unavailable_reason(exc) if isinstance(exc, DBAPIError) else type(exc).__name__
                log.warning("sweep controller: the database is unreachable (%s); tried again next tick", reason)
