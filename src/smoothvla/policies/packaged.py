"""Checkpoints shipped inside the package (smoothvla/assets), named 'smoothvla:NAME'."""

from __future__ import annotations

from pathlib import Path

from smoothvla.errors import UserFileNotFoundError

PREFIX = "smoothvla:"


def resolve_checkpoint(name: str) -> str:
    """'smoothvla:NAME' -> the folder of checkpoint NAME in smoothvla/assets (each has a
    RECIPE.md that reproduces it); any other string is returned unchanged."""
    if not name.startswith(PREFIX):
        return name
    from importlib.resources import files

    assets = Path(str(files("smoothvla") / "assets"))
    path = assets / name.removeprefix(PREFIX)
    if not (path / "config.json").is_file():
        have = sorted(f"{PREFIX}{p.name}" for p in assets.iterdir() if p.is_dir()) if assets.is_dir() else []
        raise UserFileNotFoundError(f"{name}: no such packaged checkpoint (shipped: {have})")
    return str(path)
