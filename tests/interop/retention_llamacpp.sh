#!/usr/bin/env bash
# Converted models in kvattn and in llama.cpp (issue #15; needs a local llama.cpp build with
# llama-perplexity, not run in CI): each GGUF in DIR (as kvattn retention --out-dir writes them)
# is scored by both over TEXT with llama-perplexity's windows (-c CTX, second half of each
# scored); files whose latent has no RMSNorm are skipped, as llama.cpp always applies it.
# usage: tests/interop/retention_llamacpp.sh LLAMA_CPP_DIR KVATTN_BIN DIR TEXT [CTX]
set -u
lc=$1 kv=$2 dir=$3 text=$4 ctx=${5:-256}
printf '%-40s %12s %12s %9s\n' "model" "kvattn" "llama.cpp" "differ"
worst=0
for f in "$dir"/*.gguf; do
  if "$kv" info -m "$f" | grep -q "latent not normed"; then
    printf '%-40s %12s\n' "$(basename "$f")" "(latent not normed: kvattn only)"
    continue
  fi
  a=$("$kv" eval -m "$f" -f "$text" -c "$ctx" --score-second-half --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
  b=$("$lc/build/bin/llama-perplexity" -m "$f" -f "$text" -c "$ctx" -t "$(nproc)" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  d=$(python3 -c "print('%.3f%%' % (100 * abs($a - ${b:-0}) / $a))" 2>/dev/null || echo "?")
  printf '%-40s %12s %12s %9s\n' "$(basename "$f")" "$a" "${b:-failed}" "$d"
  worst=$(python3 -c "print(max($worst, abs($a - ${b:-0}) / $a))")
done
python3 -c "import sys; w=$worst; print('largest difference %.3f%%' % (100 * w)); sys.exit(0 if w < 0.01 else 1)"
