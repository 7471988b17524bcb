"""The README stays short and the docs stay reachable: every page is linked from the README, and
every relative link in them leads to a file that exists and, with a #anchor into a markdown file,
to a heading of that file (as GitHub names headings)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from retrain.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (links and headings there are not markdown)."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (letters, digits, `_`, `-`
    and spaces stay), spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's markdown links, inline code left out."""
    return [target for line in prose(page) for target in LINK.findall(CODE_SPAN.sub("", line))]


def relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("//")


def test_the_rules_read_headings_and_links_as_github_does():
    assert slug("Scale out: a Spark cluster and an MLflow server") == (
        "scale-out-a-spark-cluster-and-an-mlflow-server"
    )
    assert slug("The `retrain` command") == "the-retrain-command"
    assert slug("Configuration (no code changes)") == "configuration-no-code-changes"
    assert slug("What is guaranteed, and what is not") == "what-is-guaranteed-and-what-is-not"
    assert slug("Starting suites from data: `retrain suggest-suite`") == (
        "starting-suites-from-data-retrain-suggest-suite"
    )
    line = "see [the `x` page](a.md#b) and `[not](a link)` and [web](https://example.com)"
    assert LINK.findall(CODE_SPAN.sub("", line)) == ["a.md#b", "https://example.com"]


def test_the_readme_has_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail into docs/"


def test_there_are_docs_pages_and_each_has_a_title_first():
    assert DOCS, "no docs/*.md"
    for page in DOCS:
        first = page.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{page.name} does not start with a title"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / unquote(target.split("#", 1)[0])).resolve()
        for target in links(README)
        if relative(target) and target.split("#", 1)[0]
    }
    missing = [page.name for page in DOCS if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in links(page):
        if not relative(target):
            continue
        path, _, anchor = target.partition("#")
        path = path.split("?", 1)[0]
        destination = (page.parent / unquote(path)).resolve() if path else page.resolve()
        if not destination.is_relative_to(REPO_ROOT.resolve()):
            broken.append(f"{target}: outside the repository")
        elif not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, broken
