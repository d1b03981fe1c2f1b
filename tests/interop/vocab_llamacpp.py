#!/usr/bin/env python3
"""kvattn's tokenizers against llama.cpp's own test cases (issue #20; needs llama.cpp's source
tree, not run in CI): each models/ggml-vocab-NAME.gguf with its .inp (cases separated by
__ggml_vocab_test__ lines) and .out (the ids llama.cpp gives, no BOS, special tokens as text).
usage: tests/interop/vocab_llamacpp.py LLAMA_CPP_DIR KVATTN_BIN [NAME...]"""
import os, subprocess, sys, tempfile

lc, kv = sys.argv[1], sys.argv[2]
names = sys.argv[3:] or sorted(f[len("ggml-vocab-"):-len(".gguf.inp")] for f in os.listdir(f"{lc}/models")
                                if f.startswith("ggml-vocab-") and f.endswith(".gguf.inp"))
total_ok = total = 0
worst = []
for name in names:
    base = f"{lc}/models/ggml-vocab-{name}.gguf"
    cases = open(base + ".inp", encoding="utf-8", newline="").read().split("\n__ggml_vocab_test__\n")
    want = open(base + ".out", encoding="utf-8").read().split("\n")
    ok = n = 0
    first_bad = None
    with tempfile.NamedTemporaryFile("wb", delete=False) as tf:
        path = tf.name
    for i, case in enumerate(cases):
        if i >= len(want):
            break
        open(path, "wb").write(case.encode("utf-8"))
        r = subprocess.run([kv, "tokenize", "-m", base, "-f", path, "--ids", "--no-bos"], capture_output=True)
        if r.returncode != 0:
            got = "error: " + r.stderr.decode(errors="replace").strip().splitlines()[-1]
        else:
            got = " ".join(x.strip() for x in r.stdout.decode().strip()[1:-1].split(",") if x.strip())
        expect = " ".join(want[i].split())
        n += 1
        if got == expect:
            ok += 1
        elif first_bad is None:
            first_bad = (case, expect, got)
    os.unlink(path)
    total_ok += ok
    total += n
    print(f"{name:20s} {ok:3d}/{n:3d}" + ("" if ok == n else f"   first mismatch: {first_bad[0]!r}: llama.cpp [{first_bad[1]}] kvattn [{first_bad[2]}]"))
print(f"all: {total_ok}/{total}")
sys.exit(0 if total_ok == total else 1)
