"""Where assets leave files for the next asset: a local folder, or an S3 prefix when steps run on
several machines.

Every write goes to a temporary local file first and only replaces the destination when the writer
finishes without an error (an atomic rename locally, a single upload on S3), so a failed run never
leaves a truncated file where a good one was. A run killed mid-write (kill -9, a lost machine) leaves
its temporary file behind; the temporary file's name says which process on which host wrote it, and
the next write into the same folder removes those whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, field_validator


class WorkingStorage(dg.ConfigurableResource):
    """Where the steps leave files for each other: each day's raw records, flattened Parquet files and
    manifests. A local folder on one machine, or s3://bucket/prefix when steps run on several machines.
    Files are written whole (a temporary name, then a rename or a single upload) and a rerun replaces
    its day's."""

    root: str = Field(
        description="A local folder (absolute, or relative to the current directory) or an S3 URI "
        "`s3://bucket/prefix` for deployments whose steps run on different machines."
    )
    s3: S3Resource | None = Field(
        default=None, description="S3 client settings; required when `root` is an s3:// URI."
    )
    sse: str = Field(
        default="AES256",
        description="Server-side encryption of objects written to an s3:// root ('AES256' or 'aws:kms').",
    )

    @field_validator("root")
    @classmethod
    def _root_is_usable(cls, root: str) -> str:
        if not root.strip():
            raise ValueError("WorkingStorage.root must not be empty")
        if root.startswith("s3://") and not root[5:].split("/")[0]:
            raise ValueError(f"WorkingStorage.root {root!r} has no bucket name")
        return root.rstrip("/")

    @property
    def _is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def _bucket_and_key(self, relative: str) -> tuple[str, str]:
        bucket, _, prefix = self.root[len("s3://") :].partition("/")
        return bucket, f"{prefix}/{relative}" if prefix else relative

    def _client(self) -> Any:
        if self.s3 is None:
            raise ValueError(f"WorkingStorage.s3 must be configured for root {self.root!r}")
        return self.s3.get_client()

    def uri(self, relative: str) -> str:
        if self._is_s3:
            return f"{self.root}/{relative}"
        return str(Path(self.root).resolve() / relative)

    @contextlib.contextmanager
    def writer(self, relative: str) -> Iterator[IO[bytes]]:
        """A binary file that replaces `relative` only if the block exits without an error."""
        local_dir = None if self._is_s3 else Path(self.root, relative).parent
        if local_dir is not None:
            local_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned_partials(local_dir or Path(tempfile.gettempdir()))  # an s3:// root spools in /tmp
        handle = tempfile.NamedTemporaryFile(dir=local_dir, prefix=_partial_prefix(), delete=False)
        try:
            with handle:
                yield handle
            if self._is_s3:
                bucket, key = self._bucket_and_key(relative)
                self._client().upload_file(
                    handle.name, bucket, key, ExtraArgs={"ServerSideEncryption": self.sse}
                )
            else:
                os.replace(handle.name, Path(self.root, relative))
        finally:
            if os.path.exists(handle.name):
                os.unlink(handle.name)

    @contextlib.contextmanager
    def reader(self, relative: str) -> Iterator[IO[bytes]]:
        if not self._is_s3:
            with open(Path(self.root, relative), "rb") as handle:
                yield handle
            return
        bucket, key = self._bucket_and_key(relative)
        with tempfile.TemporaryFile() as spool:
            self._client().download_fileobj(bucket, key, spool)
            spool.seek(0)
            yield spool

    def exists(self, relative: str) -> bool:
        if not self._is_s3:
            return Path(self.root, relative).exists()
        bucket, key = self._bucket_and_key(relative)
        listed = self._client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in listed.get("Contents", []))

    def size(self, relative: str) -> int:
        if not self._is_s3:
            return Path(self.root, relative).stat().st_size
        bucket, key = self._bucket_and_key(relative)
        return int(self._client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def write_json(self, relative: str, value: Any) -> None:
        with self.writer(relative) as handle:
            handle.write(json.dumps(value, indent=2, sort_keys=True).encode("utf-8"))

    def read_json(self, relative: str) -> Any:
        with self.reader(relative) as handle:
            return json.loads(handle.read())

    def clear(self, relative_prefix: str) -> None:
        """Remove everything under a folder, so that a rerun leaves no stale extras behind."""
        if not self._is_s3:
            shutil.rmtree(Path(self.root, relative_prefix), ignore_errors=True)
            return
        bucket, prefix = self._bucket_and_key(relative_prefix.rstrip("/") + "/")
        client = self._client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def _partial_prefix(pid: int | None = None) -> str:
    # Host and process id in the name: enough to prove later that the writer is gone.
    return f".partial-{socket.gethostname()}-{pid or os.getpid()}-"


def remove_abandoned_partials(folder: Path) -> list[Path]:
    """Remove the temporary files in `folder` whose writer, a process on this host, no longer exists
    (killed mid-write); returns them. Files of other hosts or of live processes are left alone."""
    removed = []
    for path in folder.glob(".partial-*"):
        host_and_pid = path.name[len(".partial-") :].rsplit("-", 1)[0]
        host, _, pid = host_and_pid.rpartition("-")
        if host != socket.gethostname() or not pid.isdigit() or _process_exists(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True
