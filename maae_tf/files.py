"""Atomic file writes: a reader (a resumed run, a server, a second command) never sees half a
file. Text goes to a temporary file beside the target, then `os.replace` moves it into place."""

from __future__ import annotations

import os


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (creating the parent folder)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
