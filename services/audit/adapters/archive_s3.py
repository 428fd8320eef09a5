"""Archives as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW...), with boto3.

boto3 blocks, so every call runs in a worker thread. `store` uploads the spooled file, then
downloads the object and compares its size and SHA-256 with what was written: only a copy
read back intact lets retention delete events. The SHA-256 also travels as object metadata
(`x-amz-meta-sha256`), so the archive can be checked later without the database.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from deelrx_kit.settings import Settings
from services.audit.archive_sink import ArchiveFile, ArchiveStoreError

log = structlog.get_logger(__name__)

CHUNK = 1 << 20


class S3Archive:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, spool: Path) -> None:
        if not bucket:
            raise ValueError("an S3 archive needs a bucket (s3://bucket/prefix)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._spool = spool

    @classmethod
    def from_settings(cls, settings: Settings, *, bucket: str, prefix: str) -> S3Archive:
        secret = settings.audit_archive_s3_secret_access_key.get_secret_value()
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.audit_archive_s3_endpoint_url or None,
            region_name=settings.audit_archive_s3_region or None,
            # Empty: boto3's own chain (environment, instance or pod role).
            aws_access_key_id=settings.audit_archive_s3_access_key_id or None,
            aws_secret_access_key=secret or None,
            config=Config(
                # S3-compatible servers at an endpoint of their own mostly want path-style URLs.
                s3={"addressing_style": "path" if settings.audit_archive_s3_endpoint_url else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        return cls(client, bucket, prefix, spool=settings.data_dir / "audit-archive-spool")

    @property
    def spool(self) -> Path:
        self._spool.mkdir(parents=True, exist_ok=True)
        return self._spool

    def key_of(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key_of(name)}"

    def _store(self, archive: ArchiveFile) -> str:
        key = self.key_of(archive.name)
        try:
            with open(archive.path, "rb") as body:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/gzip",
                    Metadata={"sha256": archive.sha256},
                )
            got = self.client.get_object(Bucket=self.bucket, Key=key)
            digest = hashlib.sha256()
            size = 0
            for chunk in got["Body"].iter_chunks(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveStoreError(f"storing {self.location(archive.name)} failed: {exc}") from None
        if (size, digest.hexdigest()) != (archive.size, archive.sha256):
            raise ArchiveStoreError(f"the stored copy of {self.location(archive.name)} differs")
        archive.path.unlink(missing_ok=True)
        return self.location(archive.name)

    async def store(self, archive: ArchiveFile) -> str:
        return await asyncio.to_thread(self._store, archive)
