"""The compare page with a study's 12 runs and with 30, in Chromium at 800 and 1280 px: one legend for the
four charts, a colour per configuration whatever the URL's order, seeds grouped, charts that keep
their height; and one formatter and one peak epoch on the runs list, the run page and the compare page."""

from __future__ import annotations

from typing import Any

import pytest
from testlib.finished import BASE, Finished, add_finished_runs

WIDTHS = [800, 1280]
CHARTS = ("train_loss", "valid_top1", "valid_top5", "lr")
CONFIGS_OF_TWELVE: list[tuple[str, dict[str, Any]]] = [
    ("base", {}),
    ("+LS", {"tricks.label_smoothing": 0.1}),
    ("+Cosine", {"schedule.name": "cosine"}),
    ("+Cosine +LS", {"schedule.name": "cosine", "tricks.label_smoothing": 0.1}),
]


def curve(offset: float) -> list[tuple[float, float]]:
    return [(30.0 + offset + 8 * epoch, 60.0 + offset + 5 * epoch) for epoch in range(4)]


@pytest.fixture(scope="module")
def twelve(dashboard) -> list[int]:
    """A study's shape: 4 configurations x 3 seeds, seed-major as a study queues them."""
    runs = [
        Finished(f"twelve · {key} · seed {seed}", {**overrides, "seed": seed}, curve(index * 2 + seed - 1234))
        for seed in (1234, 1235, 1236)
        for index, (key, overrides) in enumerate(CONFIGS_OF_TWELVE)
    ]
    return add_finished_runs(dashboard.database_url, runs)


@pytest.fixture(scope="module")
def thirty(dashboard) -> list[int]:
    """30 configurations, one seed each: more than the palette's 24 colours."""
    runs = [Finished(f"thirty · lr {index + 1}", {"optim.lr": 1e-4 * (index + 1)}, curve(index)) for index in range(30)]
    return add_finished_runs(dashboard.database_url, runs)


def open_page(browser, width: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def open_compare(page, url: str, ids: list[int], traces: int) -> None:
    page.goto(f"{url}/compare?runs={','.join(map(str, ids))}")
    for field in CHARTS:
        page.wait_for_function(f"() => document.getElementById('chart-{field}').data?.length === {traces}")
    page.locator("#legend .legend-entry").first.wait_for()


def legend(page) -> list[dict[str, Any]]:
    return page.evaluate(
        """[...document.querySelectorAll('#legend .legend-entry')].map(b => ({
            group: b.dataset.group, label: b.querySelector('.legend-label').textContent,
            color: b.querySelector('.swatch').style.getPropertyValue('--swatch'),
            dash: [...b.querySelector('.swatch').classList].find(c => c.startsWith('swatch-')),
            pressed: b.getAttribute('aria-pressed')}))"""
    )


def visible_by_group(page, field: str) -> dict[str, set[Any]]:
    traces = page.evaluate(
        f"document.getElementById('chart-{field}').data.map(t => [t.legendgroup, t.visible ?? true, t.line.color])"
    )
    seen: dict[str, set[Any]] = {}
    for group, visible, _ in traces:
        seen.setdefault(group, set()).add(visible)
    return seen


def assert_readable(page, name: str, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} is {overflow} px wider than {width} px"
    hidden = page.evaluate("(w => w.scrollWidth - w.clientWidth)(document.querySelector('.table-wrap'))")
    assert hidden <= 0, f"{name}: {hidden} px of the table are scrolled out of view at {width} px"
    # Every legend entry says its whole name: none is cut short.
    cut = page.evaluate(
        "[...document.querySelectorAll('.legend-label')].filter(l => l.scrollWidth > l.clientWidth + 1).length"
    )
    assert cut == 0, f"{name}: {cut} legend labels cut short"
    boxes = page.evaluate(
        """['legend', ...['train_loss','valid_top1','valid_top5','lr'].map(f => 'chart-' + f)]
            .map(id => document.getElementById(id).getBoundingClientRect().toJSON())"""
    )
    legend_box, *charts = boxes
    # The charts keep their height whatever the number of runs, and no legend sits inside them.
    assert all(chart["height"] >= 280 for chart in charts), charts
    assert legend_box["bottom"] <= min(chart["top"] for chart in charts)
    plot_legends = page.evaluate(
        "['train_loss','valid_top1','valid_top5','lr']"
        ".map(f => document.getElementById('chart-' + f).layout.showlegend)"
    )
    assert plot_legends == [False] * 4


@pytest.mark.parametrize("width", WIDTHS)
def test_twelve_runs_one_legend_one_colour_per_configuration(browser, dashboard, twelve, tmp_path, width):
    page = open_page(browser, width)
    # Not in id order, and the plain configuration's runs not first.
    shuffled = [*twelve[1:], twelve[0]]
    open_compare(page, dashboard.url, shuffled, traces=12 + 4)  # 12 seeds, 4 means
    entries = legend(page)
    # The model every run shares is said once; each entry says what its configuration adds.
    assert [entry["label"] for entry in entries] == [f"{key} · 3 seeds" for key, _ in CONFIGS_OF_TWELVE]
    assert page.locator("#shared-tricks").text_content().startswith("Every run: ResNet18 from scratch;")
    assert len({(entry["color"], entry["dash"]) for entry in entries}) == 4
    # Every trace of a configuration has its colour, in all four charts.
    colour_of = {entry["group"]: entry["color"] for entry in entries}
    for field in CHARTS:
        traces = page.evaluate(f"document.getElementById('chart-{field}').data.map(t => [t.legendgroup, t.line.color])")
        assert all(colour_of[group].lower() == colour.lower() for group, colour in traces), field
    # The default baseline is the plain configuration's oldest run, not the first id in the URL.
    baseline = page.locator("#compare-table tr.baseline")
    assert baseline.get_attribute("data-run-id") == str(twelve[0])
    assert page.locator("#baseline").input_value() == str(twelve[0])
    assert_readable(page, "compare with 12 runs", width)
    page.screenshot(path=tmp_path / f"compare-12-{width}.png", full_page=True)

    # One press hides a configuration in all four charts; another shows it again.
    hidden = entries[1]["group"]
    page.locator(f'#legend .legend-entry[data-group="{hidden}"]').click()
    for field in CHARTS:
        assert visible_by_group(page, field)[hidden] == {False}, field
        assert all(shown == {True} for group, shown in visible_by_group(page, field).items() if group != hidden)
    assert legend(page)[1]["pressed"] == "false"
    page.locator(f'#legend .legend-entry[data-group="{hidden}"]').click()
    assert all(visible_by_group(page, field)[hidden] == {True} for field in CHARTS)

    # Another order of the same ids: the same colours.
    open_compare(page, dashboard.url, list(reversed(twelve)), traces=16)
    assert {entry["group"]: entry["color"] for entry in legend(page)} == colour_of
    assert not page.errors
    page.context.close()


@pytest.fixture(scope="module")
def repeats(dashboard) -> list[int]:
    """Runs that repeat a seed: the base twice on seed 7, +LS on seeds 7 and 8, +Cosine on 7, 8 and 7 again."""
    plan = [(key, overrides, seed) for key, overrides, seeds in REPEATS for seed in seeds]
    runs = [
        Finished(f"repeats · {key} · seed {seed}", {**overrides, "seed": seed}, curve(i))
        for i, (key, overrides, seed) in enumerate(plan)
    ]
    return add_finished_runs(dashboard.database_url, runs)


REPEATS: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("base", {}, (7, 7)),
    ("+LS", {"tricks.label_smoothing": 0.1}, (7, 8)),
    ("+Cosine", {"schedule.name": "cosine"}, (7, 8, 7)),
]


def test_runs_that_repeat_a_seed_are_called_repeats_not_seeds(browser, dashboard, repeats):
    page = open_page(browser, 1280)
    open_compare(page, dashboard.url, repeats, traces=7 + 3)  # every run, and a mean per configuration
    labels = ["base · 2 runs of seed 7 (repeats)", "+LS · 2 seeds", "+Cosine · 3 runs: 2 seeds and a repeat"]
    assert [entry["label"] for entry in legend(page)] == labels
    # The mean line says what it is the mean of.
    means = page.evaluate(
        "document.getElementById('chart-valid_top1').data.map(t => t.name).filter(n => n.endsWith(': mean'))"
    )
    assert means == [f"{label}: mean" for label in labels]
    assert not page.errors
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_thirty_runs_stay_readable_and_apart(browser, dashboard, thirty, tmp_path, width):
    page = open_page(browser, width)
    open_compare(page, dashboard.url, thirty, traces=30)
    entries = legend(page)
    assert len(entries) == 30
    # 24 colours, then the palette again with a dash: 30 looks, no two alike.
    assert len({(entry["color"], entry["dash"]) for entry in entries}) == 30
    assert len({entry["color"] for entry in entries}) == 24
    assert page.locator("#compare-table tbody tr").count() == 30
    font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.legend-entry')).fontSize)")
    assert font >= 12
    assert_readable(page, "compare with 30 runs", width)
    page.screenshot(path=tmp_path / f"compare-30-{width}.png", full_page=True)
    assert not page.errors
    page.context.close()


def test_one_value_reads_the_same_on_every_page(browser, dashboard, tmp_path):
    """65.625 is "65.62" to Python's format and "65.63" to toFixed: every page says 65.63. Two epochs
    are named, each by one word on every page: the peak (the highest valid top-1, epoch 2) and the
    checkpoint (the lowest valid loss, epoch 3: add_finished_runs' losses fall every epoch), whose test
    figures are shown. A delta is the unrounded difference rounded once: 87.5 against 84.375 is +3.13."""
    run_id, base_id = add_finished_runs(
        dashboard.database_url,
        [
            Finished("exact tie", {}, [(60.0, 80.0), (65.625, 87.5), (65.0, 91.25)], test=(64.375, 88.125)),
            Finished("delta base", {}, [(84.375, 87.5)]),
        ],
    )
    page = open_page(browser, 1280)
    page.goto(f"{dashboard.url}/")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    row.wait_for()
    headers = [" ".join(text.split()) for text in page.locator("#runs-table thead th").all_inner_texts()]
    assert "Peak valid top-1 / top-5 (peak epoch)" in headers
    assert "Test top-1 / top-5 (checkpoint epoch)" in headers
    assert not [text for text in headers if "best" in text.lower()]
    cells = row.locator("td")
    assert cells.nth(3).text_content() == "65.63 / 87.50 (epoch 2)"  # top-5 of that epoch, not the maximum 91.25
    assert cells.nth(4).text_content() == "64.38 / 88.13 (epoch 3)"

    page.goto(f"{dashboard.url}/runs/{run_id}")
    page.wait_for_function("() => document.getElementById('run-peak').textContent.includes('65.63')")
    labels = [" ".join(text.split()) for text in page.locator("dl.facts dt").all_inner_texts()]
    assert "Peak valid top-1 / top-5 (peak epoch)" in labels and "Test top-1 / top-5 (checkpoint epoch)" in labels
    assert not [text for text in labels if "best" in text.lower()]
    assert page.locator("#run-peak").text_content() == "65.63 / 87.50 (epoch 2)"
    assert page.locator("#run-test").text_content() == "64.38 / 88.13 (epoch 3)"
    page.wait_for_function("() => document.getElementById('chart-lr').layout?.title?.text?.includes('layer4')")
    assert (
        page.evaluate("document.getElementById('chart-lr').layout.title.text")
        == "Learning rate of layer4 and fc (lr/2)"
    )
    assert page.locator("#run-outcome").text_content() == "Finished all 3 epochs."

    page.goto(f"{dashboard.url}/compare?runs={run_id},{base_id}&baseline={base_id}")
    compare_row = page.locator(f"#compare-table tr[data-run-id='{run_id}']")
    compare_row.wait_for()
    assert [compare_row.locator("td").nth(i).text_content() for i in (2, 3, 5)] == [
        "2",
        "65.63 (−18.75p)",
        "64.38 / 88.13 (epoch 3)",
    ]
    assert page.get_by_label("peak epoch (highest valid top-1)").is_checked()
    assert "Peak epoch:" in page.locator("#compare-caption").get_attribute("title")
    for words in ("#compare-controls", "#compare-table caption", "#compare-table thead"):
        assert "best" not in page.locator(words).text_content().lower(), words
    assert (
        page.evaluate("document.getElementById('chart-lr').layout.title.text")
        == "Learning rate of layer4 and fc (lr/2)"
    )
    # The same pair the other way round: 87.5 against 84.375, the study page's +3.13, not 87.50 - 84.38.
    (ahead,) = add_finished_runs(dashboard.database_url, [Finished("delta ahead", {}, [(87.5, 90.0)])])
    page.goto(f"{dashboard.url}/compare?runs={ahead},{base_id}&baseline={base_id}")
    ahead_row = page.locator(f"#compare-table tr[data-run-id='{ahead}']")
    ahead_row.wait_for()
    assert ahead_row.locator("td").nth(3).text_content() == "87.50 (+3.13p)"
    assert ahead_row.locator("td").nth(4).text_content() == "90.00 (+2.50p)"
    page.screenshot(path=tmp_path / "numbers.png", full_page=True)
    assert not page.errors
    page.context.close()


def test_the_study_page_writes_a_delta_as_the_compare_page_does(browser, dashboard):
    """87.5 against 84.375 is +3.13p in the study table as in the comparison of the same two runs: the
    study reuses two finished runs identical to its groups (so nothing trains)."""
    shape = {**BASE, "epochs": 1, "data.root": str(dashboard.data_root)}
    base_id, smoothed_id = add_finished_runs(
        dashboard.database_url,
        [
            Finished("study base", shape, [(84.375, 90.0)]),
            Finished("study +LS", {**shape, "tricks.label_smoothing": 0.1}, [(87.5, 92.5)]),
        ],
    )
    study = dashboard.post_study(
        {"name": "one delta", "grid": {"switches": {"label_smoothing": [0, 0.1]}}, "overrides": shape}
    )
    assert study["finished"] and study["progress"]["reused"] == 2, study["progress"]

    page = open_page(browser, 1280)
    page.goto(f"{dashboard.url}/studies/{study['id']}")
    deltas = page.locator("tr[data-group='+LS'] td[data-verdict]")
    deltas.first.wait_for()
    assert deltas.nth(0).text_content().startswith("+3.13p")
    assert deltas.nth(1).text_content().startswith("+2.50p")

    page.goto(f"{dashboard.url}/compare?runs={base_id},{smoothed_id}&baseline={base_id}")
    row = page.locator(f"#compare-table tr[data-run-id='{smoothed_id}']")
    row.wait_for()
    assert row.locator("td").nth(3).text_content() == "87.50 (+3.13p)"
    assert not page.errors
    page.context.close()
