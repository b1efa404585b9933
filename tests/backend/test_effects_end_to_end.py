"""GET /api/v1/studies/{id}/effects on the tiny grid study trained end to end by real workers (cosine x kd,
2 seeds), checked against numpy least squares on the table's own numbers."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from scipy import stats as scipy_stats
from testlib.studies import TINY_SEEDS

# The grid's cells by group key: cosine and kd coded -1/+1.
CELLS = {"base": (-1, -1), "+KD": (-1, 1), "+Cosine": (1, -1), "+Cosine +KD": (1, 1)}


def format_effects(effects: dict) -> str:
    lines = [f"{effects['model']}, residual df {effects['residual_df']}"]
    lines += [f"{'effect':<14} {'estimate':>9} {'95% CI':>18} {'p':>7} {'Holm p':>7}"]
    for row in effects["data"]:
        interval = "–" if row["ci_low"] is None else f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
        p, holm = (f"{row[k]:.3f}" if row[k] is not None else "–" for k in ("p_value", "p_holm"))
        lines.append(f"{row['label']:<14} {row['estimate']:>+9.2f} {interval:>18} {p:>7} {holm:>7}")
    return "\n".join([*lines, effects["sentence"]])


@pytest.mark.parametrize("metric", ["valid", "test"])
def test_the_tiny_grid_studys_effects_match_least_squares_on_its_table(study_server, tiny_study, metric):
    study_id = tiny_study["id"]
    effects = study_server.get(f"/studies/{study_id}/effects", metric=metric)
    print(f"\n{metric}:\n{format_effects(effects)}")
    table = {row["group"]: row for row in study_server.get(f"/studies/{study_id}/table", metric=metric)["data"]}
    rows, y = [], []
    for key, (cosine, kd) in CELLS.items():
        assert table[key]["top1"]["n"] == TINY_SEEDS
        for value in table[key]["top1"]["values"]:
            rows.append([1.0, cosine, kd, cosine * kd])
            y.append(value)
    x = np.array(rows)
    beta, *_ = np.linalg.lstsq(x, np.array(y), rcond=None)
    assert effects["metric"] == metric and effects["residual_df"] == len(y) - 4 == 4
    assert [row["effect"] for row in effects["data"]] == ["cosine", "kd", "cosine × kd"]
    assert [row["estimate"] for row in effects["data"]] == pytest.approx(2 * beta[1:], abs=1e-9)
    assert effects["not_estimable"] == [] and effects["missing_cells"] == []
    rss = float(np.sum((np.array(y) - x @ beta) ** 2))
    if rss < 1e-12:
        # Every pair of seeds agreed exactly (a tiny validation set has few distinct accuracies).
        assert all(row["ci_low"] is None for row in effects["data"]) and "no spread" in effects["sentence"]
        return
    se = np.sqrt(rss / 4 / len(y))  # (X'X) is 8 I for this balanced design
    p = 2 * scipy_stats.t.sf(np.abs(beta[1:] / se), 4)
    assert [row["p_value"] for row in effects["data"]] == pytest.approx(p, rel=1e-6)
    half = scipy_stats.t.ppf(0.975, 4) * 2 * se
    assert [row["ci_high"] - row["ci_low"] for row in effects["data"]] == pytest.approx([2 * half] * 3, rel=1e-9)
    assert effects["sentence"].startswith(f"cosine {effects['data'][0]['estimate']:+.2f}".replace("-", "−"))


def test_effects_of_a_missing_study_and_a_bad_metric_are_404_and_422(study_server, tiny_study):
    assert httpx.get(f"{study_server.url}/api/v1/studies/999999/effects", timeout=30).status_code == 404
    answer = httpx.get(f"{study_server.url}/api/v1/studies/{tiny_study['id']}/effects?metric=train", timeout=30)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "metric"]
