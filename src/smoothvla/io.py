"""Atomic file writes (a crash leaves either the old file or the new one, never half of one),
the trimming of a JSONL log back to a checkpoint, and the lock that keeps one writer per run
directory."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable

from smoothvla.errors import UserError


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


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL log; a truncated last line (crash mid-write) is skipped."""
    out = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not JSON ({err})") from None
    return out


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
