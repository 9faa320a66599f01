"""The docs stand alone: a clone of the repository is all a user has, so no tracked file cites a
page that lives outside it, and every relative link in the README and docs/ resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Pages that once lived beside the repository (written in pieces so this file names none).
OUTSIDE = ("PAPER" + ".md", "TOY-STUDY" + ".md", "ENVIRONMENT" + ".md", "DESIGN" + ".md",
           ".." + "/shared")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def markdown_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_no_tracked_file_cites_a_page_outside_the_repository() -> None:
    found = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        for name in OUTSIDE:
            if name.encode() in data:
                line = data[: data.index(name.encode())].count(b"\n") + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert not found, ("these cite pages outside the repository; cite docs/paper.md, "
                       "docs/machines.md or docs/toy-study.md instead:\n" + "\n".join(found))


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not a link
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]  # skip URLs, anchors


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_files_that_exist(page: Path) -> None:
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_the_link_pattern_finds_links() -> None:
    page = "see [paper](docs/paper.md#data), ![fig](a.png) and [site](https://x.org) [x](#top)"
    assert [m.group(1) for m in LINK.finditer(page)] == [
        "docs/paper.md#data", "a.png", "https://x.org", "#top"]
