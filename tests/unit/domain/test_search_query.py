"""The search language: it never raises, keeps words and phrases in order, reads the
operators, and its output round-trips; tokens and snippets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.search_query import (
    MAX_TERMS,
    Term,
    parse,
    shared_domain,
    snippet,
    tokens,
    unparse,
)

_WORD = st.text(alphabet=st.characters(categories=("Ll", "Nd")), min_size=1, max_size=12)


@given(st.text(max_size=3000))
def test_any_input_parses_and_yields_only_safe_tokens(text: str) -> None:
    q = parse(text)
    assert len(q.terms) <= MAX_TERMS
    for t in (*q.terms, *q.recipients):
        assert t.words and all(w.isalnum() and w == w.lower() for w in t.words)
    assert parse(unparse(q)) == parse(unparse(parse(unparse(q))))


@given(st.lists(_WORD, min_size=1, max_size=8), st.lists(_WORD, min_size=2, max_size=4))
def test_words_and_phrases_round_trip(words: list[str], phrase: list[str]) -> None:
    words = [w for w in words if tokens(w) == [w]]
    phrase = [w for w in phrase if tokens(w) == [w]]
    text = " ".join(words) + (' "' + " ".join(phrase) + '"' if phrase else "")
    q = parse(text)
    expected = [Term((w,)) for w in words]
    if len(phrase) > 1 or phrase:
        expected.append(Term(tuple(phrase), True))
    assert list(q.terms) == expected
    assert parse(unparse(q)) == q


def test_operators_and_references() -> None:
    q = parse('invoice "late fee" from:Ann@Acme.example to:"bob@x.example" queue:billing '
              "state:Queued ref:PR-12 pr-7 PR-x bogus:thing")  # fmt: skip
    assert q.terms == (Term(("invoice",)), Term(("late", "fee"), True), Term(("pr", "x"), True),
                       Term(("bogus", "thing"), True))  # fmt: skip
    assert q.senders == ("ann@acme.example",)
    assert q.recipients == (Term(("bob", "x", "example"), True),)
    assert q.queues == ("billing",) and q.states == ("queued",)
    assert q.refs == (12, 7)
    assert parse("T-5", prefix="T").refs == (5,)


def test_hostile_input() -> None:
    for text in ("\x00" * 50, '"', '"""', "NEAR(", "*:^", "a" * 20_000, ":", "from:", "ref:x"):
        parse(text)  # never raises
    assert parse('"unbalanced phrase').terms == (Term(("unbalanced", "phrase"), True),)
    assert parse("a" * 100).empty  # over-long tokens are not searched for
    assert parse("%_").empty


def test_snippet_marks_the_words_near_the_first_match() -> None:
    text = " ".join(f"w{i}" for i in range(100)) + " Target here.\nNext line"
    pieces = snippet(text, ["target"])
    assert [p.text for p in pieces if p.marked] == ["Target"]
    assert pieces[0].text == "… " and pieces[-1].text.endswith("line")
    assert snippet("", ["x"]) == ()
    assert [p.marked for p in snippet("no match at all", ["zzz"])] == [False]


def test_free_mail_domains_are_not_shared() -> None:
    assert shared_domain("ann@Acme.example") == "acme.example"
    assert shared_domain("ann@gmail.com") is None
    assert shared_domain("nobody") is None
