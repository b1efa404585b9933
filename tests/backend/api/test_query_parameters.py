"""Every route refuses a query parameter it does not declare: a 422 naming it on the API, the error page
on the pages. The routes are read from the app, so that a new one cannot escape these tests."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from backend.api.query import declared_query
from backend.app import create_app
from backend.settings import Settings

UNKNOWN = "tricks.mixup_alpha"
# Not routes of ours: FastAPI's schema document and the static files.
NOT_OURS = {"/openapi.json", "/static"}

CONTEXTS = list(iter_route_contexts(create_app(Settings()).routes))
# Each route as the app serves it: its full path, its methods, its dependencies the routers' included.
ROUTES = {
    (method, context.path): context
    for context in CONTEXTS
    if isinstance(context.original_route, APIRoute)
    for method in sorted((context.methods or set()) - {"HEAD"})
}


def test_every_route_is_checked():
    assert {context.path for context in CONTEXTS} - {path for _, path in ROUTES} == NOT_OURS


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_an_unknown_query_parameter_is_refused_naming_it(api: TestClient, method: str, path: str):
    route = ROUTES[(method, path)]
    response = api.request(method, re.sub(r"\{[^}]+\}", "1", path), params={UNKNOWN: "0.2"})
    if path.startswith("/api/"):
        assert response.status_code == 422, response.text
        known = declared_query(route.dependant)
        message = f"unknown query parameter; known: {', '.join(sorted(known)) or 'none'}"
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", UNKNOWN]
        assert error["type"] == "extra_forbidden"
        assert message in error["msg"]
    else:
        assert response.status_code == 400, response.text
        takes = ", ".join(sorted(declared_query(route.dependant))) or "no parameters"
        assert f"does not take “{UNKNOWN}” in its address (it takes {takes})." in response.text


def test_each_unknown_parameter_is_named_once(api: TestClient):
    response = api.get("/api/v1/runs", params=[("statuss", "queued"), ("statuss", "failed"), ("limt", "2")])
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "statuss"], ["query", "limt"]]


def test_the_api_takes_what_its_schema_documents(api: TestClient):
    """The check and the schema agree: every documented query parameter is one the check knows."""
    documented = {
        (method.upper(), path): {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for path, operations in api.get("/openapi.json").json()["paths"].items()
        for method, operation in operations.items()
    }
    assert len(documented) > 20
    # The schema writes a path convertor's parameter bare: {path:path} is {path}.
    served = {(method, re.sub(r"\{(\w+):\w+\}", r"{\1}", str(path))): route for (method, path), route in ROUTES.items()}
    for key, names in documented.items():
        original = served[key].original_route
        assert isinstance(original, APIRoute)
        assert declared_query(original.dependant) == names, key


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/runs?status=queued&status=failed&kind=training&name=x&created_by=ci&skip=0&limit=5",
        "/api/v1/studies?skip=0&limit=5",
        "/api/v1/presets/teachers?label_smoothing=0.1",
        "/?status=failed&kind=lr_range&name=x",
        "/?filter=tag%20exists&sort=-peak.valid_top1&group=seeds&archived=any",
        "/api/v1/run-groups?filter=tag%20exists&archived=true",
        "/api/v1/epochs.csv?filter=notes%20ilike%20%22%25x%25%22&archived=any",
        "/runs/new?preset=demo",
        "/runs/new?clone=1&lr=0.01",
        "/compare",
        "/login?next=/compare",
    ],
)
def test_known_parameters_still_work(api: TestClient, url: str):
    assert api.get(url).status_code == 200
