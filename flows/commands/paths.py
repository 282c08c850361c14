"""Checks of the paths a command is given, made before the heavy packages load (torch takes
seconds to import): a mistake is one line at once, not after the wait."""

from __future__ import annotations

from pathlib import Path

from ovseg_core.errors import OvsegError

CHECKPOINT_FILES = ("model.safetensors", "config.json")
"""What a model checkpoint folder holds (ovseg_core.checkpoint)."""


def checkpoint_folder(path: str, flag: str = "--checkpoint") -> str:
    """The checkpoint folder `path` names: the folder itself, or the folder of one of its
    files (`model.safetensors`, `config.json`). OvsegError saying what to give otherwise."""
    given = Path(path)
    folder = given.parent if given.is_file() and given.name in CHECKPOINT_FILES else given
    if given.is_file() and folder is given:
        raise OvsegError(f"{flag} {path} is a file; give the checkpoint folder, the one that "
                         f"holds {' and '.join(CHECKPOINT_FILES)}")
    if not folder.is_dir():
        raise OvsegError(f"{flag} {path}: not found; give the checkpoint folder that "
                         f"holds {' and '.join(CHECKPOINT_FILES)} (`ovseg train --out` or "
                         "`ovseg run` writes one)")
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise OvsegError(f"{flag} {path} is not a model checkpoint: {folder} has no "
                         f"{' and no '.join(missing)}")
    return str(folder)


def existing(path: str, flag: str, what: str = "file or folder") -> str:
    """`path` when it exists; OvsegError naming `flag` otherwise."""
    if not Path(path).exists():
        raise OvsegError(f"{flag} {path}: no such {what}")
    return path
