"""fakesnow 0.12.1 made to read S3 and to answer as Snowflake does (patches 1-3 of stand_ins.py).

Separate from the servers (stand_ins.py) because these patch fakesnow's classes and modules for the
whole process, once, while servers come and go: `install_fakesnow_s3_shim` lets DuckDB read `s3://`
through pyarrow, `whole_object` reads each object whole (`FullReads`: reads that return all they are asked), `fix_fakesnow` turns off hive columns and fixes
NULL timestamps, and `register_database` lets a shim installed later reach a running server's database.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable
from urllib.parse import urlsplit

_s3_shim_fs: Any = None  # the one filesystem object registered on every fakesnow DuckDB
_server_databases: weakref.WeakSet[Any] = weakref.WeakSet()  # so servers started before the shim get it


def install_fakesnow_s3_shim(endpoint_url: str, region: str, access_key: str, secret_key: str) -> None:
    """Make fakesnow's DuckDB read `s3://` URLs (COPY INTO from S3 stages) from `endpoint_url`.

    Patches `fakesnow.instance.FakeSnow.__init__` to register an fsspec filesystem for `s3` (pyarrow's
    S3 client, no httpfs) on every DuckDB created afterwards (server and patch mode) and on running
    `start_fakesnow_server` databases. Idempotent; a later call repoints that one filesystem, so the
    newest endpoint wins for every database.
    Stage CREDENTIALS stay ignored: whatever a stage says, reads go to `endpoint_url`.
    """
    global _s3_shim_fs
    import pyarrow.fs as pafs
    from fakesnow.instance import FakeSnow
    from fsspec.implementations.arrow import ArrowFile, ArrowFSWrapper

    fix_fakesnow()
    url = urlsplit(endpoint_url)
    arrow_s3 = pafs.S3FileSystem(
        endpoint_override=url.netloc, scheme=url.scheme or "http", region=region,
        access_key=access_key, secret_key=secret_key, allow_bucket_creation=False,
    )  # fmt: skip
    if _s3_shim_fs is not None:
        _s3_shim_fs.fs = arrow_s3
        return

    class S3ArrowFS(ArrowFSWrapper):
        protocol = "s3"  # the URL scheme DuckDB routes to this filesystem
        root_marker = ""

        @classmethod
        def _strip_protocol(cls, path: str) -> str:  # pyarrow wants "bucket/key"
            return path.removeprefix("s3://").rstrip("/")

        def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if mode != "rb":
                return super()._open(path, mode, *args, **kwargs)
            key = self._strip_protocol(path)
            return ArrowFile(self, whole_object(lambda: self.fs.open_input_file(key), path), path, mode)

    _s3_shim_fs = S3ArrowFS(arrow_s3, skip_instance_cache=True)
    original_init = FakeSnow.__init__

    def init_with_s3(self: FakeSnow, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.duck_conn.register_filesystem(_s3_shim_fs)

    FakeSnow.__init__ = init_with_s3  # type: ignore[method-assign]
    for fs in _server_databases:
        fs.duck_conn.register_filesystem(_s3_shim_fs)


def whole_object(open_stream: Callable[[], Any], name: str, attempts: int = 5) -> Any:
    """The object's bytes, read whole into memory once, as a pyarrow file DuckDB reads from.

    Streamed from S3, a Parquet file's ranged reads came back short now and then while moto was busy
    (DuckDB: "Failed to read 2097152 bytes ... only 1673489 returned", or pyarrow's "Cannot read past end
    of file"), failing a COPY of several large files. One whole read is checked against the object's
    size and, short or failed, made again on a new stream. Our files are a few MB: memory is no concern.
    """
    import pyarrow as pa

    problem = ""
    for attempt in range(1, attempts + 1):
        stream = open_stream()
        try:
            size = stream.size()
            data = FullReads(stream).read(size)
            if len(data) == size:
                return pa.BufferReader(data)
            problem = f"read {len(data)} of {size} bytes"
        except OSError as error:
            problem = str(error)
        finally:
            stream.close()
        time.sleep(0.05 * attempt)
    raise OSError(f"{name}: could not read the whole object in {attempts} attempts ({problem})")


class FullReads:
    """A pyarrow S3 file whose `read(n)` returns n bytes unless the file ends first. pyarrow's S3 file may
    return fewer (seen: 1,673,489 of 2,097,152 while another load was reading), and DuckDB takes a short
    read of a Parquet file as an error ("Failed to read 2097152 bytes ... only 1673489 bytes returned"),
    so COPY INTO of a table over 2 MB failed now and then. A read may even come back empty before the
    end (a ranged GET cut short while the server was busy); then the file is read again from where it
    stopped, a few times, before the short read is passed on."""

    RETRIES_BEFORE_THE_END = 5

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, nbytes: int | None = None) -> bytes:
        if nbytes is None or nbytes < 0:
            return self._stream.read()
        parts, wanted, retries = [], nbytes, 0
        while wanted > 0:
            part = self._stream.read(wanted)
            if not part:
                if retries == self.RETRIES_BEFORE_THE_END or not self._ends_before_its_size():
                    break  # the end of the file
                retries += 1
                time.sleep(0.05 * retries)
                self._stream.seek(self._stream.tell())  # a new request from the same position
                continue
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def _ends_before_its_size(self) -> bool:
        try:
            return self._stream.tell() < self._stream.size()
        except (AttributeError, OSError):  # a stream that cannot tell: its empty read is its end
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def fix_fakesnow() -> None:
    """Patches 2 and 3 of the module docstring (class- and module-level, so once per process)."""
    import fakesnow.arrow
    import pyarrow as pa
    from fakesnow.copy_into import ReadCSV, ReadParquet

    if getattr(fakesnow.arrow, "_fixed_by_stand_ins", False):
        return
    fakesnow.arrow._fixed_by_stand_ins = True  # type: ignore[attr-defined]

    # Else a CSV COPY from `.../year=2024/month=05/day=08/` fails ("Binder Error: table ... has 3
    # columns but 6 values were supplied"), and Parquet gains year/month/day columns.
    def without_hive_columns(read_expression: Any) -> Any:
        def read(self: Any, url: str) -> Any:
            expression = read_expression(self, url)
            expression.append("expressions", self.make_eq("hive_partitioning", False))
            return expression

        return read

    for reader in (ReadCSV, ReadParquet):
        reader.read_expression = without_hive_columns(reader.read_expression)  # type: ignore[method-assign]

    # fakesnow builds the connector's timestamp struct without a validity mask, so NULL reads as epoch 0.
    to_struct = fakesnow.arrow.timestamp_to_sf_struct

    def timestamp_to_sf_struct(ts: Any) -> Any:
        struct, ts = to_struct(ts), ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
        if not ts.null_count:
            return struct
        return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())

    fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def register_database(fs: Any) -> None:
    """A server's FakeSnow database, so that a shim installed after it started reaches it too (one made
    after the shim got it from the patched `FakeSnow.__init__`)."""
    _server_databases.add(fs)
