"""Reply extraction in the styles of common clients and locales."""

from __future__ import annotations

from postroom.mail.quotes import strip_html_quotes, strip_quotes


def test_gmail_english_attribution_and_quoted_lines() -> None:
    text = (
        "Thanks, works now.\n\n"
        "On Mon, 6 Apr 2026 at 10:00, Support <support@example.com> wrote:\n"
        "> Please restart the router.\n> Regards\n"
    )
    assert strip_quotes(text) == "Thanks, works now."


def test_gmail_attribution_wrapped_over_two_lines() -> None:
    text = (
        "Fine by me.\n\nOn Mon, 6 Apr 2026 at 10:00, A very long sender name <\n"
        "support@example.com> wrote:\n> old\n"
    )
    assert strip_quotes(text) == "Fine by me."


def test_outlook_original_message_separator() -> None:
    text = "See below.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nOld text"
    assert strip_quotes(text) == "See below."


def test_outlook_english_header_block() -> None:
    text = (
        "Please call me.\n\n________________________________\n"
        "From: Support <support@example.com>\nSent: Monday, April 6, 2026 10:00 AM\n"
        "To: Jane\nSubject: RE: Order\n\nOld text"
    )
    assert strip_quotes(text) == "Please call me."


def test_outlook_german_header_block() -> None:
    text = (
        "Vielen Dank!\n\nVon: Support <support@example.com>\n"
        "Gesendet: Montag, 6. April 2026 10:00\nAn: Jana\nBetreff: AW: Bestellung\n\nAlter Text"
    )
    assert strip_quotes(text) == "Vielen Dank!"


def test_outlook_french_header_block() -> None:
    text = (
        "Merci beaucoup.\n\nDe : Support <support@example.com>\n"
        "Envoyé : lundi 6 avril 2026 10:00\nÀ : Jeanne\nObjet : RE: Commande\n\nAncien texte"
    )
    assert strip_quotes(text) == "Merci beaucoup."


def test_german_and_french_attributions() -> None:
    de = "Passt.\n\nAm 06.04.2026 um 10:00 schrieb Support <s@example.com>:\n> alt\n"
    fr = "D'accord.\n\nLe lun. 6 avr. 2026 à 10:00, Support <s@example.com> a écrit :\n> ancien\n"
    assert strip_quotes(de) == "Passt."
    assert strip_quotes(fr) == "D'accord."


def test_signature_after_dash_dash_space() -> None:
    assert strip_quotes("Hello there.\n\n-- \nJane Doe\nACME Corp") == "Hello there."


def test_interleaved_reply_keeps_new_lines_only() -> None:
    text = "> Question one?\nAnswer one.\n> Question two?\nAnswer two."
    assert strip_quotes(text) == "Answer one.\nAnswer two."


def test_ordinary_text_is_untouched() -> None:
    text = "Hi,\n\nFrom what I see, the order is late.\nDate of order: 6 April.\n\nJane"
    assert strip_quotes(text) == text


def test_all_quoted_falls_back_to_whole_text() -> None:
    assert strip_quotes("> only quoted") == "> only quoted"


def test_html_gmail_quote_and_blockquote_removed() -> None:
    html = (
        "<div>New answer</div><div class='gmail_quote'><div>On Mon, X wrote:</div>"
        "<blockquote>old text</blockquote></div>"
    )
    assert strip_html_quotes(html) == "New answer"
    apple = "<p>Sure.</p><blockquote type='cite'>older</blockquote><p>Jane</p>"
    assert strip_html_quotes(apple) == "Sure.\n\nJane"


def test_html_outlook_reply_marker_and_everything_after() -> None:
    html = (
        "<div>Top reply</div><hr><div id='divRplyFwdMsg'><b>From:</b> Support</div>"
        "<div>Quoted old message</div>"
    )
    assert strip_html_quotes(html) == "Top reply"
