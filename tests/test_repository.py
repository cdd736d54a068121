# -*- test-case-name: tests.test_repository -*-
"""
The repository as a newcomer finds it: the README short, every link in it and in docs/
leading somewhere, every `test-case-name` header naming a real test module, and every
test file given its kind (docs/architecture.md, "Tests").
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path
from unittest import SkipTest
from urllib.parse import unquote

from twisted.trial.unittest import SynchronousTestCase

from tests.conftest import KINDS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: the README's size limit, in bytes: what it does not say, docs/ does
README_LIMIT = 12 * 1024

_HEADER = re.compile(r"-\*- test-case-name: (\S+?) -\*-")
#: [text](target) and ![alt](target), not inside code spans
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def anchors(markdown: str) -> set[str]:
    """The `#fragment`s GitHub gives a document's headings."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _FENCE.sub("", markdown).splitlines():
        heading = re.match(r"#{1,6} +(.*?) *#* *$", line)
        if heading is None:
            continue
        text = heading.group(1).replace("`", "").lower()
        slug = "".join(
            c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN"
        ).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(document: Path) -> list[str]:
    """Each relative link of `document` whose file, or heading, does not exist."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", document.read_text()))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        linked = (document.parent / unquote(path_part)).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            broken.append(f"{target}: no such heading in {linked.name}")
    return broken


#: documents that are not in the repository, which its code and docs must not cite (spelt
#: so that this file, which is read too, does not match itself)
_OUTSIDE = re.compile(r"SPEC \N{SECTION SIGN}|SPEC[']s|TWISTED[-]NOTES|\.\./shared/")


def outside_citations(paths: list[Path]) -> list[str]:
    """`file:line` of each citation of a document the repository does not hold."""
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.name}:{number}")
    return found


def shipped_files() -> list[Path]:
    """Every text file git tracks, but the fixtures (kernel files and hostile input)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SkipTest(f"not a git checkout, or no git: {error}") from None
    files = []
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if name and "fixtures" not in path.parts and b"\0" not in path.read_bytes():
            files.append(path)
    return files


def test_case_names() -> list[tuple[Path, str]]:
    """Every (file, module) named by a `test-case-name` header of the shipped code."""
    named = []
    for path in sorted([*ROOT.glob("twistedspy/**/*.py"), *ROOT.glob("twisted/plugins/*.py")]):
        first_lines = path.read_text().splitlines()[:2]
        for line in first_lines:
            match = _HEADER.search(line)
            if match is not None:
                named += [(path, module) for module in match.group(1).split(",")]
    return named


class ReadmeTests(SynchronousTestCase):
    def test_readme_is_short(self) -> None:
        self.assertLess(len(README.read_bytes()), README_LIMIT)

    def test_readme_starts_with_the_two_commands(self) -> None:
        commands = re.findall(r"^make \w+", README.read_text(), re.MULTILINE)
        self.assertEqual(commands[:2], ["make run", "make test"])


class LinkTests(SynchronousTestCase):
    def test_every_relative_link_resolves(self) -> None:
        for document in documents():
            with self.subTest(document=document.name):
                self.assertEqual(broken_links(document), [])

    def test_a_broken_link_is_found(self) -> None:
        """The check itself can fail: a missing file, and a missing heading."""
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "other.md").write_text("# Other\n\n## A `code` heading, twice\n")
        page = folder / "page.md"
        page.write_text(
            "[ok](other.md#a-code-heading-twice) [gone](missing.md) [bad](other.md#nowhere)\n"
            "`[in code](missing.md)` [web](https://example.org/x) [self](#top)\n\n# Top\n"
        )
        self.assertEqual(
            broken_links(page),
            ["missing.md: no such file", "other.md#nowhere: no such heading in other.md"],
        )

    def test_anchors_number_repeated_headings(self) -> None:
        self.assertEqual(anchors("## Run\n```\n# not a heading\n```\n## Run\n"), {"run", "run-1"})


class CitationTests(SynchronousTestCase):
    def test_nothing_cites_a_document_outside_the_repository(self) -> None:
        files = shipped_files()
        self.assertGreater(len(files), 100)
        self.assertEqual(outside_citations(files), [])

    def test_a_citation_is_found(self) -> None:
        page = Path(self.mktemp())
        page.write_text("fine\nas SPEC \N{SECTION SIGN}2 says\n")
        self.assertEqual(outside_citations([page]), [f"{page.name}:2"])


class LayeringTests(SynchronousTestCase):
    def test_no_test_imports_proof(self) -> None:
        """proof/ builds on the tests' helpers, never the other way round."""
        importing = [
            path.name
            for path in sorted((ROOT / "tests").glob("*.py"))
            if re.search(r"^\s*(from|import) proof\b", path.read_text(), re.MULTILINE)
        ]
        self.assertEqual(importing, [])


class TestCaseNameTests(SynchronousTestCase):
    def test_every_header_names_an_existing_test_module(self) -> None:
        named = test_case_names()
        self.assertGreater(len(named), 30)
        for path, module in named:
            with self.subTest(file=str(path.relative_to(ROOT)), module=module):
                self.assertTrue(module.startswith("tests.test_"), module)
                test_file = ROOT / (module.replace(".", "/") + ".py")
                self.assertTrue(test_file.is_file(), f"{module} does not exist")


class TestKindTests(SynchronousTestCase):
    def test_every_test_file_has_a_kind(self) -> None:
        files = {path.name for path in (ROOT / "tests").glob("test_*.py")}
        self.assertEqual(sorted(files - set(KINDS)), [])

    def test_every_entry_names_a_test_file(self) -> None:
        for key in KINDS:
            with self.subTest(key=key):
                self.assertTrue((ROOT / "tests" / key.split("::")[0]).is_file())
