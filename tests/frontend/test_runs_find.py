"""The runs list finds runs: the filter box (the API's language), sorting by a column header,
grouping the seeds of a configuration, and all of it kept in the address and read back from it."""

from __future__ import annotations

from urllib.parse import parse_qs

from playwright.sync_api import expect


def shown(page) -> list[int]:
    return [int(row.get_attribute("data-run-id")) for row in page.locator("#runs-table tbody tr[data-run-id]").all()]


def address(page) -> dict[str, list[str]]:
    return parse_qs(page.evaluate("location.search").removeprefix("?"))


def test_filter_sort_and_group_live_in_the_address(page, dashboard, finished_runs):
    base, smoothed = (run["id"] for run in finished_runs)
    mine = f"(id = {base} or id = {smoothed})"
    page.goto(f"{dashboard.url}/?filter=config.tricks.label_smoothing > 0 and {mine}")
    expect(page.locator(f'#runs-table tr[data-run-id="{smoothed}"]')).to_be_visible()
    assert shown(page) == [smoothed]
    # The markup name is text, as everywhere.
    expect(page.locator(f'#runs-table tr[data-run-id="{smoothed}"] td').nth(1)).to_contain_text("<script>")

    box = page.locator("#filter-text")
    assert box.input_value() == f"config.tricks.label_smoothing > 0 and {mine}"
    box.fill("peak.valid_top1 >")
    box.press("Enter")
    error = page.locator("#filter-text-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("ends too soon")
    assert box.get_attribute("aria-invalid") == "true"

    box.fill(f'{mine} and name ilike "TINY%"')
    box.press("Enter")
    expect(error).to_be_hidden()
    expect(page.locator("#runs-table tbody tr[data-run-id]")).to_have_count(1)
    assert shown(page) == [base]
    assert address(page)["filter"] == [f'{mine} and name ilike "TINY%"']

    box.fill(mine)
    box.press("Enter")
    expect(page.locator("#runs-table tbody tr[data-run-id]")).to_have_count(2)
    header = page.locator('#runs-table th[data-sort="id"]')
    header.locator("button").click()  # newest first already: a click turns it
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert address(page)["sort"] == ["id"]
    expect(page.locator("#runs-table tbody tr[data-run-id]").first).to_have_attribute("data-run-id", str(base))
    header.locator("button").click()
    expect(page.locator("#runs-table tbody tr[data-run-id]").first).to_have_attribute("data-run-id", str(smoothed))
    assert "sort" not in address(page)  # newest first is the default, left out

    page.locator('#runs-table th[data-sort="name"] button').click()
    assert address(page)["sort"] == ["name"]
    page.locator("#filter-group").check()
    groups = page.locator("#groups-table tbody tr[data-configuration]")
    expect(groups).to_have_count(2)  # the two runs differ in more than the seed
    assert address(page)["group"] == ["seeds"]
    expect(page.locator("#runs-table")).to_be_hidden()

    # The address alone brings the same view back.
    page.reload()
    expect(groups).to_have_count(2)
    assert page.locator("#filter-group").is_checked() and box.input_value() == mine
    expect(page.locator('#groups-table th[data-sort="name"]')).to_have_attribute("aria-sort", "ascending")
    # Shown (the archive) joins the filter, the grouping and the address; neither run is archived.
    page.locator("#filter-archived").select_option("true")
    expect(groups).to_have_count(0)
    assert address(page)["archived"] == ["true"]
    page.locator("#filter-group").uncheck()
    expect(page.locator("#runs-table tbody td.empty")).to_have_text("No run matches the filter.")
    csv = page.locator("#runs-epochs-csv").get_attribute("href") or ""
    assert parse_qs(csv.partition("?")[2]) == {"filter": [mine], "archived": ["true"]}
    page.locator("#filter-archived").select_option("any")
    expect(page.locator("#runs-table tbody tr[data-run-id]")).to_have_count(2)
    page.reload()
    expect(page.locator("#runs-table tbody tr[data-run-id]")).to_have_count(2)
    assert page.locator("#filter-archived").input_value() == "any"
    assert page.errors == [] or all("Failed to load resource" in error for error in page.errors)
