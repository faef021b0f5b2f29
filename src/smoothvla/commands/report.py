"""`smoothvla report`: tables, figures and an HTML report from evaluation results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smoothvla.errors import UserError
from smoothvla.io import check_writable_output
from smoothvla.report.build import build_report


@dataclass
class Config:
    results: tuple[Path, ...]
    """Evaluation results (JSONL written by `smoothvla eval`)."""
    out: Path = Path("runs/report")
    """Folder for report.md, report.tex, report.html and figures/."""
    logs: tuple[Path, ...] = ()
    """RL training logs (JSONL, one record per update) for the training-curve figure."""
    title: str = "smoothvla study"
    """Title of the report."""

    def __post_init__(self) -> None:
        if not self.results:
            raise UserError("give at least one results file with --results")


def run(cfg: Config) -> int:
    check_writable_output(cfg.out, "folder")
    files = build_report(cfg.results, cfg.out, cfg.logs, cfg.title)
    print(f"report: {files.html}  ({len(files.figures)} figures; markdown {files.markdown}, "
          f"LaTeX {files.latex})")
    return 0
