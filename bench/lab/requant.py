"""Rewrite the shipped Q4_K_M GGUF with its weight matrices in another llama.cpp type, to measure.

The question it answers: is a quantisation type that llama.cpp multiplies faster on this CPU (Q8_0
through llamafile's tinyBLAS, Q4_0 through the AVX2 repacked kernels) worth a conversion step?
Each K-quant matrix is dequantised (gguf-py) and quantised again; Q8_0 keeps the Q4_K_M values to
within 1/254 of each block's largest, Q4_0 loses more (a second rounding). Tensors already in
F32/F16 (norms, biases) are copied. Then time it with `python -m bench.lab.engines --gguf OUT`:

    python -m bench.lab.requant --to Q8_0 --out /tmp/qwen-q8_0.gguf
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
from gguf.quants import dequantize, quantize

DEFAULT_GGUF = Path.home() / ".cache" / "ragbot" / "models" / "qwen2.5-coder-1.5b-instruct.gguf"
KEEP = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}


def copy_metadata(reader: GGUFReader, writer: GGUFWriter, file_type: int) -> None:
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        kind = field.types[0]
        if field.name == "general.file_type":
            writer.add_uint32(field.name, file_type)
        elif kind == GGUFValueType.ARRAY:
            writer.add_key_value(field.name, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(field.name, field.contents(), kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    ap.add_argument("--to", choices=["Q8_0", "Q4_0"], required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    target = GGMLQuantizationType[args.to]
    start = time.perf_counter()
    reader = GGUFReader(args.gguf)
    arch = str(reader.fields["general.architecture"].contents())
    writer = GGUFWriter(args.out, arch)
    copy_metadata(reader, writer, LlamaFileType[f"MOSTLY_{args.to}"].value)
    converted = 0
    for tensor in reader.tensors:
        if tensor.tensor_type in KEEP:
            writer.add_tensor(tensor.name, np.asarray(tensor.data), raw_dtype=tensor.tensor_type)
            continue
        shape = [int(n) for n in reversed(tensor.shape)]  # numpy order: rows, columns
        values = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
        writer.add_tensor(tensor.name, quantize(values, target), raw_dtype=target)
        converted += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    size = args.out.stat().st_size / 2**30
    print(
        f"{converted} matrices to {args.to}: {args.out} ({size:.2f} GiB) in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
