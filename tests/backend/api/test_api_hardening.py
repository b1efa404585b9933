"""Inputs that broke the server, or were accepted when they should not be: each is now a 4xx naming its
field, with a body that is valid JSON and short, whatever came in."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.api.body_limit import MAX_BODY_BYTES
from backend.app import create_app
from backend.reports.spreadsheet import to_csv

BIG = "9" * 30  # past 64 bits: SQLite's OverflowError before these were bounded
UNICODE_DIGITS = ["\u00b2", "\u2460", "\u0661", "1\u0661"]


@pytest.fixture
def settings(make_settings, sqlite_url):
    return make_settings(sqlite_url)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url=LOOPBACK, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def run(client, data_root):
    answer = client.post("/api/v1/runs", json={"config": {"name": "base", "data": {"root": str(data_root)}}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def raw_post(client, path: str, text: str, **headers: str):
    """A body as typed: NaN, Infinity and 1e309 are what Python's json reads, not what it writes."""
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json", **headers})


def field_error(answer, loc: list) -> str:
    assert answer.status_code == 422, answer.text
    assert len(answer.content) < 4000, "a 422 answers briefly"
    errors = {tuple(error["loc"]): error["msg"] for error in json.loads(answer.text)["detail"]}
    assert tuple(loc) in errors, errors
    return errors[tuple(loc)]


# --- control characters and odd text --------------------------------------------------------------


@pytest.mark.parametrize("where", ["data.root", "tricks.kd.teacher", "name", "model.weights_path"])
def test_a_nul_byte_in_a_config_text_is_a_422_everywhere_a_config_goes(client, run, data_root, where):
    section, _, key = where.rpartition(".")
    config: dict = {"data": {"root": str(data_root)}}
    node = config
    for part in section.split(".") if section else []:
        node = node.setdefault(part, {})
    node[key] = "bad\x00text"
    message = field_error(client.post("/api/v1/runs", json={"config": config}), ["body", "config", *where.split(".")])
    assert message == "must not contain control characters (\\x00 at position 3)"
    field_error(
        client.post(f"/api/v1/runs/{run['id']}/clone", json={"overrides": {where: "bad\x00text"}}),
        ["body", "overrides", where],
    )
    field_error(client.post("/api/v1/schedule/preview", json={"config": config}), ["body", "config", *where.split(".")])
    if where not in ("name", "tricks.kd.teacher"):  # the study sets those
        study = {"name": "s", "preset": "seed", "overrides": {where: "bad\x00text"}}
        field_error(client.post("/api/v1/studies", json=study), ["body", "overrides", where])


def test_a_control_character_in_a_study_or_clone_name_is_a_422(client, run):
    field_error(client.post("/api/v1/studies", json={"name": "a\x1bb", "preset": "seed"}), ["body", "name"])
    field_error(client.post(f"/api/v1/runs/{run['id']}/clone", json={"name": "\x00"}), ["body", "name"])


@pytest.mark.parametrize("teacher", UNICODE_DIGITS[:3])
def test_a_teacher_in_unicode_digits_is_a_422(client, data_root, teacher):
    config = {"data": {"root": str(data_root)}, "tricks": {"kd": {"teacher": teacher}}}
    message = field_error(
        client.post("/api/v1/runs", json={"config": config}), ["body", "config", "tricks", "kd", "teacher"]
    )
    assert "ASCII digits" in message


def test_a_name_filter_with_a_nul_byte_matches_nothing(client, run):
    assert client.get("/api/v1/runs", params={"name": "\x00"}).json() == {"data": [], "count": 0, "next_cursor": None}
    assert client.get("/api/v1/runs", params={"name": "bas"}).json()["count"] == 1


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e309", "NaN", "-Infinity"])
def test_non_finite_numbers_are_a_422_and_the_answer_is_json(client, run, data_root, number):
    root = json.dumps(str(data_root))
    cases = [
        ("/api/v1/runs", f'{{"config": {{"data": {{"root": {root}}}}}, "priority": {number}}}', ["body", "priority"]),
        ("/api/v1/studies", f'{{"name": "s", "preset": "seed", "seeds": {number}}}', ["body", "seeds"]),
        (f"/api/v1/runs/{run['id']}/clone", f'{{"name": {number}}}', ["body", "name"]),
        (
            "/api/v1/schedule/preview",
            f'{{"config": {{"optim": {{"lr": {number}}}}}}}',
            ["body", "config", "optim", "lr"],
        ),
        (
            "/api/v1/runs",
            f'{{"config": {{"data": {{"root": {root}}}, "optim": {{"layer_lr_divisors": {{"stem": {number}}}}}}}}}',
            ["body", "config", "optim", "layer_lr_divisors", "stem"],
        ),
    ]
    for path, body, loc in cases:
        message = field_error(raw_post(client, path, body), loc)
        if loc[-1] != "name":
            assert message == "must be a finite number", (path, message)


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        ({"data": {"split_seed": 2**70}}, ["data", "split_seed"], "less than or equal to 2147483647"),
        ({"runtime": {"step_log_every": 2**70}}, ["runtime", "step_log_every"], "less than or equal to 1000000"),
        ({"epochs": True}, ["epochs"], "must be a number, not true or false"),
        ({"optim": {"lr": 1e400}}, ["optim", "lr"], "must be a finite number"),
        ({"runtime": {"compile": 1}}, ["runtime", "compile"], "valid boolean"),
        ({"model": {"pretrained": "yes"}}, ["model", "pretrained"], "valid boolean"),
    ],
)
def test_numbers_and_switches_are_strict(client, data_root, config, loc, message):
    config = {**config, "data": {"root": str(data_root), **config.get("data", {})}}
    answer = client.post(
        "/api/v1/runs", content=json.dumps({"config": config}), headers={"Content-Type": "application/json"}
    )
    assert message in field_error(answer, ["body", "config", *loc])


def test_a_boolean_priority_is_a_422(client, run, data_root):
    body = {"config": {"data": {"root": str(data_root)}}, "priority": False}
    assert "not true or false" in field_error(client.post("/api/v1/runs", json=body), ["body", "priority"])
    field_error(client.post(f"/api/v1/runs/{run['id']}/clone", json={"priority": True}), ["body", "priority"])
    field_error(client.post("/api/v1/studies", json={"name": "s", "preset": "seed", "seeds": True}), ["body", "seeds"])


@pytest.mark.parametrize(
    ("path", "params", "headers", "loc"),
    [
        ("/api/v1/runs", {"skip": BIG}, {}, ["query", "skip"]),
        ("/api/v1/runs", {"study_id": BIG}, {}, ["query", "study_id"]),
        ("/api/v1/studies", {"skip": BIG}, {}, ["query", "skip"]),
        ("/api/v1/runs/1/metrics", {"since": BIG}, {}, ["query", "since"]),
        ("/api/v1/runs/1/events", {}, {"Last-Event-ID": BIG}, ["header", "last-event-id"]),
        ("/api/v1/runs/1/events", {}, {"Last-Event-ID": "\u0661".encode()}, ["header", "last-event-id"]),
        ("/api/v1/compare", {"run_ids": "1", "baseline": BIG}, {}, ["query", "baseline"]),
        ("/api/v1/presets/teachers", {"label_smoothing": "nan"}, {}, ["query", "label_smoothing"]),
    ],
)
def test_integers_in_queries_and_headers_are_bounded(client, run, path, params, headers, loc):
    field_error(client.get(path, params=params, headers=headers), loc)


@pytest.mark.parametrize("run_ids", ["1" * 4301, *UNICODE_DIGITS])
@pytest.mark.parametrize("path", ["/api/v1/metrics", "/api/v1/compare", "/api/v1/compare.csv"])
def test_run_ids_take_ascii_digits_only(client, run, path, run_ids):
    field_error(client.get(path, params={"run_ids": run_ids}), ["query", "run_ids"])


@pytest.mark.parametrize("run_id", ["\u0661", "\u00b2", BIG])
def test_a_path_id_in_other_digits_or_past_the_largest_is_a_422(client, run, run_id):
    field_error(client.get(f"/api/v1/runs/{run_id}"), ["path", "run_id"])
    field_error(client.get(f"/api/v1/studies/{run_id}"), ["path", "study_id"])


# --- files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["/etc/passwd", "/proc/self/environ", "{root}/../outside.pt", "{root}/link.pt"])
def test_weights_must_lie_under_the_data_roots(client, data_root, weights):
    (data_root.parent / "outside.pt").write_bytes(b"x")
    (data_root / "link.pt").symlink_to("/etc/passwd")  # inside by name, outside once resolved
    config = {"data": {"root": str(data_root)}, "model": {"weights_path": weights.format(root=data_root)}}
    message = field_error(
        client.post("/api/v1/runs", json={"config": config}), ["body", "config", "model", "weights_path"]
    )
    assert "outside the data roots" in message


def test_weights_under_a_data_root_are_stored_absolute(client, data_root, monkeypatch):
    (data_root / "resnet50.pth").write_bytes(b"weights")
    monkeypatch.chdir(data_root.parent)
    config = {"data": {"root": "data"}, "model": {"weights_path": "data/resnet50.pth"}}
    answer = client.post("/api/v1/runs", json={"config": config})
    assert answer.status_code == 201, answer.text
    assert answer.json()["config"]["model"]["weights_path"] == str(data_root / "resnet50.pth")
    missing = {"data": {"root": "data"}, "model": {"weights_path": "data/none.pth"}}
    message = field_error(
        client.post("/api/v1/runs", json={"config": missing}), ["body", "config", "model", "weights_path"]
    )
    assert message == "data/none.pth is not a file"


def test_path_errors_name_the_path_as_given_not_the_servers_folders(client, data_root, settings, monkeypatch):
    monkeypatch.chdir(data_root.parent)
    for root, expected in [("data/missing", "data/missing does not exist"), ("/etc", "/etc is outside the data roots")]:
        answer = client.post("/api/v1/runs", json={"config": {"data": {"root": root}}})
        message = field_error(answer, ["body", "config", "data", "root"])
        assert message.startswith(expected), message
        assert str(data_root) not in answer.text and str(settings.runs_dir) not in answer.text


# --- sizes -----------------------------------------------------------------------------------------


def test_a_body_past_the_limit_is_a_413_before_it_is_read(client):
    answer = client.post(
        "/api/v1/runs",
        content=b'{"config": {"name": "' + b"x" * (30 * 2**20) + b'"}}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and "larger than 1,024 KiB" in answer.json()["detail"]


def test_a_chunked_body_past_the_limit_is_a_413(settings, live_server):
    base = live_server(settings)

    def chunks():
        yield b'{"config": {"name": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'"}}'

    answer = httpx.post(
        f"{base}/api/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 413
    assert httpx.get(f"{base}/api/v1/runs", timeout=30).json()["count"] == 0


def test_a_422_does_not_echo_a_huge_input(client, data_root):
    name = "n" * 500_000
    answer = client.post("/api/v1/studies", json={"name": name, "preset": "seed"})
    message = field_error(answer, ["body", "name"])
    assert "at most 200 characters" in message
    assert "(500,000 characters)" in answer.text and len(answer.content) < 2000


def test_broken_unicode_in_a_key_is_a_422_answered_as_json(client, data_root):
    body = '{"config": {"\\ud800": 1, "data": {"root": ' + json.dumps(str(data_root)) + "}}}"
    answer = raw_post(client, "/api/v1/runs", body)
    assert answer.status_code == 422
    (error,) = json.loads(answer.text)["detail"]
    assert error["loc"][:2] == ["body", "config"] and "unicode string" in error["msg"]


# --- what the schema says ---------------------------------------------------------------------------


def test_a_405_lists_every_method_of_the_path(client, run):
    assert client.request("OPTIONS", "/api/v1/runs").headers["Allow"] == "GET, POST, PATCH"
    assert client.put("/api/v1/studies/1").headers["Allow"] == "GET, PATCH, DELETE"
    # /studies/preview is no study id: its other methods are 405s, not a 422 for the id.
    for method in ("GET", "PATCH", "DELETE"):
        assert client.request(method, "/api/v1/studies/preview").headers["Allow"] == "POST"
    assert client.put(f"/api/v1/runs/{run['id']}").headers["Allow"] == "GET, PATCH, DELETE"
    assert client.get(f"/api/v1/runs/{run['id']}/cancel").headers["Allow"] == "POST"


def test_the_schema_documents_error_bodies_csv_and_the_preset_or_grid_rule(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method, status in [
        ("/api/v1/runs/{run_id}", "get", "404"),
        ("/api/v1/runs/{run_id}/cancel", "post", "409"),
        ("/api/v1/runs", "post", "400"),
        ("/api/v1/runs", "post", "413"),
        ("/api/v1/runs", "post", "503"),
    ]:
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorPublic"}, (path, status)
    invalid = paths["/api/v1/runs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/ValidationErrorPublic"}
    for path in ("/api/v1/compare.csv", "/api/v1/studies/{study_id}/table.csv"):
        responses = paths[path]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["text/csv"]
        assert list(responses["422"]["content"]) == ["application/json"]
    components = schema["components"]["schemas"]
    designs = [components[branch["$ref"].rsplit("/", 1)[1]] for branch in components["StudyCreate"]["oneOf"]]
    assert [design["required"] for design in designs] == [["name", "preset"], ["name", "grid"]]
    # Each design says the other is null: a body that gives both matches neither.
    preset_design, grid_design = designs
    assert preset_design["properties"]["grid"]["type"] == grid_design["properties"]["preset"]["type"] == "null"
    config = schema["components"]["schemas"]["RunCreate"]["properties"]["config"]
    assert config["additionalProperties"] is False and "epochs" in config["properties"]


def _types(schema: dict) -> set[str]:
    """The JSON types a property may take, through anyOf/oneOf (a $ref is an object)."""
    own = {schema["type"]} if "type" in schema else set()
    return own.union(*(_types(branch) for key in ("anyOf", "oneOf") for branch in schema.get(key, [])))


def test_every_figure_of_the_schema_says_what_it_is(client):
    """Every number of every body, request or response, has a description (what it is, its unit): a
    script reading checkpoint_epoch or peak_valid_top1 learns from the schema which epoch each is."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    undescribed = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if _types(prop) & {"integer", "number"} and not prop.get("description")
    ]
    assert not undescribed, undescribed
    run = schemas["RunPublic"]["properties"]
    assert "lowest valid loss" in run["checkpoint_epoch"]["description"]
    assert "highest valid top-1" in run["peak_epoch"]["description"]
    assert not [field for field in run if field.startswith(("best_", "max_valid"))]


# --- CSV ---------------------------------------------------------------------------------------------


def test_a_bare_carriage_return_cannot_start_a_formula_in_a_csv_export():
    text = to_csv([{"name": "results\r=cmd|' /C calc'!A0", "top1": 1.0}], ["name", "top1"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "top1"], ["results\n=cmd|' /C calc'!A0", "1.0"]]
    # The break is inside the quoted cell: no row of the file starts with the formula.
    assert "\r" not in text and '\n"results\n=cmd' in text
