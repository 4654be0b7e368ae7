"""HTML sanitizing for email bodies shown in the agent workspace.

Turns sender-controlled HTML into a fragment that is safe to embed: no scripts,
no event handlers, no forms/frames/plugins, no javascript:/data: URLs, no CSS that
loads or executes anything, and no remote resources fetched on display.

Remote images: an ``<img src="http(s)://...">`` loses its ``src`` and keeps the URL
in ``data-remote-src`` instead, so the UI can offer "show images" later (loading
them on open would tell the sender that, when and where the mail was read).
Inline images (``cid:``) are rewritten through the ``cid_url`` callback.

This module must not fetch anything or do any other I/O. It is one layer: the
workspace must also serve message HTML with a restrictive Content-Security-Policy.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from urllib.parse import unquote

import nh3

_TAGS: frozenset[str] = frozenset(
    {
        "a", "abbr", "address", "article", "b", "bdi", "bdo", "blockquote", "br",
        "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details",
        "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd",
        "li", "mark", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span",
        "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip
# Elements removed together with their content: executable, invisible or fetched
# content whose text would only confuse a reader.
_DROP_WITH_CONTENT: frozenset[str] = frozenset(
    {
        "script", "style", "title", "head", "iframe", "frame", "frameset", "object",
        "embed", "applet", "noscript", "template", "svg", "math", "select",
        "textarea", "audio", "video", "canvas",
    }
)  # fmt: skip
_COMMON_ATTRS = {"title", "dir", "lang", "align", "valign", "style", "width", "height"}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": _COMMON_ATTRS,
    "a": {"href", "name"},
    "img": {"src", "alt", "border", "hspace", "vspace"},
    "table": {"border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"colspan", "rowspan", "bgcolor", "nowrap"},
    "th": {"colspan", "rowspan", "bgcolor", "nowrap", "scope"},
    "tr": {"bgcolor"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "time": {"datetime"},
    "bdo": {"dir"},
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
# Presentation only: nothing that positions content over the workspace (position,
# z-index) or hides text (display, visibility), nothing that can hold a URL
# (background, background-image, list-style-image, cursor, content).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "letter-spacing", "word-spacing", "line-height", "white-space",
    "vertical-align", "direction", "width", "height", "max-width", "min-width",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-collapse",
    "border-spacing", "border-radius", "list-style-type", "table-layout",
}  # fmt: skip
# nh3 filters property names but not values. A value that can fetch (url(), image-set(),
# @import) or execute (IE expression(), javascript:, behavior) is dropped; CSS escapes
# (backslash) and comments are dropped too because they can hide those words.
_BAD_CSS = re.compile(r"url\s*\(|image-set|expression|javascript:|@import|behavior|[\\]|/\*", re.I)
# nh3 output is canonical: attribute values are double-quoted and never contain '"',
# so this walks <img> attributes reliably (a '>' inside a value cannot end the match).
_IMG_TAG = re.compile(r'<img((?:\s+[^\s=>"]+(?:="[^"]*")?)*)\s*/?>')
_SRC_ATTR = re.compile(r'(\s)src="([^"]*)"')


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        kept = [decl for decl in value.split(";") if decl.strip() and not _BAD_CSS.search(decl)]
        return "; ".join(d.strip() for d in kept) or None
    if tag == "img" and attr == "src":
        low = value.strip().lower()
        # Only inline (cid:) and remote http(s) images survive; remote ones are
        # neutralized after cleaning. data:, javascript:, relative paths: dropped.
        if low.startswith(("cid:", "http://", "https://", "//")):
            return value.strip()
        return None
    return value


def _rewrite_img(match: re.Match[str], cid_url: Callable[[str], str] | None) -> str:
    attrs = match.group(1)

    def fix_src(src_match: re.Match[str]) -> str:
        url = html_lib.unescape(src_match.group(2))
        low = url.lower()
        if low.startswith("cid:"):
            if cid_url is None:
                return src_match.group(0)
            content_id = unquote(url[4:].strip()).strip("<>")
            target = cid_url(content_id)
            return f'{src_match.group(1)}src="{html_lib.escape(target, quote=True)}"'
        # Remote: do not load on display; keep the address for an explicit opt-in.
        return f'{src_match.group(1)}data-remote-src="{src_match.group(2)}"'

    return "<img" + _SRC_ATTR.sub(fix_src, attrs) + ">"


def sanitize_html(html: str, *, cid_url: Callable[[str], str] | None) -> str:
    """Sanitized HTML fragment (see the module docstring for the rules).

    ``cid_url`` maps a Content-ID (without angle brackets) to the URL the workspace
    serves that inline part from; when None, ``cid:`` URLs are kept as they are.
    """
    cleaned = nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    if "<img" in cleaned:
        cleaned = _IMG_TAG.sub(lambda m: _rewrite_img(m, cid_url), cleaned)
    return cleaned


def find_cids(html: str) -> set[str]:
    """Content-IDs referenced as ``cid:`` URLs anywhere in raw HTML (RFC 2392)."""
    if "cid:" not in html.lower():
        return set()
    return {unquote(html_lib.unescape(m)).strip().strip("<>") for m in _CID_REF.findall(html)}


_CID_REF = re.compile(r"""cid:([^"'\s>)]+)""", re.I)
