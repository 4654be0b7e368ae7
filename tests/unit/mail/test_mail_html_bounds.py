"""Bounded work on hostile HTML: nesting bombs, huge bodies, the depth model, the
linear text rendering. No timings are asserted; the fallback path is."""

from __future__ import annotations

import random

import nh3
import pytest

from postroom.mail.htmlscan import (
    END,
    MAX_HTML_CHARS,
    MAX_HTML_DEPTH,
    START,
    VOID,
    html_as_text,
    html_limit_problem,
    nesting_depth,
    tokens,
)
from postroom.mail.parse import parse_message
from postroom.mail.quotes import html_to_text, strip_html_quotes
from postroom.mail.sanitize import sanitize_html


def html_message(html: str, text: str | None = None) -> bytes:
    head = "From: a@example.com\r\nTo: b@example.org\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n"
    html_part = f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    if text is None:
        return (head + html_part).encode()
    return (
        head + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--b\r\n{html_part}--b--\r\n"
    ).encode()


def depth_defects(defects: tuple[str, ...]) -> list[str]:
    return [d for d in defects if "nested deeper" in d or "larger than" in d]


# --- the bomb from the report and its relatives ----------------------------------


def test_hundred_thousand_nested_divs_parse_as_text() -> None:
    bomb = "<div>" * 100_000 + "Please refund order 42" + "</div>" * 100_000
    parsed = parse_message(html_message(bomb))
    assert parsed.html is None
    assert parsed.text == "Please refund order 42"
    assert parsed.reply_text == "Please refund order 42"
    [defect] = depth_defects(parsed.defects)
    assert f"nested deeper than {MAX_HTML_DEPTH}" in defect and "shown as plain text" in defect


def test_bomb_with_a_text_alternative_shows_the_text_part() -> None:
    bomb = "<div>" * 50_000 + "html words"
    parsed = parse_message(html_message(bomb, text="The plain words."))
    assert parsed.html is None
    assert parsed.text == "The plain words."
    [defect] = depth_defects(parsed.defects)
    assert "the text part is shown" in defect


def test_five_megabytes_of_nested_tags_take_the_fallback() -> None:
    chunk = "<div><span><b>word</b> "
    bomb = chunk * (5_000_000 // len(chunk))
    assert len(bomb) > MAX_HTML_CHARS
    parsed = parse_message(html_message(bomb))
    assert parsed.html is None
    assert parsed.text.startswith("word\nword\nword\n")
    assert set(parsed.text.split()) == {"word"}
    assert any("larger than" in d for d in parsed.defects)


def test_large_flat_html_over_the_size_cap_is_text_not_markup() -> None:
    row = "<p>Line with <a href='https://example.com/'>a link</a> &amp; an entity</p>\n"
    html = row * (MAX_HTML_CHARS // len(row) + 10)
    parsed = parse_message(html_message(html))
    assert parsed.html is None
    assert parsed.text.split("\n\n")[0] == "Line with a link & an entity"
    assert "<" not in parsed.text


@pytest.mark.parametrize(
    "bomb",
    [
        "<table><tr><td>" * 2_000 + "cell text",
        "<ul><li>" * 3_000 + "item text",
        "<ol><li><ul><li>" * 1_000 + "item text",
        "<blockquote>" * 5_000 + "quoted text",
        "<b><i>" * 20_000 + "formatted text",  # never closed: html5ever nests them all
        "<font><span><em>" * 5_000 + "formatted text",
        "<div><b></div>" * 5_000 + "reopened text",  # html5ever re-opens each <b>
        "<p><b id=x>" * 5_000 + "reopened text",
        "<b><div></b>" * 5_000 + "adopted text",  # the adoption agency keeps the divs
        "<div><table><tr><td></div>" * 2_000 + "cell text",  # </div> cannot leave a cell
        "</form><form><em>" * 5_000 + "form text",  # </form> leaves its content open
        "<template><col><style></template><strike>" * 5_000 + "style text",
        "<svg>" + "<g>" * 5_000 + "</svg>svg text",
    ],
)
def test_nesting_bombs_of_every_shape_fall_back(bomb: str) -> None:
    assert nesting_depth(bomb) > MAX_HTML_DEPTH
    parsed = parse_message(html_message(bomb))
    assert parsed.html is None
    assert depth_defects(parsed.defects)
    assert "<" not in parsed.text


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 200 + "deep but real" + "</div>" * 200,
        "<table><tr><td>" * 40 + "newsletter cell",
        "<blockquote type=cite>" * 60 + "a long reply chain",
        "<p>unclosed paragraph " * 3_000,
        "<ul>" + "<li>unclosed item" * 3_000 + "</ul>",
        "<table>" + "<tr><td>a<td>b" * 2_000 + "</table>",
        "<p><font face=Arial>sloppy</p></font>" * 300,
    ],
)
def test_real_mail_shapes_keep_the_rich_path(html: str) -> None:
    assert html_limit_problem(html) is None
    parsed = parse_message(html_message(html))
    assert parsed.html is not None
    assert not depth_defects(parsed.defects)


def test_html_to_text_keeps_text_below_libxml2s_default_depth_limit() -> None:
    # libxml2 stops at 255 levels unless told otherwise, dropping the rest.
    html = "<div>" * 400 + "deep text" + "</div>" * 400 + "<p>after</p>"
    text = html_to_text(html)
    assert "deep text" in text and "after" in text


@pytest.mark.parametrize(
    "call", [html_to_text, strip_html_quotes, lambda h: sanitize_html(h, cid_url=None)]
)
def test_public_html_functions_are_bounded_on_their_own(call: object) -> None:
    bomb = "<div>" * 100_000 + "inner <script>x</script>"
    assert callable(call)
    out = call(bomb)
    assert isinstance(out, str) and "inner" in out and "script" not in out


def test_sanitize_beyond_the_bounds_returns_escaped_text() -> None:
    out = sanitize_html("<div>" * 1_000 + "<b>a &lt;tag&gt;</b><img src=http://t/x>", cid_url=None)
    assert out == '<div style="white-space: pre-wrap">a &lt;tag&gt;</div>'


# --- the depth model never counts less than html5ever ---------------------------

_SOUP_TAGS = [
    "div", "p", "b", "i", "a", "span", "table", "tr", "td", "th", "tbody", "li", "ul", "ol",
    "dl", "dt", "dd", "blockquote", "font", "h1", "pre", "form", "button", "select", "option",
    "caption", "em", "strong", "u", "s", "nobr", "center", "section", "br", "img", "hr", "col",
    "colgroup", "textarea", "title", "style", "script", "template", "object", "applet",
    "marquee", "head", "body", "html", "code", "small",
]  # fmt: skip
_KEPT = set(_SOUP_TAGS) - {"script", "style", "textarea", "title", "template", "head", "body"}


def _tree_depth(html: str) -> int:
    depth = deepest = 0
    for kind, name, _closing, _start, _end in tokens(html):
        if kind == START and name not in VOID:
            depth += 1
            deepest = max(deepest, depth)
        elif kind == END:
            depth -= 1
    return deepest


def _soup(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 40)):
        roll, tag = rng.random(), rng.choice(_SOUP_TAGS)
        if roll < 0.55:
            attr = f" id={rng.randint(0, 3)}" if rng.random() < 0.3 else ""
            parts.append(f"<{tag}{attr}>")
        elif roll < 0.9:
            parts.append(f"</{tag}>")
        else:
            parts.append("x")
    return "".join(parts)


def test_depth_model_is_an_upper_estimate_of_html5evers_tree() -> None:
    # Tag soup, repeated so that any per-repetition shortfall would add up.
    rng = random.Random(8)
    for _ in range(400):
        html = _soup(rng) * 20
        # nh3 keeps the tree html5ever built (minus the dropped elements); its
        # output is well-formed, so counting its tags gives the tree's depth.
        built = _tree_depth(nh3.clean(html, tags=_KEPT, clean_content_tags=set()))
        estimate = nesting_depth(html, limit=10**9)
        assert built <= estimate + estimate // 4 + 8, html


# --- the tokenizer and the text rendering ----------------------------------------


@pytest.mark.parametrize("piece", ["<!--", "</", "<a", "<!x", "<?", "<![CDATA[", "<a b='"])
def test_inputs_quadratic_for_the_stdlib_parser_are_fine(piece: str) -> None:
    # html.parser on Python 3.11 needs ~50 s for 80,000 unclosed "<!--".
    html = "<p>before</p>" + piece * 80_000
    assert nesting_depth(html) <= 2
    text, cut = html_as_text(html)
    assert text.startswith("before") and not cut


def test_tokens_follow_the_html_tokenizer() -> None:
    html = (
        "<p title='a>b' data-x=\"<div>\">t</p><!-- <div> --><!--> <div><script>"
        "if (a<b) document.write('<div>')</script ><img src=x/>"
    )
    tags = [(k, n) for k, n, _, _, _ in tokens(html) if k in (START, END)]
    assert tags == [
        (START, "p"),
        (END, "p"),
        (START, "div"),
        (START, "script"),
        (END, "script"),
        (START, "img"),
    ]


def test_text_rendering_reads_like_the_mail() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Order   shipped</h1><p>Your <b>parcel</b>\n is on &amp; its way.</p>"
        "<ul><li>one<li>two</ul><table><tr><td>Total<td>42 EUR</table>"
        "line<br>next<script>alert(1)</script><pre>  keep\n  spacing</pre>"
        "<img alt='Logo' src=x> end</body></html>"
    )
    text, cut = html_as_text(html)
    assert not cut
    assert text == (
        "Order shipped\n\nYour parcel is on & its way.\n\n* one\n* two\n\nTotal  42 EUR\n\n"
        "line\nnext\n\n  keep\n  spacing\n\nLogo end"
    )


def test_text_rendering_stops_after_its_tag_budget() -> None:
    text, cut = html_as_text("<span>a</span>" * 100, max_tags=50)
    assert cut and text == "a" * 25
