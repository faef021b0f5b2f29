"""The docs a user reads: no machine paths, papers cited by name, and every file they point to
exists (docs/recipes.md: each claimed number has a committed config or script)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
NOTES = sorted((ROOT / "docs" / "notes").glob("*.md"))
CONFIGS = sorted(p for p in (ROOT / "configs").iterdir() if p.is_file())


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", USER_DOCS + NOTES + CONFIGS, ids=_name)
def test_no_machine_paths(path):
    hits = re.findall(r"(?<![\w.])/(?:work|tmp|root)/\S*", path.read_text(encoding="utf-8"))
    assert not hits, f"{_name(path)} names machine paths: {hits[:3]}"


@pytest.mark.parametrize("path", USER_DOCS + CONFIGS, ids=_name)
def test_papers_cited_by_name(path):
    hits = re.findall(r"seeds?[ /_]*0\d\d", path.read_text(encoding="utf-8"), flags=re.I)
    assert not hits, f"{_name(path)} cites a paper by a seed number: {hits[:3]} (docs/references.md)"


@pytest.mark.parametrize("path", USER_DOCS, ids=_name)
def test_files_the_docs_name_exist(path):
    text = path.read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:configs|benchmarks|docs)/[\w./-]*\w)", text))
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"{_name(path)} names files that are not in the repository: {missing}"


def test_the_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("run `bash configs/no-such-recipe.sh` from /tmp/x, as seed 000 says\n")
    assert re.findall(r"(?<![\w.])/(?:work|tmp|root)/\S*", page.read_text())
    assert re.findall(r"seeds?[ /_]*0\d\d", page.read_text(), flags=re.I)
    assert not (ROOT / "configs/no-such-recipe.sh").exists()
