"""The Python client against a real `tricklab serve`: its worker trains a tiny run through the real trainer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib.dashboard import TINY_RUN, Dashboard, serve, settings_for
from testlib.finished import BASE, Finished, add_finished_runs
from testlib.processes import tricklab

from tricklab import Client, Conflict, Invalid, NotFound, Refused
from tricklab.local import serving, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[Dashboard]:
    with serve(tmp_path_factory.mktemp("client-server"), demo_dataset) as running:
        yield running


@pytest.fixture
def client(server: Dashboard) -> Iterator[Client]:
    with Client(server.url, token="") as client:
        yield client


def tiny(server: Dashboard, name: str) -> dict:
    return {**TINY_RUN, "name": name, "epochs": 1, "data": {**TINY_RUN["data"], "root": str(server.data_root)}}


def test_a_run_is_created_followed_to_its_end_and_read_back(client, server):
    run = client.create_run(tiny(server, "followed"), priority=5)
    assert (run.name, run.priority, run.status, run.epochs) == ("followed", 5, "queued", 1)
    assert client.get_run(run.id).config["model"]["arch"] == TINY_RUN["model"]["arch"]

    events = list(client.follow_run(run.id))
    assert events[0].event == "status" and events[-1].event == "end"
    epochs = [event.epoch for event in events if event.epoch is not None]
    assert [row.epoch for row in epochs] == [1] and epochs[0].run_id == run.id
    final = events[-1].run
    assert final is not None and final.status == "succeeded", server.log_tail()
    assert final.finished and final.test_top1 is not None
    # One epoch: it is both the kept checkpoint and the peak, each under its own name.
    assert (final.checkpoint_epoch, final.peak_epoch) == (1, 1) and final.peak_valid_top1 is not None

    waited = client.wait_for_run(run.id, timeout=10)
    assert waited.status == "succeeded" and waited.model_dump()["run_dir"]  # fields the model does not name
    assert [row.epoch for row in client.get_metrics([run.id])] == [1]
    columns = client.metric_columns([run.id, 9999], fields=["valid_top1"])
    assert columns is not None and columns.missing == [9999] and columns.etag
    assert len(columns.data[0].model_dump()["valid_top1"]) == 1
    assert client.metric_columns([run.id, 9999], fields=["valid_top1"], if_none_match=columns.etag) is None
    comparison = client.compare([run.id, 9999])
    assert comparison.missing == [9999] and comparison.data[0].run_id == run.id
    assert comparison.baseline == run.id and comparison.mode == "peak"
    assert (comparison.data[0].epoch, comparison.data[0].checkpoint_epoch) == (1, 1)
    with pytest.raises(Conflict, match="409"):
        client.cancel_run(run.id)  # finished
    clone = client.clone_run(run.id, {"tricks.label_smoothing": 0.1}, name="clone")
    assert clone.config["tricks"]["label_smoothing"] == 0.1 and clone.name == "clone"
    assert client.cancel_run(clone.id).status == "cancelled"
    assert client.retry_run(clone.id).status == "queued"
    client.cancel_run(clone.id)
    client.delete_run(clone.id)
    with pytest.raises(NotFound):
        client.get_run(clone.id)


def test_runs_are_listed_page_by_page(client, server):
    prefix = f"paged {uuid.uuid4().hex[:6]}"
    created = [client.create_run(tiny(server, f"{prefix} {index}"), priority=-1000).id for index in range(5)]
    first = client.list_runs(name=prefix, limit=2)
    assert first.count == 5 and len(first.data) == 2
    assert len(client.list_runs(name=prefix, skip=4, limit=2).data) == 1
    assert sorted(run.id for run in client.iter_runs(name=prefix, page_size=2)) == created
    assert {run.status for run in client.iter_runs(name=prefix, status=["queued", "running"])} <= {"queued", "running"}
    for run_id in created:
        client.cancel_run(run_id)
    # A run the server's worker had claimed ends cancelled once the worker has stopped its trainer.
    wait_for(
        lambda: client.list_runs(name=prefix, status="cancelled").count == 5, timeout=60, what="every run cancelled"
    )


def test_the_filter_language_sorts_cursors_and_groups_from_the_client_and_the_cli(client, server):
    prefix = f"found {uuid.uuid4().hex[:6]}"
    created = {}
    for seed, smoothing in ((1, 0.0), (2, 0.0), (3, 0.1)):
        config = {**tiny(server, f"{prefix} ls={smoothing} seed={seed}"), "seed": seed}
        config["tricks"] = {"label_smoothing": smoothing}
        created[(seed, smoothing)] = client.create_run(config, priority=-1000).id
        client.cancel_run(created[(seed, smoothing)])
    text = f'name like "{prefix}%" and config.tricks.label_smoothing > 0'
    assert [run.id for run in client.list_runs(filter=text).data] == [created[(3, 0.1)]]
    mine = f'name like "{prefix}%"'
    by_name = [run.id for run in client.iter_runs(filter=mine, sort="name", page_size=1)]
    assert by_name == [created[key] for key in sorted(created, key=lambda key: (str(key[1]), key[0]))]
    groups = client.list_run_groups(filter=mine)
    assert groups.count == 2 and sorted(group.count for group in groups.data) == [1, 2]
    with pytest.raises(Invalid) as refused:
        client.list_runs(filter="config.tricks.label_smoothing >")
    assert "ends too soon" in refused.value.fields["filter"]

    found = tricklab("find", text, "--server", server.url)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split("\t")[0] == str(created[(3, 0.1)]) and "1 of 1 runs" in found.stderr
    grouped = tricklab("find", mine, "--group", "--sort", "name", "--server", server.url)
    assert grouped.returncode == 0 and grouped.stdout.count("\n") == 2 and "2 configurations" in grouped.stderr
    archived = tricklab("find", mine, "--archived", "true", "--server", server.url)
    assert archived.returncode == 0 and archived.stdout == "" and "0 of 0 runs" in archived.stderr
    client.update_run(created[(1, 0.0)], archived=True)
    assert [run.id for run in client.iter_runs(filter=mine, archived=True)] == [created[(1, 0.0)]]
    assert client.list_run_groups(filter=mine).count == 2
    assert [group.run_ids for group in client.list_run_groups(filter=mine, archived=True).data] == [[created[(1, 0.0)]]]
    shown = tricklab("find", mine, "--archived", "any", "--server", server.url)
    assert shown.returncode == 0 and "3 of 3 runs" in shown.stderr
    bad = tricklab("find", "status = = 1", "--server", server.url)
    assert bad.returncode == 2 and "error: filter: column 10" in bad.stderr


def test_a_create_sent_again_with_its_key_returns_the_first_run(client, server):
    key = str(uuid.uuid4())
    config = tiny(server, "once")
    first = client.create_run(config, priority=-1000, idempotency_key=key)
    again = client.create_run(config, priority=-1000, idempotency_key=key)
    assert again.id == first.id
    assert client.create_run(config, priority=-1000).id != first.id  # a key of its own each time
    with pytest.raises(Invalid) as refused:
        client.create_run({**config, "epochs": 2}, priority=-1000, idempotency_key=key)
    assert refused.value.status == 422


def test_errors_name_what_is_wrong(client, server):
    with pytest.raises(Invalid) as invalid:
        client.create_run({**tiny(server, "bad"), "epochs": 0})
    assert list(invalid.value.fields) == ["config.epochs"] and "config.epochs" in str(invalid.value)
    with pytest.raises(Invalid) as unknown:
        client.create_run({"model": {"arch": "resnet18", "nope": 1}})
    assert "config.model.nope" in unknown.value.fields
    with pytest.raises(NotFound, match="run 999999 not found"):
        client.get_run(999999)
    with pytest.raises(NotFound):
        list(client.follow_run(999999))
    with pytest.raises(Invalid) as study:
        client.preview_study("no design", seeds=2)
    assert "preset" in study.value.fields


def test_studies_previews_workers_and_range_tests(client, server):
    overrides = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 1}
    overrides |= {"data.root": str(server.data_root), "data.num_workers": 0, "batch_size": 16}
    preview = client.preview_study("grid", grid={"cosine": True}, overrides=overrides, seeds=2)
    assert preview.runs == 4 and preview.new_runs + preview.reused_runs == 4
    study = client.create_study("grid", grid={"cosine": True}, overrides=overrides, seeds=2, priority=-1000)
    assert len(study.run_ids) == 4 and client.get_study(study.id).name == "grid"
    assert study.id in [listed.id for listed in client.list_studies().data]
    client.cancel_study(study.id)
    assert client.wait_for_study(study.id, timeout=120).progress["cancelled"] >= 1
    assert client.study_effects(study.id).not_estimable  # no run succeeded: nothing to fit

    workers = client.list_workers()
    assert workers.alive == 1 and workers.data[0].devices[0].kind == "cpu"
    test = client.create_lr_range_test(tiny(server, "range"), sweep={"steps": 5}, priority=-1000)
    assert client.get_lr_range_test(test.id).sweep["steps"] == 5
    client.cancel_run(test.id)
    assert client.health().status == "ok"


def test_a_queued_run_moves_in_the_queue(tmp_path, demo_dataset):
    # No worker: the runs stay queued for as long as the test needs.
    with serve(tmp_path, demo_dataset, workers=0) as idle, Client(idle.url, token="") as client:
        older, newer = (client.create_run(tiny(idle, name)) for name in ("older", "newer"))
        moved = client.update_run(newer.id, priority=3)
        assert (moved.id, moved.priority, moved.status) == (newer.id, 3, "queued")
        assert client.get_run(newer.id).priority == 3
        with pytest.raises(Invalid) as invalid:
            client.update_run(older.id, priority=1001)
        assert list(invalid.value.fields) == ["priority"]
        with pytest.raises(NotFound):
            client.update_run(999999, priority=1)
        client.cancel_run(older.id)
        with pytest.raises(Conflict, match="only a queued run's priority can change"):
            client.update_run(older.id, priority=1)


def test_runs_and_studies_are_organised_from_the_client_and_the_cli(tmp_path, demo_dataset):
    """Rename, notes, tags, archive and restore, through the client and through `tricklab runs` and
    `tricklab studies`, which speak through it; bad input comes back naming its field."""
    with serve(tmp_path, demo_dataset, workers=0) as idle, Client(idle.url, token="") as client:
        first, second = (client.create_run(tiny(idle, name)) for name in ("first", "second"))
        run = client.update_run(first.id, name="renamed", notes="**why**", add_tags=["keep", "lr"])
        assert (run.name, run.notes, run.tags, run.notes_html) == (
            "renamed",
            "**why**",
            ["keep", "lr"],
            "<p><strong>why</strong></p>\n",
        )
        assert run.updated_at is not None and run.updated_by is None
        assert client.update_run(first.id, remove_tags="lr").tags == ["keep"]
        with pytest.raises(Invalid) as invalid:
            client.update_run(first.id, add_tags=["Not A Tag"])
        assert list(invalid.value.fields) == ["add_tags.0"]
        with pytest.raises(Conflict, match="only a finished run can be archived"):
            client.update_run(first.id, archived=True)
        for run_id in (first.id, second.id):
            client.cancel_run(run_id)
        page = client.update_runs([first.id, second.id], add_tags=["ablation"], archived=True)
        assert [(r.id, r.tags) for r in page.data] == [(first.id, ["ablation", "keep"]), (second.id, ["ablation"])]
        assert client.list_runs().count == 0
        assert [r.id for r in client.list_runs(archived=True).data] == [second.id, first.id]

        env = {"TRICKLAB_SERVER": idle.url}
        restored = tricklab("runs", "restore", f"{first.id},{second.id}", env=env)
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout.splitlines() == [
            f"run {first.id} (renamed): ablation, keep",
            f"run {second.id} (second): ablation",
        ]
        assert client.list_runs().count == 2
        assert tricklab("runs", "rename", str(second.id), "from the CLI", env=env).returncode == 0
        assert tricklab("runs", "untag", str(second.id), "ablation", env=env).returncode == 0
        assert tricklab("runs", "note", str(second.id), "# Notes\n<script>x</script>", env=env).returncode == 0
        run = client.get_run(second.id)
        assert (run.name, run.tags, run.notes_html) == (
            "from the CLI",
            [],
            "<h1>Notes</h1>\n<p>&lt;script&gt;x&lt;/script&gt;</p>\n",
        )
        bad = tricklab("runs", "tag", str(second.id), "NO", env=env)
        assert bad.returncode == 2 and bad.stderr.startswith("error: add_tags.0: a tag is 1 to 32 of a-z")
        missing = tricklab("runs", "archive", "999999", env=env)
        assert missing.returncode == 1 and "run 999999 not found" in missing.stderr
        assert tricklab("runs", "tag", "1,x", "keep", env=env).returncode == 2  # argparse: a usage error

        overrides = {"model.arch": "resnet18", "model.pretrained": False, "batch_size": 16}
        overrides |= {"data.root": str(idle.data_root)}
        study = client.create_study("grid", grid={"cosine": True}, overrides=overrides)
        assert client.update_study(study.id, name="cosine or not").name == "cosine or not"
        renamed = tricklab("studies", "rename", str(study.id), "by the CLI", env=env)
        assert renamed.stdout == f"study {study.id} is now 'by the CLI'\n"
        deleted = tricklab("studies", "delete", str(study.id), env=env)
        assert deleted.stdout == f"deleted study {study.id} (by the CLI), with the runs it created\n"
        with pytest.raises(NotFound):
            client.get_run(study.run_ids[0])
        study = client.create_study("kept", grid={"cosine": True}, overrides=overrides)
        client.delete_study(study.id, keep_runs=True)
        assert client.get_run(study.run_ids[0]).study_id is None


def test_the_token_is_sent_from_the_environment_or_the_argument(tmp_path, demo_dataset, monkeypatch):
    settings = settings_for(tmp_path, demo_dataset)
    secret = tricklab("token", "create", "ci", env=settings.environ()).stdout.strip()
    env = {**os.environ, **settings.environ()}
    with serving(cwd=tmp_path, env=env, log=tmp_path / "server.log") as server:
        url = server.url
        with Client(url, token="") as anonymous, pytest.raises(Refused) as refused:
            anonymous.list_runs()
        assert refused.value.status == 401
        assert Client(url, token="").health().status == "ok"  # open without a token
        with Client(url, token="tlab_wrong") as wrong, pytest.raises(Refused, match="invalid or revoked"):
            wrong.list_runs()
        monkeypatch.setenv("TRICKLAB_TOKEN", secret)
        run = Client(url).create_run({"data": {"root": str(demo_dataset)}})
        assert run.created_by == "ci"
        assert Client(url, token=secret).get_run(run.id).created_by == "ci"


def test_reports_and_figures_come_as_the_api_writes_them(client, server):
    ids = add_finished_runs(
        server.database_url,
        [
            Finished("report base", {}, [(60.0, 80.0), (65.5, 85.0)]),
            Finished("report_ls & 100%", {"tricks.label_smoothing": 0.1}, [(61.0, 81.0), (66.125, 86.0)]),
        ],
    )
    rows = client.compare(ids).data
    markdown = client.compare_report(ids, "md")
    assert all(row.top1_text in markdown for row in rows) and "report\\_ls \\& 100%" in markdown
    latex = client.compare_report(ids, "tex", baseline=ids[0], mode="final")
    assert "\\toprule" in latex and "report\\_ls \\& 100\\%" in latex and "66.13 (+0.63p)" in latex
    assert client.compare_report(ids).startswith("<!doctype html>")
    png = client.compare_figure(ids, "valid_top1", "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    study = client.create_study(
        "report study", grid={"cosine": True}, overrides={**BASE, "epochs": 1, "data.root": str(server.data_root)}
    )
    client.cancel_study(study.id)
    assert f"Study #{study.id}: report study" in client.study_report(study.id)
    assert client.study_figure(study.id, "lr", "svg").startswith(b"<svg")
    with pytest.raises(NotFound, match="figure 'effects' not found"):
        client.study_figure(study.id, "effects")  # a grid of one seed has no effects to draw
    with pytest.raises(NotFound):
        client.study_report(9999, "tex")


def test_sweeps_are_started_read_paused_resumed_and_cancelled_from_the_client(client, server):
    base = {"data.root": str(server.data_root), "model.arch": "resnet18", "model.pretrained": False, "epochs": 1}
    with pytest.raises(Invalid) as invalid:
        client.create_sweep("typo", space={"optim.lrr": {"type": "choice", "values": [0.1]}}, base=base)
    assert invalid.value.fields == {"space.optim.lrr": "unknown key"}
    lr = {"optim.lr": {"type": "choice", "values": [1e-3, 1e-2]}}
    sweep = client.create_sweep("lr", space=lr, base=base, sampler={"name": "grid"}, priority=-1000)
    assert sweep.status == "running" and sweep.budget == 2
    assert client.pause_sweep(sweep.id).status == "paused"
    with pytest.raises(Conflict, match="only a running or confirming sweep can be paused"):
        client.pause_sweep(sweep.id)
    resumed = client.resume_sweep(sweep.id)
    assert resumed.status == "running" and resumed.paused_seconds > 0
    assert sweep.id in [listed.id for listed in client.list_sweeps().data]
    assert client.sweep_figures(sweep.id)["history"]["data"]
    assert f"Sweep #{sweep.id}: lr" in client.sweep_report(sweep.id)
    assert "No verdict yet" in client.sweep_report(sweep.id, "md")
    assert client.sweep_figure(sweep.id, "history", "svg").startswith(b"<svg")
    with pytest.raises(NotFound, match="this report has history"):
        client.sweep_figure(sweep.id, "importance")
    assert client.cancel_sweep(sweep.id).ended
    assert client.wait_for_sweep(sweep.id, timeout=10).status == "cancelled"
    assert {preset.key for preset in client.list_sweep_presets()} == {"mixup_report", "recipe_searched"}
