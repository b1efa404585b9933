"""Run notes as HTML: Markdown drawn, nothing a user writes becomes markup, links go to http(s) only."""

import pytest

from backend.reports.notes import notes_html


def test_markdown_is_drawn_and_html_is_text():
    html = notes_html("# Why\n\n**cosine** `<b>`\n\n<div onclick=x>raw</div>\n\n<script>alert(1)</script>")
    assert "<h1>Why</h1>" in html and "<strong>cosine</strong>" in html and "<code>&lt;b&gt;</code>" in html
    assert "<div" not in html and "<script" not in html
    assert "&lt;div onclick=x&gt;raw&lt;/div&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert notes_html("") == ""


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](vbscript:msgbox)",
        "[x](/runs/1)",
        "[x](file:///etc/passwd)",
        "<javascript:alert(1)>",
        '[x](https://a.b "t" onmouseover=alert(1))',
    ],
)
def test_only_http_links_are_links(link):
    assert "<a " not in notes_html(link)


def test_http_links_and_images_as_text():
    html = notes_html('[the paper](https://arxiv.org/abs/1812.01187) <http://a.b/c?d="e"> ![plot](https://x/y.png)')
    assert '<a href="https://arxiv.org/abs/1812.01187">the paper</a>' in html
    assert '<a href="http://a.b/c?d=%22e%22">' in html
    assert "<img" not in html
