"""The command line and the docs agree: every command is documented, and every
`postroom ...` a page mentions (with its --options) exists in the parser."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from postroom.runtime.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# A command as written in a page: `postroom word [word] [args and --options]`,
# inside backticks or on a line of a code block.
_MENTION = re.compile(r"postroom((?: [a-z][a-z-]*)+)((?:[^`\n|])*)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """("user add", parser) for every leaf command."""
    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        subs = _subparsers(parser)
        if not subs:
            found.append((prefix, parser))
        for name, sub in subs.items():
            walk(f"{prefix} {name}".strip(), sub)

    walk("", build_parser())
    return found


def _docs_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)


def _mentions() -> list[tuple[str, str, str]]:
    """(page, words after `postroom`, the rest of the mention) from code spans and blocks."""
    out: list[tuple[str, str, str]] = []
    for page in PAGES:
        in_block = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            spans = [line] if in_block else re.findall(r"`([^`]*)`", line)
            for span in spans:
                for m in _MENTION.finditer(span):
                    out.append((page.name, m.group(1).strip(), m.group(2)))
    return out


def _resolve(words: str) -> tuple[str, argparse.ArgumentParser] | None:
    """The deepest command the words name, or None when the first word is no command."""
    parser = build_parser()
    path: list[str] = []
    for word in words.split():
        subs = _subparsers(parser)
        if word not in subs:
            break
        parser = subs[word]
        path.append(word)
    return (" ".join(path), parser) if path else None


@pytest.mark.parametrize("command", [name for name, _ in _commands()])
def test_every_command_is_documented(command: str) -> None:
    assert f"postroom {command}" in _docs_text(), (
        f"`postroom {command}` is in the command line but no page in docs/ mentions it"
    )


def test_every_documented_command_and_option_exists() -> None:
    wrong: list[str] = []
    for page, words, rest in _mentions():
        if words.split()[0].startswith("postroom"):
            continue  # a path such as postroom-data/
        resolved = _resolve(words)
        if resolved is None:
            if words.split()[0] in {"is", "and", "to", "serve's", "keeps", "itself"}:
                continue  # prose in a code block, not a command
            wrong.append(f"{page}: `postroom {words}` is not a command")
            continue
        name, parser = resolved
        if _subparsers(parser):
            extra = words.split()[len(name.split()) :]
            if extra:  # `postroom agent` names the group; `postroom agent frob` is wrong
                wrong.append(f"{page}: `postroom {words}`: `{extra[0]}` is no subcommand")
            continue
        for option in _OPTION.findall(rest):
            if option not in _options(parser):
                wrong.append(f"{page}: `postroom {name}` has no option {option}")
    assert not wrong, "\n".join(wrong)
