#!/usr/bin/env python3
"""check_safetensors.py FILE RAW NAME=SHAPE... — reads a safetensors FILE with json and struct
alone (no safetensors or torch package) and checks it against what cldp wrote: the tensors and
shapes given as NAME=D,D,... in module order, dtype F32, data offsets that tile the data area,
the cldp metadata, and the bytes of every tensor, concatenated in that order, equal to RAW (the
flat parameter vector as little-endian float32). Exit status 0 when everything holds."""
import json
import struct
import sys


def main():
    path, raw_path, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    blob = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = blob[8 + hlen:]
    meta = header.pop("__metadata__")
    assert "cldp_model" in meta and "cldp_input" in meta, meta
    names = [s.split("=")[0] for s in specs]
    assert sorted(header) == sorted(names), (sorted(header), names)
    joined, end = b"", 0
    for s in specs:
        name, shape = s.split("=")
        want = [int(d) for d in shape.split(",")]
        t = header[name]
        assert t["dtype"] == "F32", t
        assert t["shape"] == want, (name, t["shape"], want)
        begin, stop = t["data_offsets"]
        count = 1
        for d in want:
            count *= d
        assert stop - begin == 4 * count and begin == end, (name, begin, stop, count, end)
        end = stop
        values = struct.unpack("<%df" % count, data[begin:stop])
        joined += struct.pack("<%df" % count, *values)
    assert end == len(data), (end, len(data))
    assert joined == open(raw_path, "rb").read(), "tensor bytes differ from the parameters"
    print("check_safetensors: %d tensors, %d bytes of data, model %s, input %s: as written"
          % (len(specs), len(data), meta["cldp_model"], meta["cldp_input"]))


if __name__ == "__main__":
    main()
