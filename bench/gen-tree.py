#!/usr/bin/env python3
"""Generates a benchmark app tree: about 200 MB in about 20,000 files, deterministic.

90% of files are source-like text (compresses ~3-4x, like real apps), 10% are binary blobs
(incompressible, like images). Usage: gen-tree.py DIR [TOTAL_MB] [FILES]
"""
import os
import random
import sys

root = sys.argv[1]
total_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 200
files = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
rng = random.Random(42)
words = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12)))
    for _ in range(4000)
]
avg = total_mb * 1024 * 1024 // files
for i in range(files):
    d = os.path.join(root, f"pkg{i % 97:02d}", f"mod{i % 13}")
    os.makedirs(d, exist_ok=True)
    size = max(64, int(rng.expovariate(1 / avg)))
    if i % 10 == 9:
        data = rng.randbytes(size)
        name = f"blob{i}.bin"
    else:
        out, n = [], 0
        while n < size:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + ";\n"
            out.append(line)
            n += len(line)
        data = "".join(out).encode()[:size]
        name = f"file{i}.js"
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
