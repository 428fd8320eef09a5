"""Where retention puts its archives: a directory or an S3-compatible bucket.

A sink stores one finished archive file and reads the stored copy back (size and SHA-256)
before it answers; retention deletes events only after that answer, so a lost or damaged
upload never loses events. Implementations: adapters/archive_dir.py, adapters/archive_s3.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from deelrx_kit.settings import Settings


class ArchiveStoreError(Exception):
    """The archive could not be stored, or the stored copy differs from what was written."""


@dataclass(frozen=True)
class ArchiveFile:
    """A finished archive in the local spool: what to store, and what must come back."""

    name: str  # e.g. team_tm_x-0000000001-0000000030.ndjson.gz
    path: Path
    size: int
    sha256: str


def describe(name: str, path: Path) -> ArchiveFile:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return ArchiveFile(name, path, size, digest.hexdigest())


class ArchiveSink(Protocol):
    @property
    def spool(self) -> Path:
        """Where archives are written before `store` (the target itself for a directory)."""

    async def store(self, archive: ArchiveFile) -> str:
        """Store, read back and compare; the stored location (a path or s3:// URL), or raise
        ArchiveStoreError."""


def sink_from_settings(settings: Settings) -> ArchiveSink:
    """DEELRX_AUDIT_ARCHIVE_URL: `s3://bucket/prefix`, `file:///path`, or empty for the
    directory DEELRX_AUDIT_ARCHIVE_DIR (default <data dir>/audit-archive)."""
    from services.audit.adapters.archive_dir import DirectoryArchive

    url = settings.audit_archive_url.strip()
    if not url:
        return DirectoryArchive(Path(settings.audit_archive_dir or settings.data_dir / "audit-archive"))
    parts = urlsplit(url)
    if parts.scheme == "file":
        return DirectoryArchive(Path(parts.path))
    if parts.scheme == "s3":
        from services.audit.adapters.archive_s3 import S3Archive

        return S3Archive.from_settings(settings, bucket=parts.netloc, prefix=parts.path.lstrip("/"))
    raise ValueError("DEELRX_AUDIT_ARCHIVE_URL must be s3://bucket/prefix or file:///path")
