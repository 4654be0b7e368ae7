"""The content-addressed file blob store."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.store.blobs import BlobNotFoundError, FileBlobStore, sha256_hex


def test_put_get_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    key = store.put(b"hello")
    assert key == sha256_hex(b"hello") and store.exists(key) and store.get(key) == b"hello"
    assert store.put(b"hello") == key
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [key]  # no temp files left


def test_missing_and_malformed_keys(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(BlobNotFoundError):
        store.get("0" * 64)
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


@settings(max_examples=30)
@given(st.binary(max_size=2048))
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = FileBlobStore(tmp_path_factory.mktemp("blobs"))
    assert store.get(store.put(data)) == data


def test_a_torn_earlier_write_is_replaced(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    key = store.put(b"complete message")
    path = tmp_path / key[:2] / key[2:4] / key
    path.write_bytes(b"compl")  # as if a crash cut the first write short
    assert store.put(b"complete message") == key
    assert store.get(key) == b"complete message"
