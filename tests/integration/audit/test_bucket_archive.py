"""Retention into an S3-compatible bucket: a real S3 API server on loopback (moto's server, the
S3-compatible server that installs from the lock files; no MinIO binary exists here), driven
by boto3 exactly as in production. The archive lands in the bucket with its checkpoint, the
chain stays verifiable across the cut, and events are deleted only after the object was read
back: a bucket that cannot take the archive deletes nothing."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from deelrx_kit.clock import SystemClock
from deelrx_kit.settings import Settings
from deploy.local import infra
from services.audit.adapters import sql
from services.audit.adapters.archive_s3 import S3Archive
from services.audit.adapters.protobuf_records import event_record
from services.audit.archive_sink import ArchiveFile, ArchiveStoreError, describe, sink_from_settings
from services.audit.domain.checkpoints import Checkpoint
from services.audit.main import chain_archiver

from .conftest import event
from .test_checkpoints import _setup

ACCESS_KEY, SECRET_KEY = "archive-writer", "archive-secret-0123456789"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = infra.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _settings(tmp_path: Path, endpoint: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        audit_archive_url=url,
        audit_archive_s3_endpoint_url=endpoint,
        audit_archive_s3_region="eu-west-1",
        audit_archive_s3_access_key_id=ACCESS_KEY,
        audit_archive_s3_secret_access_key=SecretStr(SECRET_KEY),
        metrics_enabled=False,
    )


def _bucket(endpoint: str, name: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


async def test_the_archive_goes_to_the_bucket_and_the_chain_stays_verifiable(
    database_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = f"audit-archive-{uuid.uuid4().hex[:12]}"
    client = _bucket(s3_endpoint, bucket)
    audit, checkpoints, key, ids = await _setup(database_url)
    team = key.removeprefix("team:")
    sink = sink_from_settings(_settings(tmp_path, s3_endpoint, f"s3://{bucket}/deelrx/audit"))
    assert isinstance(sink, S3Archive)
    archiver = chain_archiver(audit.sessionmaker, checkpoints.key, SystemClock(), sink)

    location = await archiver.archive_chain(key, before=datetime.now(UTC) + timedelta(seconds=1))
    assert location == f"s3://{bucket}/deelrx/audit/team_{team}-0000000001-0000000030.ndjson.gz"
    stored = client.get_object(Bucket=bucket, Key=location.removeprefix(f"s3://{bucket}/"))
    lines = [json.loads(line) for line in gzip.decompress(stored["Body"].read()).decode().splitlines()]
    assert [x["id"] for x in lines[:-1]] == ids and lines[-1]["checkpoint"]["seq"] == 30
    # The object checks against its own signed checkpoint, without the database.
    signed = dict(lines[-1]["checkpoint"])
    signed["signed_at"] = datetime.fromisoformat(signed["signed_at"].replace("Z", "+00:00"))
    assert signed["head_hash"] == lines[-2]["hash"] and checkpoints.key.valid(Checkpoint(**signed))
    assert len(stored["Metadata"]["sha256"]) == 64
    assert list(sink.spool.iterdir()) == []  # nothing left behind in the spool

    async with audit.sessionmaker() as s:
        assert await sql.chain_events(s, key, after_seq=0, up_to_seq=100, limit=100) == []
    later = [event("team.updated", team_id=team) for _ in range(5)]
    await audit.record_events([event_record(e, datetime.now(UTC)) for e in later])
    check = await audit.verify_chain(team_id=team)
    assert check.ok and check.events_checked == 5 and check.checkpoints_checked == 1


async def test_nothing_is_deleted_when_the_bucket_cannot_take_the_archive(
    database_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    audit, checkpoints, key, ids = await _setup(database_url)
    sink = sink_from_settings(_settings(tmp_path, s3_endpoint, "s3://no-such-bucket/audit"))
    archiver = chain_archiver(audit.sessionmaker, checkpoints.key, SystemClock(), sink)
    assert await archiver.archive_chain(key, before=datetime.now(UTC) + timedelta(seconds=1)) is None
    async with audit.sessionmaker() as s:
        kept = await sql.chain_events(s, key, after_seq=0, up_to_seq=100, limit=100)
    assert [e.event.id for e in kept] == ids
    assert (await audit.verify_chain(team_id=key.removeprefix("team:"))).ok


def test_the_archive_url_chooses_the_sink(tmp_path: Path) -> None:
    from services.audit.adapters.archive_dir import DirectoryArchive

    plain = sink_from_settings(Settings(data_dir=tmp_path, metrics_enabled=False))
    assert isinstance(plain, DirectoryArchive) and plain.directory == tmp_path / "audit-archive"
    as_file = sink_from_settings(Settings(data_dir=tmp_path, audit_archive_url=f"file://{tmp_path}/a"))
    assert isinstance(as_file, DirectoryArchive) and as_file.directory == tmp_path / "a"
    bucket = sink_from_settings(_settings(tmp_path, "http://127.0.0.1:1", "s3://b/p/q/"))
    assert isinstance(bucket, S3Archive) and bucket.location("x.gz") == "s3://b/p/q/x.gz"
    with pytest.raises(ValueError):
        sink_from_settings(Settings(data_dir=tmp_path, audit_archive_url="ftp://host/x"))
    with pytest.raises(ValueError):
        sink_from_settings(Settings(data_dir=tmp_path, audit_archive_url="s3:///prefix-only"))


async def test_a_copy_that_reads_back_different_is_refused(tmp_path: Path, s3_endpoint: str) -> None:
    """The read-back comparison itself: an object whose bytes are not what was meant is refused
    (here the expected digest is not that of the bytes; in production, a damaged upload)."""
    bucket = f"audit-archive-{uuid.uuid4().hex[:12]}"
    _bucket(s3_endpoint, bucket)
    sink = sink_from_settings(_settings(tmp_path, s3_endpoint, f"s3://{bucket}"))
    path = sink.spool / "x.ndjson.gz.tmp"
    path.write_bytes(gzip.compress(b'{"id":"evt_1"}\n'))
    good = describe("x.ndjson.gz", path)
    with pytest.raises(ArchiveStoreError):
        await sink.store(ArchiveFile(good.name, path, good.size, "0" * 64))
    with pytest.raises(ArchiveStoreError):
        await sink.store(ArchiveFile(good.name, path, good.size + 1, good.sha256))
    assert await sink.store(good) == f"s3://{bucket}/x.ndjson.gz"
