"""/api/v1/studies in-process (no worker): shapes, status codes, and every bad input named."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.models import utcnow
from backend.services import workers
from backend.settings import Settings

TINY = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 1}
PAPER_ROWS = [
    "base",
    "scaling-warmup",
    "zero-init",
    "no-bias-decay",
    "resnet-d",
    "cosine",
    "label-smoothing",
    "mixup",
    "kd",
]


class StudiesClient(TestClient):
    data_root: str  # the server's one data root, as the overrides name it


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudiesClient]:
    home = tmp_path_factory.mktemp("studies-api")
    (home / "data" / "CUB_200_2011").mkdir(parents=True)
    settings = Settings(
        database_url=f"sqlite:///{home / 'tricklab.db'}", runs_dir=home / "runs", data_roots=[home / "data"]
    )
    with StudiesClient(create_app(settings), base_url=LOOPBACK) as test_client:
        test_client.data_root = str(home / "data")
        yield test_client


def body(client, **changes):
    return {"name": "api", "preset": "seed", "overrides": {**TINY, "data.root": client.data_root}, **changes}


def test_launch_read_table_csv_curves_and_cancel(client):
    overrides = {**TINY, "data.root": client.data_root, "teacher.model.arch": "resnet34"}
    answer = client.post("/api/v1/studies", json=body(client, seeds=2, overrides=overrides))
    assert answer.status_code == 201, answer.text
    study = answer.json()
    assert (study["kind"], study["preset"], study["seeds"], study["baseline"]) == (
        "preset",
        "seed",
        [1234, 1235],
        "base",
    )
    assert study["progress"]["total"] == study["progress"]["queued"] == 32 and not study["finished"]
    study_id = study["id"]

    assert client.get(f"/api/v1/studies/{study_id}").json()["groups"] == study["groups"]
    listed = client.get("/api/v1/studies").json()
    assert listed["count"] >= 1 and listed["data"][0]["id"] == study_id
    runs = client.get("/api/v1/runs", params={"study_id": study_id, "limit": 100}).json()
    assert runs["count"] == 32

    table = client.get(f"/api/v1/studies/{study_id}/table", params={"metric": "test"}).json()
    assert (table["metric"], table["count"], table["confidence"]) == ("test", 16, 0.95)
    assert table["data"][3]["report"] == "79.13 (+0.60p)" and table["data"][3]["top1"]["verdict"] == "no result yet"
    csv_answer = client.get(f"/api/v1/studies/{study_id}/table.csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert f'filename="study-{study_id}-valid.csv"' in csv_answer.headers["content-disposition"]
    header, *lines = csv_answer.text.splitlines()
    assert header.startswith("group,title,tricks,role,runs,succeeded,top1_mean,top1_std,top1_n,top1_delta,top1_ci_low")
    assert "report" in header.split(",") and len(lines) == 16
    curves = client.get(f"/api/v1/studies/{study_id}/curves").json()
    assert curves["count"] == 16 and curves["epochs"] == 1

    cancelled = client.post(f"/api/v1/studies/{study_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["progress"]["cancelled"] == 32
    assert cancelled.json()["finished"]
    again = client.post(f"/api/v1/studies/{study_id}/cancel")
    assert again.status_code == 409 and "no queued or running run" in again.json()["detail"]


def test_the_paper_study_stacks_its_refinements_and_quotes_the_paper_as_imagenet(client):
    # resnet18 at 32 px, its ResNet-D row resnet18d, the teacher resnet34d; warmup shortened to fit one epoch.
    overrides = {
        **TINY,
        "data.root": client.data_root,
        "teacher.model.arch": "resnet34",
        "schedule.warmup_epochs": 0.5,
    }
    request = body(client, name="paper", preset="paper", overrides=overrides)
    # The preview prices the ResNet-D rows and teacher too.
    preview = client.post("/api/v1/studies/preview", json=request)
    assert preview.status_code == 200 and preview.json()["runs"] == 10, preview.text
    answer = client.post("/api/v1/studies", json=request)
    assert answer.status_code == 201, answer.text
    study = answer.json()
    groups = {group["key"]: group for group in study["groups"]}
    assert list(groups) == ["T", *PAPER_ROWS] and study["baseline"] == "base"
    assert study["progress"]["total"] == 10
    assert groups["kd"]["teacher"] == "T" and groups["T"]["role"] == "teacher"
    assert groups["T"]["title"] == "Teacher: ResNet34d with every refinement but KD"
    assert groups["resnet-d"]["title"] == "+ ResNet-D (ResNet18d)"
    assert groups["scaling-warmup"]["tricks"] == "ResNet18 from scratch +Constant LR +Warmup 0.5ep +Linear LR scaling"
    assert "from scratch" in study["notes"][0] and "constant rate" in study["notes"][0]

    def config(key):
        run_id = groups[key]["runs"][0]["run_id"]
        return client.get(f"/api/v1/runs/{run_id}").json()["config"]

    base, warmup, resnet_d, kd, teacher = map(config, ("base", "scaling-warmup", "resnet-d", "kd", "T"))
    assert (base["model"]["arch"], base["schedule"], base["optim"]["name"]) == (
        "resnet18",
        {"name": "constant", "warmup_epochs": 0.0},
        "sgd",
    )
    assert warmup["schedule"]["warmup_epochs"] == 0.5 and warmup["optim"]["linear_scaling"]
    assert resnet_d["model"] == {**warmup["model"], "arch": "resnet18d", "zero_init_residual": True}
    assert (kd["tricks"]["kd"]["temperature"], kd["tricks"]["mixup_alpha"], kd["tricks"]["label_smoothing"]) == (
        20.0,
        0.2,
        0.1,
    )
    assert kd["tricks"]["kd"]["teacher"] == groups["T"]["runs"][0]["run_id"]
    assert teacher["model"]["arch"] == "resnet34d" and teacher["tricks"]["kd"]["teacher"] is None

    table = client.get(f"/api/v1/studies/{study['id']}/table").json()
    assert table["reference_column"] == "Paper, ImageNet (top-1)"
    assert "ImageNet with ResNet-50, a different dataset" in table["reference"]
    assert "the other rows are left empty" in table["reference"]
    reports = {row["group"]: (row["report_top1"], row["report"]) for row in table["data"]}
    assert reports["base"] == (75.3, "75.30") and reports["kd"] == (79.29, "79.29 (+3.99p)")
    assert all(reports[key] == (None, None) for key in ["T", *PAPER_ROWS[1:-1]])
    seed = client.get(f"/api/v1/studies/{client.post('/api/v1/studies', json=body(client)).json()['id']}/table")
    assert seed.json()["reference_column"] == "Report (top-1)"
    assert client.post(f"/api/v1/studies/{study['id']}/cancel").status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/studies/99999", 404),
        ("/api/v1/studies/0", 422),
        ("/api/v1/studies/x/table", 422),
        ("/api/v1/studies/1/table?metric=best", 422),
        ("/api/v1/studies/99999/curves", 404),
    ],
)
def test_unknown_studies_and_bad_queries(client, path, status):
    answer = client.get(path)
    assert answer.status_code == status, answer.text


def test_cancel_unknown_study_is_404(client):
    assert client.post("/api/v1/studies/99999/cancel").status_code == 404


BAD_INPUTS = [
    ({"preset": None}, ["body", "preset"], "give either a preset or a grid"),
    ({"grid": {"switches": {"kd": True}}}, ["body", "preset"], "not both"),
    ({"preset": "resnet"}, ["body", "preset"], "'seed'"),
    ({"seeds": 0}, ["body", "seeds"], "greater than or equal to 1"),
    ({"seeds": 21}, ["body", "seeds"], "less than or equal to 20"),
    ({"name": ""}, ["body", "name"], "at least 1 character"),
    ({"colour": "red"}, ["body", "colour"], "unknown key"),
    ({"overrides": {"model.arch": "resnet9"}}, ["body", "overrides", "model.arch"], "resnet18"),
    ({"overrides": {"epochs": 0}}, ["body", "overrides", "epochs"], "greater than or equal to 1"),
    (
        {"overrides": {"model.teacher_arch": "resnet34"}},
        ["body", "overrides", "model.teacher_arch"],
        "teacher runs take `teacher.`-prefixed keys",
    ),
    ({"overrides": {"teacher.model.arch": "resnet9"}}, ["body", "overrides", "teacher.model.arch"], "resnet18"),
    ({"overrides": {"teacher.seed": 3}}, ["body", "overrides", "teacher.seed"], "set by the study"),
    (
        {"overrides": {"teacher.data.image_size": 64}},
        ["body", "overrides", "teacher.data.image_size"],
        "students' dataset",
    ),
    (
        {"overrides": {"tricks.kd.teacher": 3}},
        ["body", "overrides", "tricks.kd.teacher"],
        "picks each student's teacher",
    ),
    ({"overrides": {"name": "x"}}, ["body", "overrides", "name"], "named after the study"),
    ({"overrides": {"data.root": "/nowhere"}}, ["body", "overrides", "data.root"], "outside the data roots"),
    ({"overrides": {"seed": 2**31 - 1}, "seeds": 2}, ["body", "seeds"], "largest seed"),
    (
        {"overrides": {"model.pretrained": True, "model.zero_init_residual": True}},
        ["body", "overrides", "model.zero_init_residual"],
        "training from scratch",
    ),
    # The paper study: runs too short for its 5 warmup epochs, pretrained weights, a ResNet without a -D.
    ({"preset": "paper"}, ["body", "overrides", "epochs"], "warms up for 5 epochs from its second row"),
    (
        {"preset": "paper", "overrides": {"model.pretrained": True, "schedule.warmup_epochs": 0.5}},
        ["body", "overrides", "model.pretrained"],
        "every row trains from scratch",
    ),
    (
        {"preset": "paper", "overrides": {"model.arch": "resnext50_32x4d", "schedule.warmup_epochs": 0.5}},
        ["body", "overrides", "model.arch"],
        "'resnext50_32x4dd' is none: give a plain ResNet",
    ),
    ({"preset": None, "grid": {"switches": {}}}, ["body", "grid", "switches"], "at least 1 item"),
    (
        {"preset": None, "grid": {"switches": {"cosin": True}}},
        ["body", "grid", "switches", "cosin"],
        "unknown switch",
    ),
    ({"preset": None, "grid": {"switches": {"kd": [True, 1]}}}, ["body", "grid", "switches", "kd"], "on/off"),
    (
        {"preset": None, "grid": {"switches": {"mixup_alpha": "0.2"}}},
        ["body", "grid", "switches", "mixup_alpha"],
        "true or a list",
    ),
    (
        {"preset": None, "grid": {"switches": {"mixup_alpha": [0, 0]}}},
        ["body", "grid", "switches", "mixup_alpha"],
        "listed twice",
    ),
    (
        {"preset": None, "grid": {"switches": {"mixup_alpha": [0, -1]}}},
        ["body", "grid", "switches", "mixup_alpha"],
        "-1: tricks.mixup_alpha",
    ),
    (
        {"preset": None, "grid": {"switches": {"warmup_epochs": [0, 1]}}},
        ["body", "grid", "switches", "warmup_epochs"],
        "OneCycle has its own warmup",
    ),
    (
        {"preset": None, "grid": {"switches": {"optim.lr": True}}},
        ["body", "grid", "switches", "optim.lr"],
        "a list of values",
    ),
    (
        {"preset": None, "grid": {"switches": {"tricks.kd.teacher": [1, 2]}}},
        ["body", "grid", "switches", "tricks.kd.teacher"],
        "set by the study",
    ),
    (
        {"preset": None, "grid": {"switches": {"cosine": True}}, "overrides": {"teacher.model.arch": "resnet34"}},
        ["body", "overrides", "teacher.model.arch"],
        "no run of this study is a teacher",
    ),
    (
        {
            "preset": None,
            "grid": {
                "switches": {f"optim.layer_lr_divisors.layer{i}": [1, 2, 3] for i in range(1, 5)}
                | {"optim.lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
            },
        },
        ["body", "grid", "switches"],
        "at most 600",
    ),
]
# The dataset folder is checked when runs are queued, not when a study is previewed.
QUEUED_ONLY = ["body", "overrides", "data.root"]


@pytest.mark.parametrize(
    ("path", "changes", "loc", "message"),
    [("/api/v1/studies", *case) for case in BAD_INPUTS]
    + [("/api/v1/studies/preview", *case) for case in BAD_INPUTS if case[1] != QUEUED_ONLY],
)
def test_every_bad_input_is_a_422_naming_its_field(client, path, changes, loc, message):
    request = body(client, **changes)
    if "overrides" in changes:
        request["overrides"] = {**TINY, "data.root": client.data_root, **changes["overrides"]}
    before = client.get("/api/v1/runs").json()["count"]
    answer = client.post(path, json={key: value for key, value in request.items() if value is not None})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [item["loc"] for item in detail] == [loc], detail
    assert message in detail[0]["msg"], detail
    assert client.get("/api/v1/runs").json()["count"] == before  # nothing was queued


def test_a_preview_says_what_a_launch_would_queue_and_writes_nothing(client):
    before = client.get("/api/v1/runs").json()["count"]
    overrides = {**TINY, "data.root": client.data_root, "teacher.model.arch": "resnet34"}
    answer = client.post("/api/v1/studies/preview", json=body(client, seeds=3, overrides=overrides))
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert (plan["groups"], plan["seeds"], plan["runs"], plan["new_runs"]) == (16, [1234, 1235, 1236], 48, 48)
    assert plan["device"] == "cpu" and plan["workers"] == 0 and plan["seconds"] > 0
    assert client.get("/api/v1/runs").json()["count"] == before


def test_pages_render(client):
    assert "Launch a study" in client.get("/studies").text
    study = client.post("/api/v1/studies", json=body(client)).json()
    page = client.get(f"/studies/{study['id']}")
    assert page.status_code == 200 and f'data-study-id="{study["id"]}"' in page.text
    assert 'href="/studies"' in client.get("/").text
    missing = client.get("/studies/99999")
    assert missing.status_code == 404 and "There is no study #99999" in missing.text
    assert (
        client.get("/studies/abc").status_code == 404 and "“abc” is not a study id" in client.get("/studies/abc").text
    )


def test_the_studies_form_starts_with_the_full_study_where_a_worker_has_a_gpu(tmp_path):
    (tmp_path / "data" / "CUB_200_2011").mkdir(parents=True)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tricklab.db'}", runs_dir=tmp_path / "runs", data_roots=[tmp_path / "data"]
    )
    app = create_app(settings)
    with TestClient(app, base_url=LOOPBACK) as client:
        without = client.get("/studies").text
        assert 'value="1"' in without and "\nmodel.arch = resnet18" in without and "No worker with a GPU" in without
        gpu = [{"device": "cuda:0", "kind": "cuda", "name": "NVIDIA H200", "memory_gib": 139.8}]
        with app.state.database.session(write=True) as session:
            workers.report_worker(session=session, name="gpu-host:1", devices=gpu, started_at=utcnow())
        page = client.get("/studies").text
        assert 'value="3"' in page and "# model.arch = resnet18" in page and "\nmodel.arch" not in page
        assert "Workers: 1 worker (NVIDIA H200)" in page
        plan = client.post(
            "/api/v1/studies/preview",
            json={
                "name": "p",
                "preset": "seed",
                "seeds": 3,
                "overrides": {**TINY, "data.root": str(tmp_path / "data")},
            },
        ).json()
        assert (plan["device"], plan["parallel"], plan["workers"]) == ("cuda", 1, 1)
        assert plan["basis"] == "rough: from the FLOPs table, nothing measured yet on 1 GPU (NVIDIA H200)"
        assert plan["source"] == "rough"
        assert not [warning for warning in plan["warnings"] if "GPU memory" in warning]
        # A full-size student at a batch the worker's GPU cannot hold: said before the study is launched.
        small = [{"device": "cuda:0", "kind": "cuda", "name": "NVIDIA T4", "memory_gib": 12.0}]
        with app.state.database.session(write=True) as session:
            workers.report_worker(session=session, name="gpu-host:1", devices=small, started_at=utcnow())
        big = {"model.pretrained": False, "batch_size": 128, "runtime.amp": False, "teacher.model.arch": "resnet34"}
        plan = client.post(
            "/api/v1/studies/preview",
            json={"name": "p", "preset": "seed", "overrides": {**big, "data.root": str(tmp_path / "data")}},
        ).json()
        assert plan["warnings"] == [
            "resnet50 at batch_size 128, 224 px, fp32 is estimated to need about 13.5 GiB of GPU memory for a "
            "training step; the largest GPU of the live workers has 12.0 GiB: lower batch_size to 111 or less, or "
            "turn runtime.amp on (about 7.6 GiB)",
            "resnet50 distilling from resnet34 at batch_size 128, 224 px, fp32 is estimated to need about 14.5 GiB "
            "of GPU memory for a training step; the largest GPU of the live workers has 12.0 GiB: lower batch_size "
            "to 103 or less, or turn runtime.amp on (about 8.2 GiB)",
        ]


def test_a_batch_larger_than_the_split_is_warned_in_the_preview_and_one_with_no_full_step_refused(api, demo_dataset):
    """The demo's 32 training images: a batch of 64 trains one step per epoch; with runtime.compile
    (full batches only) none, and the study is refused at the override that causes it."""
    grid = {"name": "big batch", "grid": {"switches": {"cosine": True}}}
    overrides = {**TINY, "data.root": str(demo_dataset), "batch_size": 64}
    plan = api.post("/api/v1/studies/preview", json={**grid, "overrides": overrides})
    assert plan.status_code == 200, plan.text
    assert plan.json()["warnings"] == [
        "batch_size 64 is larger than the training split (32 images): each epoch is one step of 32 images"
    ]
    small = api.post("/api/v1/studies/preview", json={**grid, "overrides": {**overrides, "batch_size": 8}})
    assert small.json()["warnings"] == []
    compiled = {**overrides, "runtime.compile": True}
    for path in ("/api/v1/studies/preview", "/api/v1/studies"):
        answer = api.post(path, json={**grid, "overrides": compiled})
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert error["loc"] == ["body", "overrides", "batch_size"]
        assert "runtime.compile trains on full batches only, and batch_size 64 is more than the 32" in error["msg"]
    assert api.get("/api/v1/studies").json()["count"] == 0
