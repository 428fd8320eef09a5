"""Archives as files in a directory: written beside their final name, fsynced, renamed into
place (atomic on one filesystem), the directory fsynced, and the file read back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.audit.archive_sink import ArchiveFile, ArchiveStoreError, describe


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryArchive:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def spool(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    def _store(self, archive: ArchiveFile) -> str:
        final = self.directory / archive.name
        _fsync(archive.path)
        os.replace(archive.path, final)
        _fsync(self.directory)  # the rename itself survives a crash
        stored = describe(archive.name, final)
        if (stored.size, stored.sha256) != (archive.size, archive.sha256):
            raise ArchiveStoreError(f"the stored copy of {archive.name} differs")
        return str(final)

    async def store(self, archive: ArchiveFile) -> str:
        return await asyncio.to_thread(self._store, archive)
