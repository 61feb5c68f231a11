"""A sharded (FSDP) checkpoint's DCP files, read without running code.

torch.distributed.checkpoint (DCP) keeps its index, `shards/.metadata`, as a pickle that torch's
own FileSystemReader reads with `pickle.load`: a crafted index could run code on `--resume`.
`SafeShardReader` reads it with an unpickler that admits only DCP's metadata classes, and
`load_shards` is dcp.load through it; checkpoint.py's `restore` and `consolidate` read shards
only this way.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from ja_adapt.core.errors import UserError, first_line

# What DCP's `.metadata` pickle may name (module, class): its metadata dataclasses, its file index,
# torch.Size and a layout / path; dtypes (torch.float32, ...) are admitted by type. Nothing else.
_DCP_METADATA_GLOBALS = {
    *(
        ("torch.distributed.checkpoint.metadata", n)
        for n in (
            "Metadata",
            "MetadataIndex",
            "StorageMeta",
            "TensorProperties",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "ChunkStorageMetadata",
            "_MEM_FORMAT_ENCODING",
        )
    ),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.distributed.checkpoint.filesystem", "_StoragePrefix"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}


class _MetadataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only _DCP_METADATA_GLOBALS and torch dtypes (the pickle module's
    "restricting globals" recipe): a crafted `.metadata` cannot name a function to call."""

    def find_class(self, module: str, name: str):
        if (module, name) in _DCP_METADATA_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refuses to load {module}.{name}")


class SafeShardReader(FileSystemReader):
    """torch's DCP FileSystemReader, reading `.metadata` through _MetadataUnpickler."""

    def read_metadata(self, *args, **kwargs) -> Metadata:
        path = Path(self.path) / ".metadata"
        try:
            with open(path, "rb") as f:
                metadata = _MetadataUnpickler(f).load()
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as e:
            raise UserError(
                f"{path}: not a DCP checkpoint index ({first_line(e)}); resume from a checkpoint ja-adapt wrote"
            ) from None
        if not isinstance(metadata, Metadata):
            raise UserError(
                f"{path}: not a DCP checkpoint index ({type(metadata).__name__}); resume "
                "from a checkpoint ja-adapt wrote"
            )
        if getattr(metadata, "storage_meta", None) is None:  # as torch's own reader does
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def load_shards(state: dict, shards: Path, **kwargs) -> None:
    """dcp.load through SafeShardReader. Every rank reads the index first, so a bad one is a
    UserError on every rank before any collective (not a CheckpointException from inside one)."""
    reader = SafeShardReader(str(shards))
    reader.read_metadata()
    dcp.load(state, storage_reader=reader, **kwargs)
