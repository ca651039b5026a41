"""One external-data file per ONNX graph: `planner.onnx` + `planner.onnx.data`.

A graph over protobuf's 2 GB limit cannot hold its weights; torch then writes one loose file per
tensor (~200 for the `1b` planner) beside the .onnx, a layout nobody can ship, copy or hash. This
rewrites such a graph (or, on request, a small one) so that every weight lives in ONE file,
`<graph>.onnx.data`, in ONNX's external-data format (location/offset/length per tensor, as
`onnx.save_model(save_as_external_data=True, all_tensors_to_one_file=True)` writes it).

It streams tensor by tensor rather than `onnx.load(load_external_data=True)` + save: the `1b`
planner is 5 GB in fp32, and holding a second copy of it beside the PyTorch model would push the
export's peak memory past 12 GB.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import onnx
from onnx import TensorProto
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

log = logging.getLogger(__name__)
ALIGN = 4096  # tensors start at page boundaries: a runtime may mmap the file
SIZE_THRESHOLD = 1024  # smaller tensors (shapes, scalars) stay inside the graph, as in onnx.save_model
_CHUNK = 64 << 20


def data_file_name(onnx_name: str) -> str:
    return onnx_name + ".data"


def _copy_range(src: Path, offset: int, length: int | None, dst) -> int:
    """Append src[offset:offset+length] (to its end when length is None) to dst; bytes copied."""
    n = 0
    with open(src, "rb") as f:
        f.seek(offset)
        while length is None or n < length:
            chunk = f.read(_CHUNK if length is None else min(_CHUNK, length - n))
            if not chunk:
                break
            dst.write(chunk)
            n += len(chunk)
    if length is not None and n != length:
        raise ValueError(f"{src}: expected {length} bytes at offset {offset}, read {n}")
    return n


def consolidate(src_onnx: Path, dst_onnx: Path, force: bool = False) -> Path | None:
    """Write `dst_onnx` (+ `dst_onnx.data` when external) from `src_onnx` and its loose files.

    External data is used when `src_onnx` already has any (torch did it: > 2 GB) or `force`.
    Returns the data file's path, or None when the graph stays self-contained. The loose files are
    left where they are: the caller exports into a scratch folder and removes it."""
    model = onnx.load(str(src_onnx), load_external_data=False)
    tensors = list(onnx.external_data_helper._get_all_tensors(model))
    if not force and not any(uses_external_data(t) for t in tensors):
        if src_onnx != dst_onnx:
            shutil.copyfile(src_onnx, dst_onnx)
        return None
    data_path = dst_onnx.with_name(data_file_name(dst_onnx.name))
    tmp = data_path.with_suffix(".partial")
    written: dict[tuple[str, int, int | None], tuple[int, int]] = {}  # source range -> (offset, length)
    with open(tmp, "wb") as out:
        for t in tensors:
            if uses_external_data(t):
                info = ExternalDataInfo(t)
                src_key = (info.location, info.offset or 0, info.length)
            elif t.HasField("raw_data") and len(t.raw_data) >= SIZE_THRESHOLD:
                src_key = None
            else:
                continue
            if src_key is not None and src_key in written:  # a tied weight: stored once
                offset, length = written[src_key]
            else:
                pad = -out.tell() % ALIGN
                out.write(b"\0" * pad)
                offset = out.tell()
                if src_key is None:
                    out.write(t.raw_data)
                    length = len(t.raw_data)
                else:
                    length = _copy_range(src_onnx.parent / src_key[0], src_key[1], src_key[2], out)
                    written[src_key] = (offset, length)
            t.ClearField("raw_data")
            del t.external_data[:]
            t.data_location = TensorProto.EXTERNAL
            # the entries onnx's set_external_data writes (it insists on raw_data being present)
            for key, value in (("location", data_path.name), ("offset", offset), ("length", length)):
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
    tmp.replace(data_path)
    onnx.save_model(model, str(dst_onnx))
    log.info("%s: weights in %s (%.1f MiB)", dst_onnx.name, data_path.name, data_path.stat().st_size / 2**20)
    return data_path

