#!/usr/bin/env python3
# Make a QCOW2 image hold one leaked cluster, as a writer killed between
# its refcount and L2 updates leaves: a cluster past the end of the data
# whose refcount is 1 and that nothing references.  Usage: leak-cluster.py IMG
import struct, sys

path = sys.argv[1]
with open(path, "r+b") as f:
    hdr = f.read(104)
    magic, version = struct.unpack(">II", hdr[:8])
    assert magic == 0x514649fb, "not a qcow2 image"
    cluster_bits = struct.unpack(">I", hdr[20:24])[0]
    rt_offset = struct.unpack(">Q", hdr[48:56])[0]
    order = struct.unpack(">I", hdr[96:100])[0] if version >= 3 else 4
    assert order == 4, "only 16-bit refcounts"
    cs = 1 << cluster_bits
    f.seek(0, 2)
    end = f.seek(0, 2)
    leak = (end + cs - 1) // cs          # the first cluster past the end
    f.seek(rt_offset)
    rb = struct.unpack(">Q", f.read(8))[0]
    entries = cs // 2
    assert leak < entries, "image too large for this simple tool"
    f.seek(rb + 2 * leak)
    f.write(struct.pack(">H", 1))
    f.seek(leak * cs + cs - 1)
    f.write(b"\0")
