"""HTML sanitizing for email bodies shown in the agent workspace.

Turns sender-controlled HTML into a fragment that is safe to embed: no scripts,
no event handlers, no forms/frames/plugins, no javascript:/data: URLs, no CSS that
loads or executes anything, and no remote resources fetched on display.

How: nh3 (html5ever's parser and an allowlist of tags, attributes, URL schemes and
CSS properties) cleans the markup; the one attribute in the allowlist that loads
anything, ``img src``, is then rewritten on the parsed tree (lxml) of nh3's output,
never with a pattern over HTML text:

- Remote images: an ``<img src="http(s)://...">`` (or ``//host/...``) loses its
  ``src`` and keeps the URL in ``data-remote-src`` instead, so the UI can offer
  "show images" later (loading them on open would tell the sender that, when and
  where the mail was read).
- Inline images (``cid:``) are rewritten through the ``cid_url`` callback.
- Every other resource-loading attribute (``srcset``, ``background``, ``poster``,
  ``href`` outside ``<a>``, ``src`` outside ``<img>``) is outside the allowlist; the
  tree pass drops any that appears anyway.

Bounded work: HTML beyond the bounds of ``postroom.mail.htmlscan`` (nesting depth,
size) is not given to nh3 at all, whose cost grows with tokens x depth; it comes
back as a plain-text rendering, escaped, in a ``white-space: pre-wrap`` block.

This module must not fetch anything or do any other I/O. It is one layer: the
workspace must also serve message HTML with a restrictive Content-Security-Policy.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from urllib.parse import unquote

import nh3
from lxml import etree  # type: ignore[import-untyped]  # no stubs
from lxml.html import (  # type: ignore[import-untyped]  # no stubs
    HtmlElement,
    HTMLParser,
    document_fromstring,
)

from postroom.mail.htmlscan import VOID, HtmlShape, attribute_values, html_as_text, measure

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
# Attributes that make a browser fetch something, by element ("*": any element).
# None is in the allowlist above; the tree pass removes them should one appear.
_FETCHING = ("srcset", "background", "poster", "lowsrc", "dynsrc", "longdesc", "data")


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        kept = [decl for decl in value.split(";") if decl.strip() and not _BAD_CSS.search(decl)]
        return "; ".join(d.strip() for d in kept) or None
    if tag == "img" and attr == "src":
        low = value.strip().lower()
        # Only inline (cid:) and remote http(s) images survive; remote ones are
        # neutralized on the tree after cleaning. data:, javascript:, relative: dropped.
        if low.startswith(("cid:", "http://", "https://", "//")):
            return value.strip()
        return None
    return value


def _rewrite_tree(cleaned: str, cid_url: Callable[[str], str] | None) -> str:
    """nh3's output with image sources rewritten on its parsed tree."""
    parser = HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True)
    # Parsed as a whole document: lxml's fragment helpers set leading text through
    # its API, which refuses control characters that HTML allows.
    document = document_fromstring(f"<html><body>{cleaned}</body></html>", parser=parser)
    root: HtmlElement = document.find("body")
    for element in root.iter(etree.Element):
        if element is root:
            continue
        tag = element.tag
        attrib = element.attrib
        for name in _FETCHING:
            attrib.pop(name, None)
        if tag != "a":
            attrib.pop("href", None)
        if tag != "img":
            attrib.pop("src", None)
            continue
        src = attrib.get("src")
        if src is None:
            continue
        url = src.strip()
        if url.lower().startswith("cid:"):
            if cid_url is not None:
                attrib["src"] = _printable(cid_url(_content_id(url)))
            continue
        # Remote: do not load on display; keep the address for an explicit opt-in.
        del attrib["src"]
        attrib["data-remote-src"] = _printable(url)
    return _serialize_children(root)


def _serialize_children(root: HtmlElement) -> str:
    """HTML of the children of ``root``, attribute values double-quoted (like nh3's).

    Iterative (``iterwalk``), so a deep tree cannot exhaust the stack.
    """
    out: list[str] = []
    escape = html_lib.escape
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions: removed by the parser
        if event == "start":
            if element is not root:
                attrs = "".join(f' {k}="{escape(v, quote=True)}"' for k, v in element.items())
                out.append(f"<{tag}{attrs}>")
            if element.text:
                out.append(escape(element.text, quote=False))
        else:
            if element is root:
                break
            if tag not in VOID:
                out.append(f"</{tag}>")
            if element.tail:
                out.append(escape(element.tail, quote=False))
    return "".join(out)


def _printable(url: str) -> str:
    # Control characters are not valid in a URL (nor settable through lxml's API):
    # percent-encode them, as a browser would.
    if url.isprintable():
        return url
    return "".join(f"%{ord(c):02X}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in url)


def _content_id(url: str) -> str:
    return unquote(url[4:].strip()).strip().strip("<>")


def _as_text_block(html: str) -> str:
    text, _cut = html_as_text(html)
    return '<div style="white-space: pre-wrap">' + html_lib.escape(text, quote=False) + "</div>"


def sanitize_html(
    html: str, *, cid_url: Callable[[str], str] | None, shape: HtmlShape | None = None
) -> str:
    """Sanitized HTML fragment (see the module docstring for the rules).

    ``cid_url`` maps a Content-ID (without angle brackets) to the URL the workspace
    serves that inline part from; when None, ``cid:`` URLs are kept as they are.
    """
    if (shape or measure(html)).problem() is not None:
        return _as_text_block(html)
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
        cleaned = _rewrite_tree(cleaned, cid_url)
    return cleaned


# Attributes whose value is a URL that can name an inline part.
_CID_ATTRIBUTES = frozenset({"src", "background", "href", "poster", "data", "xlink:href"})


def find_cids(html: str) -> set[str]:
    """Content-IDs referenced as ``cid:`` URLs (RFC 2392) in the attributes of raw HTML.

    Reads the attribute values as the HTML tokenizer does (character references
    decoded, comments skipped), not the text.
    """
    if "cid:" not in html.lower() and "&" not in html:
        return set()
    return {
        _content_id(value.strip())
        for _tag, attr, value in attribute_values(html)
        if attr in _CID_ATTRIBUTES and value.strip().lower().startswith("cid:")
    }
