"""Remote-image blocking: no sanitized output may load anything from outside.

Every vector is checked on the parsed output, so a quoting trick that fools a
text search cannot fool the test either.
"""

from __future__ import annotations

import pytest
from lxml.html import document_fromstring  # type: ignore[import-untyped]

from postroom.mail.parse import parse_message
from postroom.mail.sanitize import find_cids, sanitize_html

# Attributes a browser fetches from (besides href, which only <a> may keep).
_LOADING = {
    "src", "srcset", "background", "poster", "lowsrc", "dynsrc", "data", "action",
    "formaction", "xlink:href", "content", "codebase", "archive", "longdesc", "ping",
    "manifest", "icon", "profile", "usemap", "cite", "imagesrcset",
}  # fmt: skip


def _external(value: str) -> bool:
    low = value.lower()
    return "//" in low or "http" in low or "\\" in low or "x.test" in low


def loaded_urls(out: str) -> list[str]:
    """Every outside address in the output that a browser could fetch on display."""
    root = document_fromstring(f"<html><body>{out}</body></html>")
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.items():
            name = name.lower()
            loading = name in _LOADING or (name == "href" and element.tag != "a")
            if loading and _external(value):
                found.append(f"{element.tag} {name}={value}")
            if name == "style" and "url" in value.lower():
                found.append(f"{element.tag} style={value}")
    return found


def remote_srcs(out: str) -> list[str]:
    root = document_fromstring(f"<html><body>{out}</body></html>")
    return [img.get("data-remote-src") for img in root.iter("img") if img.get("data-remote-src")]


URL = "http://x.test/p.png"

# (vector, the URL that must end in data-remote-src, or None when the image is dropped)
IMG_VECTORS = [
    (f'<img alt=" src=" src="{URL}">', URL),
    (f"<img title=' src=' src='{URL}'>", URL),
    (f'<img style="x: src=" src="{URL}">', URL),
    (f'<img width=" src=" height=\' src=\' src="{URL}">', URL),
    (f'<img data-x=" src=" src="{URL}">', URL),
    (f'<img alt="a>b src=c" src="{URL}">', URL),
    (f'<img alt=x src=" src={URL}">', None),  # the src value is not a URL: dropped
    (f'<IMG SRC="{URL}">', URL),
    (f'<img Src="{URL}">', URL),
    ('<img src="&#104;ttp://x.test/p.png">', URL),
    ('<img src="&#x68;ttp&colon;//x.test/p.png">', URL),
    (f'<img &#115;rc="{URL}">', None),
    (f'<img\nsrc="{URL}">', URL),
    (f'<img\tsrc\t=\n"{URL}">', URL),
    (f"<img src={URL}>", URL),
    (f"<img src={URL}/>", URL + "/"),
    (f'<img src="  {URL}  ">', URL),
    ('<img src="HTTPS://X.test/p.png">', "HTTPS://X.test/p.png"),
    ('<img src="//x.test/p.png">', "//x.test/p.png"),
    (f'<img src="cid:a@b" src="{URL}">', None),  # the first of duplicates wins
    (f"<img src=x src={URL}>", None),
    (f'<img src="{URL}" src="cid:a@b">', URL),
    (f'<image src="{URL}">', URL),  # the HTML parser reads <image> as <img>
    (f'<img srcset="{URL} 1x, {URL} 2x">', None),
    (f'<picture><source srcset="{URL}"><img src="{URL}"></picture>', URL),
    (f'<img src="{URL}" lowsrc="{URL}" dynsrc="{URL}" longdesc="{URL}">', URL),
    (f'<img src="{URL}" onerror="this.src=\'{URL}\'">', URL),
    (f'<img/src="{URL}">', URL),
    ('<img src="\\\\x.test/p.png">', None),  # browsers read \\ as //
    ('<img src="http:\\\\x.test/p.png">', None),
    ('<img src="data:image/png;base64,AAAA">', None),
    ('<img src="javascript:alert(1)">', None),
]


@pytest.mark.parametrize(("html", "kept"), IMG_VECTORS)
def test_remote_image_sources_never_survive(html: str, kept: str | None) -> None:
    out = sanitize_html(f"<p>before</p>{html}<p>after</p>", cid_url=None)
    assert loaded_urls(out) == [], out
    assert remote_srcs(out) == ([kept] if kept else []), out
    assert "before" in out and "after" in out


OTHER_VECTORS = [
    f'<table background="{URL}"><tr><td background="{URL}">x</td></tr></table>',
    f'<body background="{URL}">x</body>',
    f'<p style="background:url({URL})">x</p>',
    "<p style=\"background-image: URL('//x.test/p.png'); color: red\">x</p>",
    f'<p style="color: red; background: u\\rl({URL})">x</p>',
    f'<p style="list-style-image: url({URL})">x</p>',
    f'<p style="behavior: url({URL})">x</p>',
    f'<p style="width: expression(fetch(\'{URL}\'))">x</p>',
    f'<input type="image" src="{URL}">',
    f'<video poster="{URL}" src="{URL}"></video><audio src="{URL}"></audio>',
    f'<link rel="stylesheet" href="{URL}"><link rel="prefetch" href="{URL}">',
    f'<svg><image href="{URL}"/><image xlink:href="{URL}"/></svg>',
    f'<svg><use href="{URL}#x"/></svg>',
    f'<math><mglyph src="{URL}"/></math>',
    f'<object data="{URL}"></object><embed src="{URL}"><applet codebase="{URL}"></applet>',
    f'<iframe src="{URL}"></iframe><frame src="{URL}">',
    f'<meta http-equiv="refresh" content="0;url={URL}"><base href="{URL}">',
    f'<form action="{URL}"><button formaction="{URL}">b</button></form>',
    f'<a href="https://ok.test/" ping="{URL}">link</a>',
    f'<blockquote cite="{URL}">q</blockquote><q cite="{URL}">q</q>',
    f'<div style="background: url(&quot;{URL}&quot;)">x</div>',
    f'<div style="background&#58;url({URL})">x</div>',
    f'<style>@import "{URL}"; body {{ background: url({URL}) }}</style>x',
    f'<div><!-- <img src="{URL}"> -->x</div>',
    f'<noscript><img src="{URL}"></noscript>x',
    f'<template><img src="{URL}"></template>x',
    f'<textarea><img src="{URL}"></textarea>x',
]


@pytest.mark.parametrize("html", OTHER_VECTORS)
def test_nothing_else_loads_a_resource(html: str) -> None:
    out = sanitize_html(html, cid_url=None)
    assert loaded_urls(out) == [], out
    assert "x.test" not in out.replace('data-remote-src="http://x.test/p.png"', ""), out


def test_links_keep_their_address() -> None:
    out = sanitize_html('<a href="https://shop.test/order?id=1&amp;x=2">order</a>', cid_url=None)
    assert 'href="https://shop.test/order?id=1&amp;x=2"' in out


def test_cid_images_use_the_callback_and_remote_ones_stay_blocked() -> None:
    html = f'<img alt=" src=" src="cid:logo@x"><img alt=" src=" src="{URL}">'
    out = sanitize_html(html, cid_url=lambda cid: f"/api/v1/inline/{cid}")
    assert 'src="/api/v1/inline/logo@x"' in out
    assert remote_srcs(out) == [URL]
    assert loaded_urls(out) == []


def test_parsed_message_html_has_no_live_remote_image() -> None:
    raw = (
        "From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f'<p>Hi</p><img alt=" src=" src="{URL}">\r\n'
    ).encode()
    parsed = parse_message(raw)
    assert parsed.html is not None
    assert loaded_urls(parsed.html) == []
    assert remote_srcs(parsed.html) == [URL]


@pytest.mark.parametrize(
    ("html", "cids"),
    [
        ('<img src="cid:a@b"><img src=\'CID:%3Cc@d%3E\'>', {"a@b", "c@d"}),
        ('<img alt="cid:not-me" src="cid:real">', {"real"}),  # alt text is no reference
        ("<p>write to cid:nobody</p>", set()),
        ('<!-- <img src="cid:hidden"> --><td background="cid:bg">', {"bg"}),
        ("<img src=cid:unquoted@x>", {"unquoted@x"}),
        ('<img src="&#99;id:encoded@x">', {"encoded@x"}),
    ],
)
def test_find_cids_reads_parsed_attributes(html: str, cids: set[str]) -> None:
    assert find_cids(html) == cids
