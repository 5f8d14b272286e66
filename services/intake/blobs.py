"""Where documents' bytes live: a pluggable blob store, content-addressed by SHA-256.

`blob_store()` picks it from the configuration: a local directory (`LocalBlobStore`, the default) or an
S3-compatible bucket (`S3BlobStore`, `INTAKE_BLOB_STORE=s3`). Both answer a digest they do not hold with
`NotFound`, so a document whose bytes are elsewhere is a 404, not a 500.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from motcua.config import env, var_dir
from motcua.errors import NotFound


class BlobStore(Protocol):
    def put(self, sha256: str, data: bytes) -> None: ...

    def get(self, sha256: str) -> bytes: ...


def _checked(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256 hex digest")
    return sha256


def _missing(sha256: str) -> NotFound:
    return NotFound(f"the content of document {sha256} is not in the blob store", field="sha256")


class LocalBlobStore:
    """Files under `root/ab/cd/<sha256>`, written atomically (temp file + rename); the same content
    is stored once. Only the instances that share `root` (one host, or a shared volume) see a file."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / _checked(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            raise _missing(sha256) from None


class S3BlobStore:
    """Objects `documents/<sha256>` in one bucket of an S3-compatible service (AWS S3, MinIO, Ceph RGW…).
    The bucket is provisioned by operations, not created here."""

    PREFIX = "documents/"

    def __init__(self, bucket: str, *, endpoint: str | None = None, region: str = "us-east-1",
                 access_key: str | None = None, secret_key: str | None = None):
        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                          s3={"addressing_style": "path"}))

    def key(self, sha256: str) -> str:
        return self.PREFIX + _checked(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=data)

    def get(self, sha256: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise _missing(sha256) from None
            raise


def blob_store(config: dict) -> BlobStore:
    """The store `INTAKE_BLOB_STORE` names: `local` (default; the directory is the container config's
    `BLOB_DIR`, else `INTAKE_BLOB_DIR`, else `var/documents`) or `s3` (`INTAKE_S3_BUCKET`, required, and
    `INTAKE_S3_ENDPOINT`, `INTAKE_S3_REGION`, `INTAKE_S3_ACCESS_KEY`, `INTAKE_S3_SECRET_KEY`; without
    keys, boto3's usual credential chain applies)."""
    kind = env("INTAKE_BLOB_STORE", "local")
    if kind == "local":
        directory = config.get("BLOB_DIR") or env("INTAKE_BLOB_DIR") or str(var_dir() / "documents")
        return LocalBlobStore(Path(directory))
    if kind == "s3":
        bucket = env("INTAKE_S3_BUCKET")
        if bucket is None:
            raise SystemExit("INTAKE_S3_BUCKET must be set when INTAKE_BLOB_STORE=s3")
        return S3BlobStore(bucket, endpoint=env("INTAKE_S3_ENDPOINT"), region=env("INTAKE_S3_REGION", "us-east-1"),
                           access_key=env("INTAKE_S3_ACCESS_KEY"), secret_key=env("INTAKE_S3_SECRET_KEY"))
    raise SystemExit(f"INTAKE_BLOB_STORE must be 'local' or 's3', not {kind!r}")
