"""``Client``: what a script, a test or a benchmark calls to talk to a tricklab server.

One method per route, named as the route is (``create_run`` is ``POST /api/v1/runs``), each returning
a typed model from ``tricklab.models`` and raising one of ``tricklab.errors`` for an unsuccessful
answer. The HTTP itself lives in one private transport, as MLflow's ``MlflowClient`` keeps it; the
methods live by concern: runs (``_runs.py``), studies (``_studies.py``), metrics, comparisons and
reports (``_metrics.py``), a run's files (``_files.py``), sweeps (``sweeps.py``), and here what is left
(health, LR range tests, workers, any other route).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tricklab._files import _Files
from tricklab._metrics import _Metrics
from tricklab._runs import _Runs
from tricklab._studies import _Studies
from tricklab._transport import _Transport
from tricklab.models import Health, LRRangeTest, LRRangeTestCreated, Workers
from tricklab.sweeps import SweepMethods

DEFAULT_URL = "http://127.0.0.1:8000"


class Client(_Runs, _Studies, _Metrics, _Files, SweepMethods):
    """A tricklab server's REST API.

    ``url`` defaults to ``$TRICKLAB_SERVER`` or the local dashboard, ``token`` to ``$TRICKLAB_TOKEN``
    (``""`` or neither: none is sent, for an open server). Reads, and creates (each sends an
    ``Idempotency-Key``), are tried again ``retries`` times when the answer is lost or the server is busy.
    """

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30, retries: int = 2):
        self._transport = _Transport(
            url or os.environ.get("TRICKLAB_SERVER") or DEFAULT_URL,
            token=token if token is not None else os.environ.get("TRICKLAB_TOKEN") or None,
            timeout=timeout,
            retries=retries,
        )

    @property
    def url(self) -> str:
        return self._transport.url

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def health(self) -> Health:
        """Open without a token: that the server answers."""
        return Health.model_validate(self._transport.get("/health"))

    # --- LR range tests and workers --------------------------------------------------------------

    def create_lr_range_test(
        self, config: Mapping[str, Any] | None = None, *, sweep: Mapping[str, Any] | None = None, priority: int = 0
    ) -> LRRangeTestCreated:
        """Queue an LR range test of ``config``; ``sweep``'s keys left out take the report's range test."""
        body = {"config": dict(config or {}), "sweep": dict(sweep or {}), "priority": priority}
        return LRRangeTestCreated.model_validate(self._transport.post("/lr-range-tests", body))

    def get_lr_range_test(self, run_id: int) -> LRRangeTest:
        """Its status, curve, minimum and suggestion (None until it has succeeded)."""
        return LRRangeTest.model_validate(self._transport.get(f"/lr-range-tests/{run_id}"))

    def list_workers(self) -> Workers:
        """The workers seen in the last day and their devices, the living ones first."""
        return Workers.model_validate(self._transport.get("/workers"))

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """The JSON answer of a route this class has no method for (``"GET", "/studies/1/table"``), with
        the same token and errors."""
        return self._transport.request(method, path, params=params, json=json, retry=method == "GET").json()
