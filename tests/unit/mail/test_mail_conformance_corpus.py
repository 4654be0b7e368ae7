"""The stalwart MIME corpus (kept outside the repository) through parse_message.

Thresholds sit slightly below the rates measured when they were set (see
bench/conformance.py for the comparison rules and the deliberate differences).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
CORPUS = (REPO / ".." / "shared" / "corpus" / "stalwart-mail-parser").resolve()

# Measured at 100 % for these fields (107 messages); allow one or two regressions' slack
# only where the corpus itself is ambiguous.
THRESHOLDS = {
    "subject": 0.99,
    "from": 0.99,
    "to": 0.97,
    "message_id": 0.99,
    "date": 0.98,
    "references": 0.99,
    "text_body": 0.95,
    "html_presence": 0.95,
    "attachment_count": 0.78,
}


def _load_conformance() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "postroom_bench_conformance", REPO / "bench" / "conformance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcome() -> object:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not present at {CORPUS} (kept outside the repo: licence)")
    return _load_conformance().run(CORPUS)


def test_nothing_raises_on_the_corpus_including_malformed(outcome: object) -> None:
    assert outcome.raised == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("field", "minimum"), sorted(THRESHOLDS.items()))
def test_field_match_rate(outcome: object, field: str, minimum: float) -> None:
    compared = outcome.compared[field]  # type: ignore[attr-defined]
    matched = outcome.matched[field]  # type: ignore[attr-defined]
    assert compared > 0
    rate = matched / compared
    mismatches = outcome.mismatches.get(field, [])[:5]  # type: ignore[attr-defined]
    assert rate >= minimum, f"{field}: {matched}/{compared} = {rate:.3f} < {minimum}; {mismatches}"
