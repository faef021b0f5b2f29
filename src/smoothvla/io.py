"""Atomic file writes (a crash leaves either the old file or the new one, never half of one),
the trimming of a JSONL log back to a checkpoint, and the lock that keeps one writer per run
directory.

Two ways to write atomically, used everywhere a file or folder is published:
`atomic_write(path, write)` (and its bytes/text/JSON forms) for what is written in one go
through a file object; `atomic_path(path)` for what a library writes by name (an HDF5 file,
a memory map, a folder of checkpoint files): it hands out `temporary_path(path)`, then
`publish` renames it into place. Those temporaries are named `.NAME.tmp-PID`, which
`remove_stale_temp_files` sweeps after a killed run."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable

from smoothvla.errors import UserError, UserFileNotFoundError


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call `write(f)` on a new temporary file beside `path`, fsync it, then rename it into
    place. An error or a kill leaves `path` as it was (after an error the temporary file is
    removed; a kill may leave a stray `.NAME.*.tmp`).

    The file gets the permissions of any new file, 0666 minus the umask (tempfile.mkstemp
    would make it 0600: unreadable by the user's group, unlike the rest of a run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _new_temporary(path: Path) -> tuple[Path, int]:
    """A file that did not exist, `.NAME.PID-RANDOM.tmp` beside `path`, opened for writing."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def temporary_path(path: str | Path) -> Path:
    """`.NAME.tmp-PID` beside `path`: where this process writes `path` before `publish`."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def publish(tmp: str | Path, path: str | Path) -> Path:
    """Rename the finished file or folder `tmp` to `path` in one step. An existing folder at
    `path` is first renamed aside and removed only after the swap, so a kill leaves either
    the old folder or the new one at `path`."""
    tmp, path = Path(tmp), Path(path)
    old = None
    if tmp.is_dir() and path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def discard(tmp: str | Path) -> None:
    """Remove an unfinished temporary file or folder (nothing if there is none)."""
    tmp = Path(tmp)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, folder: bool = False) -> Iterator[Path]:
    """`with atomic_path(path) as tmp:` write the file `tmp` (with `folder`, the files of the
    folder `tmp`, created empty), which becomes `path` when the block ends (`publish`). An
    error in the block removes `tmp` and leaves `path` as it was; a kill leaves `tmp` for
    `remove_stale_temp_files`."""
    path = Path(path)
    tmp = temporary_path(path)
    discard(tmp)  # left by an earlier process with the same id
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        discard(tmp)
        raise
    publish(tmp, path)


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL log; a truncated last line (crash mid-write) is skipped."""
    out = []
    if not Path(path).is_file():
        raise UserFileNotFoundError(f"{path}: no such file")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise UserError(f"{path}:{number}: not JSON ({err})") from None
    return out


def check_writable_output(path: str | Path, kind: str) -> Path:
    """UserError unless `path` can be written as a `kind` ('file' or 'folder'): call it before
    the work starts, so a bad output path fails in a second, not after an hour. `path` may
    exist (a file for 'file', a folder for 'folder') or not; missing parents are fine when
    the nearest existing one is a writable folder (they are created when written)."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    path = Path(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            raise UserError(f"{path} is a folder; the output must be a file path")
        if kind == "folder" and not path.is_dir():
            raise UserError(f"{path} is a file; the output must be a folder")
        if not os.access(path, os.W_OK):
            raise UserError(f"{path} is not writable (permissions or a read-only file system)")
    parent = path.parent
    while not parent.exists():  # pathlib's parent of '.' is '.', which exists
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {parent} is not writable "
                        "(permissions or a read-only file system)")
    return path


def remove_stale_temp_files(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the `.NAME.tmp-PID` files and folders in `folder` (any NAME when `name` is
    None) whose writing process PID is dead: what a killed run leaves behind (`collect`'s
    HDF5, SFT's feature cache, checkpoints being saved). A live PID's are kept, so a run
    still writing is never disturbed. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or (name is not None and match[1] != name) or _pid_alive(int(match[2])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


_TEMP_NAME = re.compile(r"^\.(.+)\.tmp-(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def truncate_jsonl(path: str | Path, key: str, below: float) -> Path:
    """Keep only the records of a JSONL log whose `key` is < `below`, atomically: what a
    resumed run does with the rows it is about to redo (train: `iteration` < the
    checkpoint's iteration; sft: `step` <= the checkpoint's step). Lines that are not
    JSON objects with a numeric `key` (a line cut short by a kill) go too. A missing file
    becomes an empty one."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return atomic_write_text(path, "".join(ln + "\n" for ln in lines if _key_of(ln, key) < below))


def _key_of(line: str, key: str) -> float:
    try:
        return float(json.loads(line)[key])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return float("inf")


def lock_directory(directory: str | Path, what: str) -> IO[str]:
    """Take the exclusive lock of `directory/.lock` (flock) and return its open file: the lock
    holds until that file is closed (use it in a `with`) or the process ends, a kill
    included. A directory another process (or another open run) holds is a UserError:
    two writers would interleave their logs and overwrite each other's checkpoints. On a
    file system without locks (some NFS mounts) the run goes on unlocked."""
    import fcntl

    Path(directory).mkdir(parents=True, exist_ok=True)
    f = open(Path(directory) / ".lock", "a")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise UserError(f"{directory} is in use by another {what}; wait for it to finish or "
                        "choose another directory") from None
    except OSError:  # ENOLCK and the like: locking unsupported here, not a second writer
        pass
    return f
