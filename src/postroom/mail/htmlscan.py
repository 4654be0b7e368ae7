"""Linear-time scanning of untrusted HTML: bounds, plain-text rendering, attributes.

The job: look at sender-controlled HTML in one left-to-right pass whose cost is
linear in its length, whatever its content, and answer three questions:

- ``html_limit_problem``: is it within the bounds the sanitizer (nh3/html5ever)
  and the HTML-to-text step (lxml/inscriptis) are known to handle quickly?
- ``html_as_text``: a plain-text rendering, for HTML beyond those bounds.
- ``attribute_values``: the (tag, attribute, value) triples, for ``find_cids``.

Bounds, and why:

- ``MAX_HTML_DEPTH = 512`` open elements. html5ever's scope checks walk the stack
  of open elements for many tags, so sanitizing costs about tokens x depth:
  100,000 nested ``<div>`` took 18 s, 40,000 took 2.4 s; at depth 512 a 2 MB body
  sanitizes in about 0.3 s. Real mail stays far below: newsletters reach 50-100,
  a long Gmail reply chain adds 3-5 levels a reply. inscriptis recurses once per
  element (RecursionError near 1,000), and libxml2 stops at 2,048 levels with
  ``huge_tree`` (at 255 without): 512 keeps both safe.
- ``MAX_HTML_CHARS = 2,000,000`` characters. Gmail clips bodies at about 100 KB
  and large newsletters are 100-500 KB; beyond 2 MB the rich path (sanitize,
  text, quote stripping, about 1.3 s per 2 MB) would grow without a useful result.

The depth is measured on the token stream with a model of the HTML tree builder
that never counts lower than html5ever does: end tags pop only what html5ever
pops (not across table cells and other scope boundaries, not through block
elements for a misnested ``</b>``); elements closed implicitly (an unclosed
``<p>`` before a new paragraph, ``<li>``, ``<td>``) are popped, but formatting
elements closed that way stay counted, because html5ever re-opens them later; a
table counts three levels (html5ever adds ``tbody`` and ``tr``). Where the model
is unsure it counts more, so odd real mail may be shown as text, never the reverse.
Comments and raw-text elements end at the earliest place html5ever could end
them, so no tag html5ever sees is missed.

The stdlib's ``html.parser`` is not used: on Python 3.11 it takes quadratic time
on inputs such as many unclosed ``<!--`` (80,000 of them: 49 s).

What it must not do: produce HTML (its text is shown escaped), fetch anything, or
do any other I/O.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_HTML_DEPTH = 512
MAX_HTML_CHARS = 2_000_000
MAX_HTML_WORK = 10_000_000
# The plain-text rendering stops after this many tags (about 2 s of work); only
# tag-dense HTML reaches it, since long attribute values and text cost one token each.
MAX_RENDER_TAGS = 1_000_000

_WS = "\t\n\f\r "
# One tag from its name to its closing '>', following the tokenizer's states: an
# attribute name runs to whitespace, '/', '>' or '='; a quoted value to its closing
# quote; an unquoted one to whitespace or '>'. Possessive quantifiers make the
# match deterministic (no backtracking), so each tag costs its length. No match:
# the input ends inside the tag, and the tokenizer drops it.
_TAG = re.compile(
    r"""([a-zA-Z][^\t\n\f\r />]*+)
    (?:[\t\n\f\r /]*+[^\t\n\f\r />][^\t\n\f\r />=]*+
       (?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+|(?=>)))?+
    )*+
    ([\t\n\f\r /]*+)>""",
    re.VERBOSE,
)
_ATTR = re.compile(
    r"""[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)
    (?:[\t\n\f\r ]*+=[\t\n\f\r ]*+
       (?:"([^"]*+)"|'([^']*+)'|([^\t\n\f\r >"'][^\t\n\f\r >]*+)|(?=>)))?+""",
    re.VERBOSE,
)

VOID = frozenset(
    {
        "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr",
        "image", "img", "input", "keygen", "link", "meta", "param", "source", "track",
        "wbr",
    }
)  # fmt: skip
# Content is text up to the matching end tag (HTML namespace only).
_RAW_TEXT = frozenset(
    {"script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"}
)
_FOREIGN = frozenset({"svg", "math"})
_FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong",
     "tt", "u"}
)  # fmt: skip
# Elements a misnested formatting end tag does not pop through (html5ever's
# "special" category, the block-level part of it).
_SPECIAL = frozenset(
    {
        "address", "applet", "area", "article", "aside", "base", "basefont", "bgsound",
        "blockquote", "body", "br", "button", "caption", "center", "col", "colgroup",
        "dd", "details", "dir", "div", "dl", "dt", "embed", "fieldset", "figcaption",
        "figure", "footer", "form", "frame", "frameset", "h1", "h2", "h3", "h4", "h5",
        "h6", "head", "header", "hgroup", "hr", "html", "iframe", "img", "input", "li",
        "link", "listing", "main", "marquee", "menu", "meta", "nav", "noembed",
        "noframes", "noscript", "object", "ol", "p", "param", "plaintext", "pre",
        "script", "section", "select", "source", "style", "summary", "table", "tbody",
        "td", "template", "textarea", "tfoot", "th", "thead", "title", "tr", "track",
        "ul", "wbr", "xmp", "svg", "math",
    }
)  # fmt: skip
# End tags never pop across these (html5ever's "has an element in scope").
_SCOPE = frozenset(
    {"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template",
     "svg", "math", "foreignobject", "desc", "select"}
)  # fmt: skip
_BLOCKS_CLOSING_P = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir",
        "div", "dl", "fieldset", "figcaption", "figure", "footer", "header", "hgroup",
        "main", "menu", "nav", "ol", "p", "section", "summary", "ul", "h1", "h2", "h3",
        "h4", "h5", "h6", "pre", "listing", "form", "hr", "xmp", "li", "dd", "dt",
        "table",
    }
)  # fmt: skip
# Start tag -> (elements it closes implicitly, elements the search stops at).
_IMPLIED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), _SPECIAL - {"address", "div", "p", "li"}),
    "dt": (frozenset({"dt", "dd"}), _SPECIAL - {"address", "div", "p", "dt", "dd"}),
    "dd": (frozenset({"dt", "dd"}), _SPECIAL - {"address", "div", "p", "dt", "dd"}),
    "tr": (frozenset({"tr"}), frozenset({"table", "html", "template"})),
    "td": (frozenset({"td", "th"}), frozenset({"table", "tr", "html", "template"})),
    "th": (frozenset({"td", "th"}), frozenset({"table", "tr", "html", "template"})),
    "tbody": (frozenset({"tbody", "thead", "tfoot"}), frozenset({"table", "html"})),
    "thead": (frozenset({"tbody", "thead", "tfoot"}), frozenset({"table", "html"})),
    "tfoot": (frozenset({"tbody", "thead", "tfoot"}), frozenset({"table", "html"})),
}
_P_SCOPE = _SCOPE | {"button"}
_P = frozenset({"p"})
# Levels an element adds (html5ever inserts tbody and tr into a bare table).
_WEIGHT = {"table": 3}


START, END, TEXT = 0, 1, 2
# Tags inside raw text (script, style, ...), reported by ``tokens(raw_text=False)``:
# the HTML tree builder decides whether the tokenizer really switched to raw text
# there (not inside <svg>, not where the raw-text element itself is ignored, as in
# a <template> column group), so such a tag may be markup or text.
MAYBE_START, MAYBE_END = 3, 4
# (kind, name, self-closing, start, end): a tag's name is lower-case; start and end
# are the offsets of the whole tag, or of the text run.
Token = tuple[int, str, bool, int, int]


def tokens(html: str, *, raw_text: bool = True) -> Iterator[Token]:
    """Tags and text runs of ``html``, in order; comments and doctypes skipped.

    Follows the HTML tokenizer's rules for where tags, attribute values, comments
    and raw text (script, style, ...) end. With ``raw_text=False`` the content of
    a raw-text element is tokenized as markup too (confined to that content) and
    its tags come as MAYBE_START/MAYBE_END. Each step advances, so the pass is
    linear.
    """
    return _tokens_in(html, 0, len(html), maybe=False, raw_text=raw_text)


def _tokens_in(html: str, pos: int, stop: int, *, maybe: bool, raw_text: bool) -> Iterator[Token]:
    """Tokens of ``html[pos:stop]``; inside raw text (``maybe``) no switching."""
    find = html.find
    match_tag = _TAG.match
    start_kind, end_kind = (MAYBE_START, MAYBE_END) if maybe else (START, END)
    foreign = 0  # open svg/math elements: raw-text names are ordinary tags there
    while pos < stop:
        lt = find("<", pos, stop)
        if lt < 0:
            yield TEXT, "", False, pos, stop
            return
        if lt > pos:
            yield TEXT, "", False, pos, lt
        pos = lt
        nxt = html[pos + 1 : pos + 2] if pos + 1 < stop else ""
        if nxt == "/":
            tag = match_tag(html, pos + 2, stop)
            after = html[pos + 2 : pos + 3] if pos + 2 < stop else ""
            if tag is not None:
                pos = tag.end()
                name = tag.group(1).lower()
                if foreign and name in _FOREIGN:
                    foreign -= 1
                yield end_kind, name, False, lt, pos
            elif after.isascii() and after.isalpha():
                return  # end of input inside a tag: the tokenizer drops it
            elif after == ">":
                pos += 3
            else:
                pos = _bogus_comment_end(html, pos + 2, stop)
        elif nxt == "!":
            if html.startswith("<!--", pos, stop):
                pos = _comment_end(html, pos + 4, stop)
            else:
                pos = _bogus_comment_end(html, pos + 2, stop)
        elif nxt == "?":
            pos = _bogus_comment_end(html, pos + 1, stop)
        else:
            tag = match_tag(html, pos + 1, stop)
            if tag is None:
                if nxt.isascii() and nxt.isalpha():
                    return  # end of input inside a tag
                yield TEXT, "", False, pos, pos + 1  # a '<' that starts no tag
                pos += 1
                continue
            pos = tag.end()
            name = tag.group(1).lower()
            self_closing = tag.group(2).endswith("/")
            yield start_kind, name, self_closing, lt, pos
            if maybe:
                continue
            if name in _FOREIGN:
                foreign += not self_closing
            elif not foreign and (name in _RAW_TEXT or name == "plaintext"):
                end = stop if name == "plaintext" else _find_end_tag(html, name, pos, stop)
                if raw_text:
                    if end > pos:
                        yield TEXT, "", False, pos, end
                else:
                    yield from _tokens_in(html, pos, end, maybe=True, raw_text=False)
                pos = end


def _find_end_tag(html: str, name: str, pos: int, stop: int) -> int:
    """Offset of the first ``</name`` followed by a tag-ending character, or ``stop``."""
    size = len(name)
    while True:
        at = html.find("</", pos, stop)
        if at < 0:
            return stop
        candidate = html[at + 2 : at + 2 + size]
        follow = html[at + 2 + size : at + 3 + size]
        if candidate.lower() == name and (follow == "" or follow in _WS or follow in "/>"):
            return at
        pos = at + 2


def _comment_end(html: str, pos: int, stop: int) -> int:
    """Offset after a comment whose text starts at ``pos`` (after ``<!--``)."""
    if html.startswith(">", pos, stop):
        return pos + 1
    if html.startswith("->", pos, stop):
        return pos + 2
    while True:
        at = html.find("--", pos, stop)
        if at < 0:
            return stop
        if html.startswith("-->", at, stop):
            return at + 3
        if html.startswith("--!>", at, stop):
            return at + 4
        pos = at + 1


def _bogus_comment_end(html: str, pos: int, stop: int) -> int:
    gt = html.find(">", pos, stop)
    return stop if gt < 0 else gt + 1


def attributes(html: str, token: Token) -> list[tuple[str, str]]:
    """The attributes of a start tag token: lower-case names, decoded values.

    The first of duplicate attributes wins, as in the HTML tokenizer.
    """
    tag = _TAG.match(html, token[3] + 1)
    assert tag is not None
    found: dict[str, str] = {}
    for attr in _ATTR.finditer(html, tag.end(1), tag.end()):
        name = attr.group(1).lower()
        if name not in found:
            raw = next((v for v in attr.group(2, 3, 4) if v is not None), "")
            found[name] = html_lib.unescape(raw) if "&" in raw else raw
    return list(found.items())


def attribute_values(html: str) -> Iterator[tuple[str, str, str]]:
    """(tag, attribute, decoded value) for every attribute of every start tag."""
    for token in tokens(html):
        if token[0] == START:
            for attr, value in attributes(html, token):
                yield token[1], attr, value


def meta_charset(prefix: str) -> str | None:
    """The charset a ``<meta>`` tag declares in the start of an HTML document.

    ``prefix`` is the first bytes of the document decoded as Latin-1 (the HTML
    encoding prescan reads 1,024 bytes; mail tools put long style blocks first,
    so callers may pass more). Reads ``<meta charset>`` and ``<meta
    http-equiv="Content-Type" content="...; charset=...">``.
    """
    for token in tokens(prefix):
        if token[0] != START or token[1] != "meta":
            continue
        attrs = dict(attributes(prefix, token))
        if attrs.get("charset", "").strip():
            return attrs["charset"].strip()
        if attrs.get("http-equiv", "").strip().lower() == "content-type":
            found = _charset_param(attrs.get("content", ""))
            if found:
                return found
    return None


def _charset_param(content: str) -> str | None:
    """The value after ``charset=`` in a Content-Type value (HTML's own algorithm)."""
    low = content.lower()
    at = low.find("charset")
    while at >= 0:
        rest = content[at + 7 :].lstrip(_WS)
        if rest.startswith("="):
            value = rest[1:].lstrip(_WS)
            if value[:1] in ("'", '"'):
                end = value.find(value[0], 1)
                return value[1:end] if end > 1 else None
            for stop, char in enumerate(value):
                if char in _WS or char == ";":
                    value = value[:stop]
                    break
            return value or None
        at = low.find("charset", at + 7)
    return None


# ---------------------------------------------------------------------------
# bounds


_MARKERS = frozenset({"td", "th", "caption", "applet", "object", "marquee", "template"})
_PHANTOM = " "  # a stack entry no tag name equals
_TABLE_PARTS = frozenset(
    {"caption", "col", "colgroup", "tbody", "td", "tfoot", "th", "thead", "tr"}
)
_IGNORED = frozenset({"html", "head", "body", "frameset", "frame"})


@dataclass(frozen=True, slots=True)
class HtmlShape:
    """What one pass over an HTML text found (see ``measure``)."""

    chars: int  # length of the HTML
    depth: int  # deepest nesting (upper estimate); counting stopped past the limit
    work: int  # tag-levels: the depth summed over every tag, in the same model
    tags: int  # start tags seen
    rows: int  # <tr> start tags
    text_chars: int  # characters of text between the tags
    complete: bool  # False when the pass stopped at a limit

    def problem(self) -> str | None:
        """Why this HTML is beyond the bounds of the rich path, or None."""
        if self.chars > MAX_HTML_CHARS:
            return f"HTML body larger than {MAX_HTML_CHARS:,} characters"
        if self.depth > MAX_HTML_DEPTH:
            return f"HTML body nested deeper than {MAX_HTML_DEPTH} elements"
        if self.work > MAX_HTML_WORK:
            return f"HTML body too complex (over {MAX_HTML_WORK:,} tag-levels)"
        return None


def measure(html: str) -> HtmlShape:
    """The shape of ``html`` in one linear pass, stopping at the first bound passed.

    Beyond ``MAX_HTML_CHARS`` nothing is scanned.
    """
    if len(html) > MAX_HTML_CHARS:
        return HtmlShape(len(html), 0, 0, 0, 0, 0, complete=False)
    model = _DepthModel(MAX_HTML_DEPTH, MAX_HTML_WORK)
    complete = model.run(html)
    return HtmlShape(
        len(html), model.deepest, model.work, model.tags, model.rows, model.text_chars, complete
    )


def nesting_depth(html: str, limit: int = MAX_HTML_DEPTH) -> int:
    """Deepest element nesting html5ever may build from ``html`` (an upper estimate).

    Stops counting as soon as the depth passes ``limit`` and returns that depth.
    """
    model = _DepthModel(limit, None)
    model.run(html)
    return model.deepest


class _DepthModel:
    """html5ever's stack of open elements, simplified so it never shrinks faster."""

    def __init__(self, limit: int, work_limit: int | None) -> None:
        self.limit = limit
        self.work_limit = work_limit
        self.work = 0
        self.tags = 0
        self.rows = 0
        self.text_chars = 0
        self.stack: list[str] = []
        # Formatting elements popped by something other than their own end tag stay
        # in html5ever's list of active formatting elements and are re-opened at the
        # next content: they keep counting, with the number of open cells
        # ("markers") at the time, since leaving a cell forgets them.
        self.reopen: list[tuple[str, int]] = []
        self.weight = 0  # sum of the levels the open elements add
        self.markers = 0
        self.tables = 0
        self.foreign = 0
        self.deepest = 0

    def run(self, html: str) -> bool:
        """Feed every token; False when a limit stopped the pass."""
        work_limit = self.work_limit
        for kind, name, self_closing, start, end in tokens(html, raw_text=False):
            if kind == TEXT:
                self.text_chars += end - start
                continue
            if kind == START:
                self.tags += 1
                if name == "tr":
                    self.rows += 1
                if name in _RAW_TEXT or name == "plaintext":
                    self.push_phantom()  # the tree builder may have ignored it
                else:
                    self.start(name, self_closing)
            elif kind == MAYBE_START:
                if not self_closing or name not in VOID:
                    self.push_phantom()
            elif kind == END:
                self.end(name)
            else:
                continue  # end tags that may be text
            depth = self.weight + len(self.reopen)
            self.work += depth
            if depth > self.deepest:
                self.deepest = depth
                if depth > self.limit:
                    return False
            if work_limit is not None and self.work > work_limit:
                return False
        return True

    def find(self, names: frozenset[str], stop: frozenset[str]) -> int:
        stack = self.stack
        for index in range(len(stack) - 1, -1, -1):
            name = stack[index]
            if name in names:
                return index
            if name in stop:
                return -1
        return -1

    def push_phantom(self) -> None:
        # Counted, but no end tag matches it: a tag that may be text to html5ever
        # must not become the target of a later end tag that pops real elements.
        self.push(_PHANTOM)

    def push(self, name: str) -> None:
        self.stack.append(name)
        self.weight += _WEIGHT.get(name, 1)
        if name in _FOREIGN:
            self.foreign += 1
        if name in _MARKERS:
            self.markers += 1
        if name == "table":
            self.tables += 1

    def remove(self, index: int, reopens: bool) -> None:
        name = self.stack.pop(index)
        self.weight -= _WEIGHT.get(name, 1)
        if name in _FOREIGN:
            self.foreign -= 1
        if name == "table":
            self.tables -= 1
        if name in _MARKERS:
            self.markers -= 1
            self.reopen = [entry for entry in self.reopen if entry[1] <= self.markers]
        elif name in _FORMATTING and reopens:
            self.reopen.append((name, self.markers))

    def pop_to(self, index: int, own_end_tag: str | None = None) -> None:
        for position in range(len(self.stack) - 1, index - 1, -1):
            own = position == index and self.stack[position] == own_end_tag
            self.remove(position, reopens=not own)

    def start(self, name: str, self_closing: bool) -> None:
        if self.foreign:
            if not self_closing:
                self.push(name)
            return
        if name in _IGNORED:
            return
        if name in _TABLE_PARTS and not self.tables:
            return  # html5ever ignores table parts outside a table
        if name in _BLOCKS_CLOSING_P:
            at = self.find(_P, _P_SCOPE)
            if at >= 0:
                self.pop_to(at)
        if name in ("option", "optgroup") and self.stack and self.stack[-1] == "option":
            self.pop_to(len(self.stack) - 1)
        implied = _IMPLIED.get(name)
        if implied is not None:
            at = self.find(*implied)
            if at >= 0:
                self.pop_to(at)
        if name in VOID:
            self.deepest = max(self.deepest, self.weight + len(self.reopen) + 1)
            return
        self.push(name)

    def end(self, name: str) -> None:
        if name in _IGNORED:
            return
        if name == "form":
            # html5ever takes just the form element off the stack; what it holds
            # stays open inside it, so the tree keeps the level: keep counting it.
            return
        if name in _FORMATTING:
            at = self.find(frozenset({name}), _SCOPE - {name})
            if at == -1 and not any(n in _SCOPE for n in self.stack):
                # Not open at all: html5ever closes the re-opened copy, if any.
                for index in range(len(self.reopen) - 1, -1, -1):
                    if self.reopen[index][0] == name:
                        del self.reopen[index]
                        break
            if at < 0:
                return
            if any(n in _SPECIAL for n in self.stack[at + 1 :]):
                # The adoption agency keeps the block open and re-opens the
                # formatting element inside it: the depth does not go down.
                return
            self.pop_to(at, name)
            return
        if name in _SPECIAL:
            stop = _SCOPE - {name}
            if name == "li":
                stop = stop | {"ul", "ol"}
            elif name == "p":
                stop = _P_SCOPE
        else:
            stop = _SPECIAL | _SCOPE  # "any other end tag" stops at a special element
        at = self.find(frozenset({name}), stop)
        if at < 0:
            if name in ("p", "br"):
                # html5ever inserts an element for a stray </p> or </br>.
                self.deepest = max(self.deepest, self.weight + len(self.reopen) + 1)
            return
        self.pop_to(at, name)


def html_limit_problem(html: str) -> str | None:
    """Why ``html`` is beyond the bounds of the rich path, or None when it is within."""
    return measure(html).problem()


# ---------------------------------------------------------------------------
# plain-text rendering

_BLOCK_TEXT = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hgroup", "li", "main", "nav", "ol", "p",
        "pre", "section", "summary", "table", "tr", "ul", "caption", "body", "html",
        "listing", "xmp", "plaintext",
    }
)  # fmt: skip
_HIDDEN_TEXT = frozenset(
    {"script", "style", "title", "template", "iframe", "noembed", "noframes", "textarea",
     "head", "svg", "math", "select", "object", "applet", "audio", "video", "canvas"}
)  # fmt: skip
# Blocks set off by an empty line, as a mail client shows them.
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl",
     "listing", "xmp", "figure"}
)  # fmt: skip
_PRE = frozenset({"pre", "listing", "xmp", "plaintext", "textarea"})


def html_as_text(html: str, max_tags: int = MAX_RENDER_TAGS) -> tuple[str, bool]:
    """Readable text of ``html`` in one linear pass, and whether it was cut short.

    Block elements start new lines, ``<br>`` breaks a line, list items get a
    bullet, table cells are separated by spaces; whitespace collapses except in
    ``<pre>``; scripts, styles and other hidden content are left out. After
    ``max_tags`` tags the rendering stops (True is returned then).
    """
    out: list[str] = []
    hidden: dict[str, int] = {}  # hidden elements open, by name
    pre = 0
    tags = 0
    at_line_start = True

    def newline() -> None:
        nonlocal at_line_start
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        at_line_start = True

    def blank_line() -> None:
        newline()
        if out and not out[-1].endswith("\n\n"):
            out.append("\n")

    for token in tokens(html):
        kind, name, self_closing, start, end = token
        if kind == TEXT:
            if hidden:
                continue
            text = html_lib.unescape(html[start:end])
            if pre:
                out.append(text)
                at_line_start = text.endswith("\n")
                continue
            words = text.split()
            if not words:
                if text and not at_line_start and out and not out[-1].endswith(" "):
                    out.append(" ")
                continue
            spaced = at_line_start or not out or out[-1].endswith((" ", "\n"))
            lead = " " if text[0] in _WS and not spaced else ""
            tail = " " if text[-1] in _WS else ""
            out.append(lead + " ".join(words) + tail)
            at_line_start = False
            continue
        tags += 1
        if tags > max_tags:
            return _finish(out), True
        if kind == START:
            if name in _HIDDEN_TEXT and name not in VOID and not self_closing:
                hidden[name] = hidden.get(name, 0) + 1
                continue
            if hidden:
                continue
            if name == "br":
                out.append("\n")
                at_line_start = True
            elif name == "hr":
                newline()
                out.append("----\n")
                at_line_start = True
            elif name in ("td", "th") and not at_line_start:
                out.append("  ")
            elif name == "img":
                alt = dict(attributes(html, token)).get("alt", "").strip()
                if alt:
                    out.append(("" if at_line_start else " ") + alt + " ")
                    at_line_start = False
            elif name in _PARAGRAPH:
                blank_line()
            elif name in _BLOCK_TEXT:
                newline()
                if name == "li":
                    out.append("* ")
            if name in _PRE:
                pre += 1
            continue
        # end tag
        if hidden:
            if name in hidden:
                hidden[name] -= 1
                if not hidden[name]:
                    del hidden[name]
            continue
        if name in _PRE and pre:
            pre -= 1
        if name in _PARAGRAPH:
            blank_line()
        elif name in _BLOCK_TEXT:
            newline()
    return _finish(out), False


def _finish(out: list[str]) -> str:
    lines = [line.rstrip() for line in "".join(out).split("\n")]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n")
