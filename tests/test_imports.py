"""Dependencies run one way (docs/dependency-rules.md): a static scan of every import in
src/smoothvla, those inside functions included, against the rules below. Imports under
`if TYPE_CHECKING:` never run and are left out (the Trajectory record names the policies'
ActionChunk type that way)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "smoothvla"

POLICY_ALGORITHM_CLI = ("smoothvla.policies", "smoothvla.algorithms", "smoothvla.commands",
                        "smoothvla.cli", "smoothvla.study")
SHARED_TYPES = ("smoothvla.types", "smoothvla.trajectory", "smoothvla.geometry")
# module or package -> what it must not import
RULES: dict[str, tuple[str, ...]] = {
    "smoothvla.metrics": POLICY_ALGORITHM_CLI,
    "smoothvla.rewards": POLICY_ALGORITHM_CLI,
    "smoothvla.envs": POLICY_ALGORITHM_CLI + ("smoothvla.experts",),
    "smoothvla.policies": ("smoothvla.envs", "smoothvla.data", "smoothvla.rewards",
                           "smoothvla.rollout", "smoothvla.experts", "smoothvla.eval",
                           "smoothvla.algorithms", "smoothvla.commands", "smoothvla.cli",
                           "smoothvla.study"),
    "smoothvla.algorithms": ("smoothvla.commands", "smoothvla.cli", "smoothvla.study"),
    "smoothvla.rollout": ("smoothvla.algorithms", "smoothvla.commands", "smoothvla.cli",
                          "smoothvla.study"),
    "smoothvla.eval": ("smoothvla.algorithms", "smoothvla.commands", "smoothvla.cli",
                       "smoothvla.study"),
    "smoothvla.experts": ("smoothvla.policies", "smoothvla.algorithms", "smoothvla.commands",
                          "smoothvla.cli", "smoothvla.study"),
    "smoothvla.study": ("smoothvla.commands", "smoothvla.cli"),
    # the shared vocabulary: NumPy and the standard library only
    **{name: ("smoothvla",) for name in SHARED_TYPES},
}
SHARED_TYPES_MAY_IMPORT = ("numpy",)


def module_name(path: Path, root: Path) -> str:
    """`root/a/b.py` -> `PKG.a.b` (PKG = root's folder name); `root/a/__init__.py` -> `PKG.a`."""
    parts = (root.name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path, root: Path) -> list[tuple[str, int]]:
    """(module, line) of every import in the file, relative imports resolved; for
    `from X import y` both X and X.y (y may be a submodule)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((base, node.lineno))
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path = SRC) -> list[str]:
    """Every import in the package at `root` that breaks `RULES`, as 'file:line: A imports B'."""
    out = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        banned = [b for owner, bans in RULES.items() if _within(importer, owner) for b in bans]
        shared = any(_within(importer, s) for s in SHARED_TYPES)
        for module, line in imported_modules(path, root):
            bad = any(_within(module, b) for b in banned)
            if shared and not bad:  # only the standard library and NumPy
                top = module.partition(".")[0]
                bad = top not in (*SHARED_TYPES_MAY_IMPORT, "__future__") and not _stdlib(top)
            if bad:
                out.append(f"{path.relative_to(root.parent)}:{line}: {importer} imports {module}")
    return sorted(set(out))


def _stdlib(top: str) -> bool:
    import sys

    return top in sys.stdlib_module_names


def test_no_forbidden_import_in_the_package():
    found = violations()
    assert not found, "imports against docs/dependency-rules.md:\n" + "\n".join(found)


def test_the_scan_finds_forbidden_imports(tmp_path):
    root = tmp_path / "smoothvla"
    for package in ("metrics", "policies", "algorithms", "envs"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "metrics" / "bad.py").write_text(
        "import numpy as np\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from smoothvla.policies import Policy  # never runs: allowed\n"
        "def jerk():\n"
        "    from smoothvla.policies.vla import CompactVLA  # inside a function: counts\n"
        "    return CompactVLA\n")
    (root / "envs" / "tabletop.py").write_text("from ..algorithms import grpo\n")
    (root / "policies" / "vla.py").write_text("from smoothvla import envs\n")
    (root / "types.py").write_text("import torch\nimport numpy\nimport math\n")
    found = violations(root)
    assert found == [
        "smoothvla/envs/tabletop.py:1: smoothvla.envs.tabletop imports smoothvla.algorithms",
        "smoothvla/envs/tabletop.py:1: smoothvla.envs.tabletop imports smoothvla.algorithms.grpo",
        "smoothvla/metrics/bad.py:6: smoothvla.metrics.bad imports smoothvla.policies.vla",
        "smoothvla/metrics/bad.py:6: smoothvla.metrics.bad imports "
        "smoothvla.policies.vla.CompactVLA",
        "smoothvla/policies/vla.py:1: smoothvla.policies.vla imports smoothvla.envs",
        "smoothvla/types.py:1: smoothvla.types imports torch",
    ]
