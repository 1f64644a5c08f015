"""WorkingStorage on a local folder and on S3 (moto over HTTP): atomic replace, read back, clear."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from genesys_pipeline.local.stand_ins import s3_resource, start_moto_s3
from genesys_pipeline.resources.working_storage import WorkingStorage
from genesys_pipeline_tests.conftest import PRODUCTION_PLACEHOLDERS


@pytest.fixture(scope="module")
def moto():
    server = start_moto_s3()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, moto):
    if request.param == "local":
        return WorkingStorage(root=str(tmp_path / "work"))
    bucket = f"work-{uuid.uuid4().hex[:12]}"
    s3 = s3_resource(moto.endpoint_url)
    s3.get_client().create_bucket(Bucket=bucket)
    return WorkingStorage(root=f"s3://{bucket}/pipeline", s3=s3)


def test_write_read_replace_and_clear(storage):
    with storage.writer("raw/day/records.bin") as handle:
        handle.write(b"first")
    with storage.writer("raw/day/records.bin") as handle:
        handle.write(b"second")
    with storage.reader("raw/day/records.bin") as handle:
        assert handle.read() == b"second"
    assert storage.size("raw/day/records.bin") == 6
    if storage.root.startswith("s3://"):
        bucket, _, prefix = storage.root[5:].partition("/")
        head = storage.s3.get_client().head_object(Bucket=bucket, Key=f"{prefix}/raw/day/records.bin")
        assert head["ServerSideEncryption"] == "AES256"
    storage.write_json("raw/day/manifest.json", {"records": 3, "name": "Zoë \"Z\", 山田 🎧"})
    assert storage.read_json("raw/day/manifest.json") == {"records": 3, "name": "Zoë \"Z\", 山田 🎧"}
    storage.clear("raw/day")
    assert not storage.exists("raw/day/records.bin") and not storage.exists("raw/day/manifest.json")


def test_a_failed_write_keeps_the_previous_file(storage):
    with storage.writer("raw/day/records.bin") as handle:
        handle.write(b"good")
    with pytest.raises(RuntimeError):
        with storage.writer("raw/day/records.bin") as handle:
            handle.write(b"half")
            raise RuntimeError("extraction failed midway")
    with storage.reader("raw/day/records.bin") as handle:
        assert handle.read() == b"good"


def test_a_write_killed_midway_leaves_a_file_that_the_next_write_removes(tmp_path):
    root = tmp_path / "work"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\n"
        "from genesys_pipeline.resources.working_storage import WorkingStorage\n"
        f"with WorkingStorage(root={str(root)!r}).writer('raw/day/records.gz') as handle:\n"
        "    handle.write(b'half a file'); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    )], capture_output=True, timeout=60)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    (left,) = (root / "raw" / "day").glob(".partial-*")  # what kill -9 leaves behind
    alive = root / "raw" / "day" / left.name.replace(left.name.split("-")[-2], str(os.getpid()), 1)
    alive.write_bytes(b"a write of this live process")

    storage = WorkingStorage(root=str(root))
    with storage.writer("raw/day/manifest.json") as handle:
        handle.write(b"{}")
    assert not left.exists()
    assert alive.exists()  # its writer still runs: not provably abandoned
    assert sorted(p.name for p in (root / "raw" / "day").iterdir()) == sorted([alive.name, "manifest.json"])


def test_bad_roots_are_rejected_naming_the_field():
    with pytest.raises(ValueError, match="WorkingStorage.root"):
        WorkingStorage(root="  ")
    with pytest.raises(ValueError, match="no bucket"):
        WorkingStorage(root="s3:///prefix")
    with pytest.raises(ValueError, match="WorkingStorage.s3 must be configured"):
        with WorkingStorage(root="s3://bucket/prefix").writer("x") as handle:
            handle.write(b"x")


def test_production_resources_give_an_s3_working_location_its_client(monkeypatch):
    from genesys_pipeline.defs.resources import production_resources

    for name, value in PRODUCTION_PLACEHOLDERS.items():  # production checks its variables when it loads
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    resources = production_resources()
    assert resources["working_storage"].s3 is resources["s3"]
