"""The docs stand alone: a clone of the repository is all a user has, so no tracked file cites a
page that lives outside it, and every relative link in the README and docs/ resolves. The study-file
reference (docs/study-file.md) is generated from the code and says what load_study does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from sweeps.study import StudyError, load_study
from sweeps.study.reference import COMMAND, parts, reference_markdown
from sweeps.study.yamlpos import Section

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


# ---------------------------------------------------------------- the study-file reference

CPT = REPO / "sweeps" / "studies" / "cpt.yaml"
# A study in which every example of the reference must load when set alone (the paper's lattice).
MINIMAL = """\
name: t
data: {store: /nonexistent/store}
budgets: [8k, 16k, 32k, 64k, 128k]
sizes: [tiny-16k, tiny-50k, tiny-100k, tiny-200k, {name: my-300k, d_model: 768, n_layers: 12,
        n_heads: 12, n_kv_heads: 12, d_mlp: 2688, rope_theta: 10000.0, norm_eps: 1.0e-5,
        tie_embeddings: false}]
recipes:
  standard: {weight_decay: 0.1}
  regularized:
    search: adaptive
    start: {epochs: 8, lr: 3.0e-3, weight_decay: 0.8}
    budgets: [128k]
    repeat: {budgets: [64k], sizes: [tiny-50k]}
ensembles: {from: regularized, members: 4}
distill:
  - {teacher: ensemble, members: 2, teacher_size: tiny-100k, student_size: tiny-100k, budget: 128k}
eval: {tasks: [arc_easy]}
"""


def test_the_study_file_page_holds_the_generated_reference() -> None:
    page = (REPO / "docs" / "study-file.md").read_text()
    assert page == reference_markdown(), f"docs/study-file.md is out of date: run `{COMMAND}`"


def dotted(path: tuple) -> str:
    """A key path as the reference writes it: recipes.<name>.search, distill[].name."""
    out = ""
    for i, p in enumerate(path):
        if isinstance(p, int):
            out += "[]"
        else:
            out += ("." if out else "") + ("<name>" if path[:i] == ("recipes",) else str(p))
    return out


def documented() -> set[str]:
    return {f"{p.path}.{r.key}" if p.path else r.key for p in parts() for r in p.rows}


def test_the_reference_lists_exactly_the_keys_load_study_reads(tmp_path: Path, monkeypatch) -> None:
    read: set[str] = set()
    raw, has = Section.raw, Section.has

    def spy_raw(self, key, default=None):  # noqa: ANN001, ANN202
        read.add(dotted((*self.path, key)))
        return raw(self, key, default)

    def spy_has(self, key):  # noqa: ANN001, ANN202
        read.add(dotted((*self.path, key)))
        return has(self, key)

    monkeypatch.setattr(Section, "raw", spy_raw)
    monkeypatch.setattr(Section, "has", spy_has)
    (tmp_path / "study.yaml").write_text(MINIMAL)
    load_study(tmp_path / "study.yaml")
    load_study(CPT)  # the base section
    keys = documented() - {k for k in documented() if k.startswith("data.prepare.")}  # a plain mapping
    assert read - keys == {"recipes.<name>"}, "keys load_study reads that the reference lacks"
    assert keys - read == set(), "keys the reference lists that load_study never reads"


def set_key(tmp_path: Path, part: str, key: str, value: str, needs: str | None = None) -> Path:
    """A study file: MINIMAL (cpt.yaml for base keys) with ``part.key`` set to ``value``."""
    if part.startswith("base"):
        (tmp_path / "bases").mkdir(exist_ok=True)
        (tmp_path / "bases" / "llama-3.2-3b.json").write_text((CPT.parent / "bases" / "llama-3.2-3b.json").read_text())
    doc = yaml.safe_load(CPT.read_text() if part.startswith("base") else MINIMAL)
    target = doc
    for name in [p for p in part.replace("[]", ".[]").split(".") if p]:
        if name == "<name>":
            target = target["regularized"]
        elif name == "[]":  # the list's first mapping: distill's entry, sizes' custom size
            target = next(t for t in target if isinstance(t, dict))
        else:
            target = target.setdefault(name, {})
    if part == "data.prepare" or (part, key) == ("data", "prepare"):
        del doc["data"]["store"]  # one of store and prepare
    target.update(yaml.safe_load(needs or "{}"))
    target[key] = yaml.safe_load(value)
    if isinstance(target.get("start"), dict):
        target["start"].pop(key, None)  # an axis the recipe now fixes is not a search start
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


ROWS = [(p.path, r) for p in parts() for r in p.rows]


@pytest.mark.parametrize("part, row", [(p, r) for p, r in ROWS if r.example is not None],
                         ids=lambda v: v if isinstance(v, str) else v.key)
def test_every_example_loads(tmp_path: Path, part: str, row, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # where relative paths of the examples are looked for
    if (part, row.key) == ("data.prepare", "tokenizer"):
        (tmp_path / row.example).write_text("{}")  # it must exist before the store does
    load_study(set_key(tmp_path, part, row.key, row.example, row.needs))


def listed(message: str) -> set[str]:
    """The values an error message offers: '... is not one of a, b' or '... must be a or b, got'."""
    found = re.search(r"one of (.+?)(?:, got .*)?$", message) or re.search(r"must be (.+?)(?:, got .*)?$", message)
    assert found, message
    return set(re.split(r", | or ", found.group(1)))


@pytest.mark.parametrize("part, row", [(p, r) for p, r in ROWS if r.choices],
                         ids=lambda v: v if isinstance(v, str) else v.key)
def test_choices_are_the_ones_the_loader_accepts(tmp_path: Path, part: str, row) -> None:  # noqa: ANN001
    many = row.type.startswith("list")
    with pytest.raises(StudyError) as error:
        load_study(set_key(tmp_path, part, row.key, "[__nope__]" if many else "__nope__", row.needs))
    if many:  # each is accepted (a list's error may name more values than a study accepts)
        for choice in row.choices:
            load_study(set_key(tmp_path, part, row.key, f"[{choice}]", row.needs))
    else:
        assert listed(str(error.value)) == set(row.choices)
