"""A sweep's verdict names a winner only where Welch's interval of its difference to the runner-up excludes 0."""

from __future__ import annotations

from backend.reports.sweep_verdict import Candidate, verdict


def test_a_winner_beyond_noise_is_named():
    best = Candidate(3, {"tricks.mixup_alpha": 0.01}, [80.1, 80.4, 79.9])
    runner_up = Candidate(1, {"tricks.mixup_alpha": 0.2}, [75.2, 75.0, 75.5])
    found = verdict([runner_up, best], direction="maximize")
    assert found["winner"] == 3
    said = "#3 (tricks.mixup_alpha=0.01) beats #1 (tricks.mixup_alpha=0.2) beyond noise (+4.9p ["
    assert found["text"].startswith(said)
    assert [row["number"] for row in found["rows"]] == [3, 1]
    assert found["rows"][0]["against"] == 1 and found["rows"][0]["low"] > 0
    assert found["rows"][1]["delta"] < 0 and found["rows"][1]["against"] == 3


def test_a_difference_within_noise_names_none():
    best = Candidate(0, {"optim.lr": 0.001}, [80.0, 78.0, 82.5])
    runner_up = Candidate(2, {"optim.lr": 0.003}, [79.0, 81.0, 79.6])
    found = verdict([best, runner_up], direction="maximize")
    assert found["winner"] is None
    said = "no configuration beats #2 (optim.lr=0.003) beyond noise (#0 (optim.lr=0.001): +0.3p ["
    assert found["text"].startswith(said)


def test_a_loss_is_beaten_by_a_lower_one():
    lower = Candidate(5, {}, [0.50, 0.52, 0.51])
    higher = Candidate(4, {}, [0.90, 0.91, 0.92])
    found = verdict([higher, lower], direction="minimize")
    assert found["winner"] == 5 and found["rows"][0]["high"] < 0


def test_one_seed_or_one_configuration_names_none():
    one_seed = verdict([Candidate(0, {}, [80.0]), Candidate(1, {}, [70.0])], direction="maximize")
    assert one_seed["winner"] is None and "1 seed: no interval" in one_seed["text"]
    alone = verdict([Candidate(0, {}, [80.0, 81.0])], direction="maximize")
    assert alone["winner"] is None and "nothing to beat" in alone["text"]
