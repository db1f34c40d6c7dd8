"""An independent reader of safetensors files, using only json and numpy.

Usage: python3 safetensors_check.py FILE

Checks the layout the format requires (8-byte little-endian header size, a JSON object header padded
with spaces to a multiple of 8 bytes, tensors tiling the data buffer in header order) and prints, one
per line:
    meta<TAB>key<TAB>value
    tensor<TAB>name<TAB>dims joined by ','<TAB>values in row-major order joined by ' '
Values are printed with repr(), which round-trips a float32 exactly through a double.
Exits with status 1 and a message on stderr when the file breaks the format.
"""
import json
import sys

import numpy as np


def fail(message):
    print("safetensors_check: " + message, file=sys.stderr)
    sys.exit(1)


def main(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    header_size = int.from_bytes(raw[:8], "little")
    if header_size % 8 != 0:
        fail("header size %d is not a multiple of 8" % header_size)
    if 8 + header_size > len(raw):
        fail("header runs past the end of the file")
    header_text = raw[8 : 8 + header_size].decode("utf-8")
    header, json_end = json.JSONDecoder().raw_decode(header_text)
    if header_text[json_end:].strip(" "):
        fail("the header is padded with something other than spaces")
    if not isinstance(header, dict):
        fail("the header is not a JSON object")
    data = raw[8 + header_size :]

    for key, value in header.get("__metadata__", {}).items():
        if not isinstance(value, str):
            fail("metadata %r is not a string" % key)
        print("meta\t%s\t%s" % (key, value))

    expected_begin = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            fail("tensor %r has dtype %s, expected F32" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        if begin != expected_begin:
            fail("tensor %r starts at %d, expected %d" % (name, begin, expected_begin))
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != 4 * count:
            fail("tensor %r has %d bytes for shape %s" % (name, end - begin, shape))
        values = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape)
        expected_begin = end
        dims = ",".join(str(d) for d in shape)
        flat = " ".join(repr(float(v)) for v in values.reshape(-1))
        print("tensor\t%s\t%s\t%s" % (name, dims, flat))
    if expected_begin != len(data):
        fail("the data buffer has %d bytes but the tensors cover %d" % (len(data), expected_begin))


if __name__ == "__main__":
    main(sys.argv[1])
