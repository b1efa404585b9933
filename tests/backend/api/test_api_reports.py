"""Reports over the API, in-process on a real database: the Markdown and LaTeX tables carry the numbers
the API's table says, hostile names are escaped, the HTML file holds everything it needs and names
where its runs came from, and the figures are real SVG and PNG images drawn by kaleido in Chromium."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ElementTree

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from testlib.processes import LOOPBACK
from testlib.worked import SOFTWARE, grid_study, runs_named

from backend.app import create_app
from backend.reports.document import PLOTLY_BUNDLE
from backend.reports.text_table import latex_escape, markdown_escape

HOSTILE = r"50% of $x_1$ & {#1} ~^ \end{tabular} [1cm] *x | <b>a</b> `c`"
# An SVG that \includegraphics workflows (svg package, Inkscape, rsvg-convert) take without trouble.
SVG_LIMIT_BYTES = 150_000


@pytest.fixture
def client(make_settings, database_url):
    with TestClient(create_app(make_settings(database_url)), base_url=LOOPBACK) as client:
        yield client


def markdown_rows(text: str) -> list[list[str]]:
    """The table's rows split at the pipes Markdown reads as cell borders (not the escaped ones)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in rows]


def latex_rows(text: str) -> list[list[str]]:
    body = text.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    # A cell's own & is escaped (\&): only a bare one separates cells.
    return [[cell.strip() for cell in re.split(r"(?<!\\)&", line.removesuffix(" \\\\"))] for line in body.splitlines()]


@pytest.mark.parametrize("metric", ["valid", "test"])
def test_the_study_tables_carry_the_apis_numbers(client, data_root, metric):
    study = grid_study(client, data_root, "grid study")
    table = client.get(f"/api/v1/studies/{study['id']}/table", params={"metric": metric}).json()
    expected = [
        [row["top1"]["text"], row["top1"]["delta_text"], row["top5"]["text"], row["top5"]["delta_text"]]
        for row in table["data"]
    ]
    assert any("[" in texts[1] and "p=" in texts[1] for texts in expected)  # intervals and p-values are there

    markdown = client.get(f"/api/v1/studies/{study['id']}/report.md", params={"metric": metric})
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"] == f'attachment; filename="study-{study["id"]}-grid-study.md"'
    header, *rows = markdown_rows(markdown.text)
    assert header[3:7] == ["Top-1", "Δ top-1 \\[95 % CI\\]", "Top-5", "Δ top-5 \\[95 % CI\\]"]
    assert [row[3:7] for row in rows] == [[markdown_escape(text) for text in texts] for texts in expected]

    latex = client.get(f"/api/v1/studies/{study['id']}/report.tex", params={"metric": metric})
    assert latex.status_code == 200, latex.text
    assert latex.headers["content-disposition"] == f'attachment; filename="study-{study["id"]}-grid-study.tex"'
    assert "\\toprule" in latex.text and "\\bottomrule" in latex.text
    assert [row[3:7] for row in latex_rows(latex.text)] == [
        [latex_escape(text) for text in texts] for texts in expected
    ]


def test_the_compare_tables_carry_the_apis_numbers_and_escape_hostile_names(client, data_root):
    ids = runs_named(client, data_root, ["plain", HOSTILE, "third | run"])
    query = {"run_ids": ",".join(map(str, ids)), "mode": "final"}
    table = client.get("/api/v1/compare", params=query).json()

    markdown = client.get("/api/v1/compare/report.md", params=query)
    assert markdown.status_code == 200, markdown.text
    header, *rows = markdown_rows(markdown.text)
    assert len(header) == 7 and all(len(row) == 7 for row in rows)  # no name adds a cell
    assert [row[4:6] for row in rows] == [[row["top1_text"], row["top5_text"]] for row in table["data"]]
    assert rows[1][0] == markdown_escape(f"{HOSTILE} (#{ids[1]})")
    assert not re.search(r"(?<!\\)[<>$*_`\[]", rows[1][0])  # every special character escaped

    latex = client.get("/api/v1/compare/report.tex", params=query)
    assert latex.status_code == 200, latex.text
    cells = latex_rows(latex.text)
    assert all(len(row) == 7 for row in cells)
    assert [row[4:6] for row in cells] == [
        [latex_escape(row["top1_text"]), latex_escape(row["top5_text"])] for row in table["data"]
    ]
    assert cells[1][0] == latex_escape(f"{HOSTILE} (#{ids[1]})")
    assert "\\end{tabular} [1cm]" not in latex.text and "{[}1cm{]}" in latex.text


def test_the_html_report_holds_plotly_once_and_everything_else_inline(client, data_root):
    study = grid_study(client, data_root, "</script><script>alert(1)</script>")
    answer = client.get(f"/api/v1/studies/{study['id']}/report.html")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        answer.headers["content-disposition"]
        == f'attachment; filename="study-{study["id"]}-script-script-alert-1-script.html"'
    )
    html = answer.text
    bundle = PLOTLY_BUNDLE.read_text(encoding="utf-8")
    assert html.count(bundle[:200]) == 1  # inlined once, whole
    assert bundle in html
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing to fetch
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Where each run came from: the versions and devices the worker recorded, the dataset and split.
    assert html.count(SOFTWARE) == 8 and html.count("1 × H200") == 8
    assert f"<code>{data_root}</code>" in html and "seed (validation 0.1 of train" in html
    # Each configuration's differences from the baseline, and the effects chart's sentence.
    assert "<code>schedule.name</code></td><td><code>onecycle</code></td><td><code>cosine</code>" in html
    effects = client.get(f"/api/v1/studies/{study['id']}/effects").json()
    assert f'<p id="effects-sentence">{escape(effects["sentence"])}</p>' in html


def test_report_requests_that_name_nothing_are_404_and_bad_ones_422(client, data_root):
    ids = runs_named(client, data_root, ["one", "two"])
    run_ids = ",".join(map(str, ids))
    assert client.get("/api/v1/studies/999/report.html").status_code == 404
    assert client.get("/api/v1/compare/report.md", params={"run_ids": "9998,9999"}).status_code == 404
    unknown = client.get("/api/v1/compare/report.md", params={"runs": run_ids})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "runs"]
    kind = client.get("/api/v1/compare/report.pdf", params={"run_ids": run_ids})
    assert kind.status_code == 422 and kind.json()["detail"][0]["loc"] == ["path", "kind"]
    baseline = client.get("/api/v1/compare/report.tex", params={"run_ids": run_ids, "baseline": 9999})
    assert baseline.status_code == 422 and baseline.json()["detail"][0]["loc"] == ["query", "baseline"]
    figure = client.get("/api/v1/compare/figures/accuracy.svg", params={"run_ids": run_ids})
    assert figure.status_code == 422 and figure.json()["detail"][0]["loc"] == ["path", "name"]
    image = client.get("/api/v1/compare/figures/lr.jpg", params={"run_ids": run_ids})
    assert image.status_code == 422 and image.json()["detail"][0]["loc"] == ["path", "image_format"]
    # A comparison has no effects chart: named, not drawn.
    effects = client.get("/api/v1/compare/figures/effects.svg", params={"run_ids": run_ids})
    assert effects.status_code == 404 and "train_loss, valid_top1, valid_top5, lr" in effects.json()["detail"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.timeout(180)
def test_figures_are_real_svg_and_png_images(make_settings, sqlite_url, data_root):
    with TestClient(create_app(make_settings(sqlite_url)), base_url=LOOPBACK) as client:
        study = grid_study(client, data_root, "figures")
        svg = client.get(f"/api/v1/studies/{study['id']}/figures/valid_top1.svg")
        assert svg.status_code == 200, svg.text
        assert svg.headers["content-type"] == "image/svg+xml"
        assert (
            svg.headers["content-disposition"] == f'attachment; filename="study-{study["id"]}-figures-valid_top1.svg"'
        )
        root = ElementTree.fromstring(svg.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("width") == "640"
        assert len(svg.content) < SVG_LIMIT_BYTES
        text = svg.content.decode()
        assert "Valid top-1 (%)" in text and "+Cosine +LS" in text  # its title and its legend
        assert "mathjax" not in text.lower()

        ids = [run["run_id"] for group in study["groups"] for run in group["runs"]]
        png = client.get("/api/v1/compare/figures/lr.png", params={"run_ids": ",".join(map(str, ids))})
        assert png.status_code == 200, png.text
        assert png.headers["content-type"] == "image/png"
        assert png_size(png.content) == (1280, 800)
        effects = client.get(f"/api/v1/studies/{study['id']}/figures/effects.png")
        assert effects.status_code == 200, effects.text
        assert png_size(effects.content)[0] == 1280


def test_without_a_browser_a_figure_is_a_503_that_says_so(client, data_root, monkeypatch):
    ids = runs_named(client, data_root, ["one"])
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    answer = client.get("/api/v1/compare/figures/valid_top1.svg", params={"run_ids": str(ids[0])})
    assert answer.status_code == 503
    assert "needs Chromium" in answer.json()["detail"] and "/nonexistent/chromium" in answer.json()["detail"]
    monkeypatch.setenv("BROWSER_PATH", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    answer = client.get("/api/v1/compare/figures/valid_top1.svg", params={"run_ids": str(ids[0])})
    assert answer.status_code == 503 and "apt-get install chromium-headless-shell" in answer.json()["detail"]
