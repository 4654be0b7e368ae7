"""Reply extraction: the new text of a message without quoted history.

Used for previews and search only (the full body is always kept). Handles
'>'-quoted lines, "On ... wrote:" attributions (English, German, French, Spanish,
Italian, Dutch, Portuguese), Outlook's "-----Original Message-----" separators and
header blocks ("From:/Sent:", "Von:/Gesendet:", "De:/Envoyé:", ...), signatures
after the RFC 3676 signature separator "-- ", and for HTML the Gmail/Apple/Outlook
quote containers. Pure functions over strings: no I/O.

HTML beyond the bounds of ``postroom.mail.htmlscan`` (nesting depth, size, work) is
not given to lxml and inscriptis (inscriptis recurses once per element); its text
comes from the linear plain-text rendering instead. Within them, inscriptis lays
out tables (padding every cell to its column's width) and indents nested lists
only while that cannot blow up: a 96 KB table of one wide cell and 4,000 rows
became 80 MB of text. Larger HTML is rendered with tables as lines of cells and
lists without indentation, whose text is never much longer than the HTML.
"""

from __future__ import annotations

import re

from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement as CssElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from lxml.html import (  # type: ignore[import-untyped]  # no stubs; inscriptis' parser
    HtmlElement,
    HTMLParser,
    document_fromstring,
)

from postroom.mail.htmlscan import HtmlShape, html_as_text, measure

# Laid out (aligned tables, indented lists) while rows x text and tags x depth stay
# below these: the layout's text is then at most a few MB.
_LAYOUT_ROWS_X_TEXT = 4_000_000
_LAYOUT_TAGS_X_DEPTH = 1_000_000


def _no_handler(*_args: object) -> None:
    return None


def _flat_config() -> ParserConfig:
    css = {name: _copy_without_padding(element) for name, element in CSS_PROFILES["strict"].items()}
    for cell in ("td", "th"):
        css[cell] = CssElement(display=Display.inline, suffix="  ")
    for block in ("table", "tr", "caption"):
        css[block] = CssElement(display=Display.block)
    table_tags = ("table", "tr", "td", "th")
    return ParserConfig(
        css=css,
        custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
            start_tag_mapping=dict.fromkeys(table_tags, _no_handler),
            end_tag_mapping=dict.fromkeys(("table", "td", "th"), _no_handler),
        ),
    )


def _copy_without_padding(element: CssElement) -> CssElement:
    copy: CssElement = element.__copy__()
    copy.padding_inline = 0
    return copy


def _inscriptis_text(tree: HtmlElement, shape: HtmlShape) -> str:
    laid_out = (
        shape.rows * shape.text_chars <= _LAYOUT_ROWS_X_TEXT
        and shape.tags * shape.depth <= _LAYOUT_TAGS_X_DEPTH
    )
    text: str = Inscriptis(tree, None if laid_out else _flat_config()).get_text()
    return text

# Attribution lines ("On <date>, <name> wrote:") in common locales. Gmail may wrap
# them over two lines, so they are tried on a line and on a line plus the next one.
_ATTRIBUTION = re.compile(
    r"^\s*("
    r"On\b.{0,300}\bwrote:"
    r"|Am\b.{0,300}\bschrieb\b.{0,200}:"
    r"|Le\b.{0,300}\ba\s+écrit\s*:"
    r"|El\b.{0,300}\bescribió\s*:"
    r"|Il\b.{0,300}\bha\s+scritto\s*:"
    r"|Op\b.{0,300}\bschreef\b.{0,200}:"
    r"|Em\b.{0,300}\bescreveu\s*:"
    r")\s*$",
    re.IGNORECASE,
)
# "Jane Doe <jane@example.org> wrote:" without a leading date: only an attribution
# when quoted lines follow, since ordinary prose can end the same way.
_LOOSE_ATTRIBUTION = re.compile(
    r"^.{0,200}\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu)\s*:\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*("
    r"Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Mensagem original|Originalmeddelande"
    r")\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Outlook's underscore rule that precedes its header block.
_RULE = re.compile(r"^\s*_{10,}\s*$")
_FROM_LINE = re.compile(
    r"^\s*\*?(From|Von|De|Da|Van|Från|Fra|Od|Från|Lähettäjä|От)\s*:\*?\s*\S", re.IGNORECASE
)
_HEADER_LINE = re.compile(
    r"^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Date d'envoi|Enviado|Fecha|Inviato|Data"
    r"|Verzonden|Skickat|Sendt|Wysłano|Отправлено|To|An|À|Para|A|Aan|Till|Til"
    r"|Subject|Betreff|Objet|Asunto|Oggetto|Onderwerp|Assunto|Ämne|Emne)\s*:",
    re.IGNORECASE,
)
_SENT_LINE = re.compile(
    r"^\s*\*?(Sent|Date|Gesendet|Datum|Envoyé|Date d'envoi|Enviado|Fecha|Inviato|Data"
    r"|Verzonden|Skickat|Sendt|Wysłano|Отправлено)\s*:",
    re.IGNORECASE,
)
# Every attribution above names one of these verbs: a cheap search for them gates
# the costlier anchored patterns, which keeps long bodies fast.
_ATTRIBUTION_WORD = re.compile(
    r"wrote|schrieb|écrit|escribió|scritto|schreef|escreveu", re.IGNORECASE
)
# A line where any of the cut markers below could start: separators, rules, a
# header block's From line, an attribution's first word or verb. One C-level
# search finds the next such line, so ordinary lines skip the per-line patterns.
_VERBS = ("wrote", "schrieb", "écrit", "escribió", "scritto", "schreef", "escreveu")
_VERB_FORMS = _VERBS + tuple(v.capitalize() for v in _VERBS) + tuple(v.upper() for v in _VERBS)
_CANDIDATE = re.compile(
    r"^(?:[ \t]*(?:-{2,}|_{10,}|\*?(?:From|Von|De|Da|Van|Från|Fra|Od|Lähettäjä|От)[ \t]*:"
    r"|(?:On|Am|Le|El|Il|Op|Em)\b))",
    re.IGNORECASE | re.MULTILINE,
)


def _next_candidate(text: str, pos: int) -> int:
    """Offset of the next line at or after `pos` that may hold a cut marker."""
    found = len(text) + 1
    marker = _CANDIDATE.search(text, pos)
    if marker:
        found = marker.start()
    # str.find per verb: Python's re scans an alternation of words char by char,
    # which cost milliseconds per long body.
    first_verb = found
    for verb in _VERB_FORMS:
        at = text.find(verb, pos, first_verb)
        if at >= 0:
            first_verb = at
    if first_verb < found:
        found = max(pos, text.rfind("\n", 0, first_verb) + 1)
    return found


# RFC 3676 section 4.3: the signature separator is "-- " on its own line; many
# clients strip the trailing space, so "--" alone is accepted too.
_SIGNATURE = re.compile(r"^-- ?$")


def _is_header_block(lines: list[str], start: int) -> bool:
    """True when lines[start] is "From: ..." followed by a Sent/Date-style header line."""
    if not _FROM_LINE.match(lines[start]):
        return False
    seen_sent = False
    for line in lines[start + 1 : start + 6]:
        if not line.strip():
            break  # the header block ends at the first empty line
        if not _HEADER_LINE.match(line):
            return False
        if _SENT_LINE.match(line):
            seen_sent = True
    return seen_sent


def _quoted_next(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 3]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


def strip_quotes(text: str) -> str:
    """The text without quoted history and signature; falls back to the whole text
    (stripped) when nothing would be left, so previews are never empty by accident."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = normalized.split("\n")
    kept: list[str] = []
    n = len(lines)
    i = 0
    offset = 0  # of lines[i] in `normalized`
    next_candidate = _next_candidate(normalized, 0)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        line_start, offset = offset, offset + len(line) + 1
        if line_start < next_candidate:
            if not stripped.startswith(">"):
                kept.append(line.rstrip())
            i += 1
            continue
        next_candidate = _next_candidate(normalized, offset)
        if _SIGNATURE.match(line) or _SEPARATOR.match(line):
            break
        if _RULE.match(line) and i + 1 < n and _is_header_block(lines, i + 1):
            break
        if _is_header_block(lines, i):
            break
        here = bool(stripped) and _ATTRIBUTION_WORD.search(line) is not None
        if here and _ATTRIBUTION.match(line):
            break
        if here and _LOOSE_ATTRIBUTION.match(line) and _quoted_next(lines, i + 1):
            break
        # A two-line attribution (Gmail wraps long ones) counts when quotes follow it.
        if (
            stripped
            and i + 1 < n
            and (here or _ATTRIBUTION_WORD.search(lines[i + 1]) is not None)
            and _ATTRIBUTION.match(line + " " + lines[i + 1].strip())
            and (i + 2 >= n or _quoted_next(lines, i + 2))
        ):
            break
        if stripped.startswith(">"):
            i += 1
            continue
        kept.append(line.rstrip())
        i += 1
    result = "\n".join(kept).strip()
    return result if result else text.strip()


# Quote containers by client: Gmail (gmail_quote), Apple Mail/Thunderbird
# (blockquote type=cite), Outlook web (divRplyFwdMsg / appendonsend and everything
# after it), Yahoo (yahoo_quoted).
_HTML_QUOTE_XPATH = (
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //blockquote"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')]"
    " | //*[@id='divRplyFwdMsg']"
    " | //*[@id='appendonsend']"
)


def html_to_text(html: str, *, shape: HtmlShape | None = None) -> str:
    """Readable plain text of an HTML document or fragment (inscriptis).

    Beyond the bounds of ``htmlscan`` (or should inscriptis still run out of
    stack), the linear plain-text rendering is used. ``shape`` is ``measure(html)``
    when the caller has it already.
    """
    shape = shape or measure(html)
    if shape.problem() is not None:
        return html_as_text(html)[0]
    tree = _html_tree(html)
    if tree is None:
        return ""
    try:
        return _inscriptis_text(tree, shape)
    except RecursionError:
        return html_as_text(html)[0]


def _html_tree(html: str) -> HtmlElement | None:
    content = html.strip()
    if not content:
        return None
    if content.startswith("<?xml"):
        content = content.split("?>", 1)[-1]
    # huge_tree: libxml2 otherwise stops reading at 255 levels and drops the rest
    # of the text; the depth is bounded by htmlscan before this point.
    parser = HTMLParser(huge_tree=True)
    try:
        return document_fromstring(content, parser=parser)
    except Exception:  # lxml ParserError on fragments it cannot root
        try:
            return document_fromstring("<pre>" + content + "</pre>", parser=parser)
        except Exception:
            return None


_HTML_QUOTE_MARKER = re.compile(
    r"gmail_quote|<blockquote|divRplyFwdMsg|appendonsend|yahoo_quoted", re.IGNORECASE
)


def has_html_quotes(html: str) -> bool:
    """Whether the HTML holds a quote container strip_html_quotes would remove.

    HTML-to-text is the slow step (inscriptis, about 1 MB/s); callers that already
    have the full text skip a second conversion when there is nothing to strip.
    """
    return _HTML_QUOTE_MARKER.search(html) is not None


def strip_html_quotes(html: str, *, shape: HtmlShape | None = None) -> str:
    """Plain text of an HTML body with its quoted history removed.

    Beyond the bounds of ``htmlscan``, the quotes are looked for in the linear
    plain-text rendering instead.
    """
    shape = shape or measure(html)
    if shape.problem() is not None:
        return strip_quotes(html_as_text(html)[0])
    root = _html_tree(html)
    if root is None:
        return ""
    for element in root.xpath(_HTML_QUOTE_XPATH):
        parent = element.getparent()
        if parent is None:
            continue
        if element.get("id") in ("divRplyFwdMsg", "appendonsend"):
            # Outlook puts the quoted message after this marker, as siblings.
            for sibling in list(element.itersiblings()):
                parent.remove(sibling)
        # Keep the tail text (it follows the quote, it is not part of it).
        tail = element.tail
        previous = element.getprevious()
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
        parent.remove(element)
    try:
        return strip_quotes(_inscriptis_text(root, shape))
    except RecursionError:
        return strip_quotes(html_as_text(html)[0])
