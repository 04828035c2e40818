"""A value read from a file, reloaded when the file changes (the policy, the contact book)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class FileReloader(Generic[T]):
    """Holds what a file says and re-reads it when the file's mtime or size changes.

    At start-up `load` raising means the service must not start. Later, a malformed edit
    raises on every refresh until it is fixed, while the value already in force stays in
    force. With no path there is nothing to watch: the value is `empty()` for good.
    """

    def __init__(
        self,
        path: str | Path | None,
        load: Callable[[Path], T],
        *,
        empty: Callable[[], T] | None = None,
        same: Callable[[T, T], bool] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._load = load
        self._same = same
        self._stamp = self._file_stamp()
        if self.path is not None:
            self.value = load(self.path)
        elif empty is not None:
            self.value = empty()
        else:
            raise ValueError("a reloader without a path needs an empty value")

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh(self) -> bool:
        """Reload if the file changed; True when the value in force changed.

        A reloaded value that `same` finds equal to the one in force is not a change.
        """
        if self.path is None:
            return False
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        candidate = self._load(self.path)
        self._stamp = stamp
        if self._same is not None and self._same(candidate, self.value):
            return False
        self.value = candidate
        return True
