"""Debian's Chromium as the browser tests and the README's screenshot script start it, and what the
browser tests ask of the pages' charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Debian's headless build of Chromium (package chromium-headless-shell): the same Blink and V8 as its chromium
# package without the desktop browser around them, as Playwright runs headless pages by default. Measured on
# three browser test files: its processes used about 40 % less CPU than the full browser's.
CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# What each Plotly chart of a page offers: its config as Plotly took it, its modebar's buttons and its links.
CHART_OFFERS = """() => [...document.querySelectorAll('.js-plotly-plot')].map((chart) => ({
    id: chart.id,
    send_to_cloud: chart._context.showSendToCloud,
    server: chart._context.plotlyServerURL,
    file: chart._context.toImageButtonOptions?.filename ?? null,
    buttons: [...chart.querySelectorAll('.modebar-btn')].map((button) => button.getAttribute('data-title')),
    links: [...chart.querySelectorAll('a[href]')].map((link) => link.getAttribute('href')),
}))"""
CLOUD_WORDS = ("cloud", "share", "chart studio", "plotly")


def cloud_offers(page: Any) -> list[str]:
    """Every way a chart of ``page`` offers to send its data off the machine (Plotly's cloud, Chart Studio,
    a link to plotly.com); also a chart without a modebar, which hides what it would offer."""
    found = []
    for chart in page.evaluate(CHART_OFFERS):
        if chart["send_to_cloud"] or chart["server"]:
            found.append(f"{chart['id']}: showSendToCloud {chart['send_to_cloud']}, server {chart['server']!r}")
        if "Download plot as a PNG" not in chart["buttons"]:
            found.append(f"{chart['id']}: no camera button among {chart['buttons']}")
        offers = [*chart["buttons"], *chart["links"]]
        found += [f"{chart['id']}: {offer}" for offer in offers if any(w in offer.lower() for w in CLOUD_WORDS)]
    return found


def open_offline(page: Any, file: Path) -> list[str]:
    """``file`` opened from a file URL with every other request refused; the requests it tried."""
    tried: list[str] = []

    def only_files(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            tried.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_files)
    page.goto(file.as_uri())
    return tried
