"""The data dir on S3-compatible object storage: moto's S3 server on loopback, for real.

The server is `moto[server]`'s `ThreadedMotoServer` on a free loopback port; credentials are
fake and `AWS_EC2_METADATA_DISABLED` keeps botocore from looking for instance metadata on the
network. `materialize` runs as a user runs it, with `--data-dir s3://...` and the endpoint from
`FSSPEC_S3_ENDPOINT_URL`.
"""

from __future__ import annotations

import boto3
import fsspec.config
import pandas as pd
import pyarrow as pa
import pytest
from upath import UPath

import microns_assets
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.storage import read_frame, write_frame
from microns_assets.storage.rollup import Streamed, write_batches
from microns_assets_tests.distributed.servers import BUCKET, FAKE_AWS, s3_server
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    clean_env,
    materialize_args,
    run_cli,
)


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server with one empty bucket; yields its endpoint URL."""
    with s3_server() as url:
        yield url


def s3_path(endpoint: str, key: str) -> UPath:
    """A path in the test bucket, through this process's own S3 client settings."""
    return UPath(f"s3://{BUCKET}/{key}", endpoint_url=endpoint, key="testing", secret="testing")


def keys_under(endpoint: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_a_version_with_its_data_dir_on_s3(
    s3, session_emulator, emulator_cache, tmp_path, monkeypatch
):
    env = {**clean_env(emulator_cache), **FAKE_AWS, "FSSPEC_S3_ENDPOINT_URL": s3}
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "unused")
    args[args.index("--data-dir") + 1] = f"s3://{BUCKET}/data"
    out = run_cli(args, env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not (tmp_path / "unused").exists()  # nothing went to a local folder
    prefix = f"data/{session_emulator.datastack}/v1300/"
    keys = keys_under(s3, prefix)
    chunks = [k for k in keys if "/synapse_chunks/" in k]
    assert chunks == [f"{prefix}synapse_chunks/{c}.parquet" for c in CHUNK_KEYS]
    assert not [k for k in keys if k.endswith(".tmp")]  # no temporary object left behind
    version = s3_path(s3, prefix)
    units = read_frame(version / "units.parquet")
    merged = read_frame(version / "synapses.parquet")
    assert_equals_truth(merged, aggregated_truth(session_emulator, units))
    assert f"s3://{BUCKET}/{prefix}synapses.parquet" in out.stdout  # the summary's path
    # a notebook reads it back by name, with the endpoint from fsspec's configuration
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3})
    loaded = microns_assets.load(
        "synapses", 1300, datastack=session_emulator.datastack, data_dir=f"s3://{BUCKET}/data"
    )
    pd.testing.assert_frame_equal(loaded, merged)


def test_a_write_that_fails_midway_leaves_no_object(s3):
    schema = pa.schema([("a", pa.int64())])

    def batches():
        yield pa.record_batch([pa.array(range(1000))], schema=schema)
        raise OSError("connection lost midway")

    path = s3_path(s3, "partial/synapses.parquet")
    streamed = Streamed(pa.RecordBatchReader.from_batches(schema, batches()), {"k": 1})
    with pytest.raises(OSError, match="midway"):
        write_batches(streamed, path)
    assert keys_under(s3, "partial/") == []  # neither the final key nor a temporary one
    assert not path.exists()


def test_a_complete_write_reads_back_with_its_provenance(s3):
    path = s3_path(s3, "whole/table.parquet")
    frame = pd.DataFrame({"id": pd.array([1, None, 3], dtype="Int64")})

    written = write_frame(frame, path, {"source": "test"})
    back = read_frame(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back.attrs["provenance"] == {"source": "test"}
    assert written.bytes == path.stat().st_size > 0
