#!/usr/bin/env bash
# GGUF weight quantizations in kvattn and in llama.cpp (issue #19; needs a local llama.cpp build
# with llama-quantize and llama-perplexity, not run in CI): MODEL (any model kvattn runs) is
# exported as f32 GGUF by kvattn, quantized by llama-quantize to each TYPE, and every file is
# scored by both over TEXT with llama-perplexity's windows (-c CTX, the second half of each window
# scored: kvattn eval --score-second-half). Prints file size, bits per weight, both perplexities,
# and the KL divergence of llama.cpp's next-token distributions from kvattn's on the same file
# (kvattn eval --kld-base-out, read by llama-perplexity --kl-divergence): mean, 99th percentile,
# and how often the two engines' top tokens agree; and on three prompts whether 32 greedy tokens
# are the same text in both (llama-simple against kvattn run --temp 0).
# usage: tests/interop/quants_llamacpp.sh LLAMA_CPP_DIR KVATTN_BIN MODEL TOKENIZER TEXT [CTX] [TYPE...]
set -u
lc=$1 kv=$2 model=$3 tok=$4 text=$5 ctx=${6:-256}
shift 6 2>/dev/null || shift $#
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(F32 Q8_0 Q6_K Q5_K_M Q5_1 Q5_0 Q4_K_M Q4_1 Q4_0 Q3_K_M Q2_K)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$kv" export -m "$model" ${tok:+-z "$tok"} --type f32 -o "$tmp/F32.gguf" >/dev/null 2>&1 || { echo "export failed"; exit 1; }
params=$("$kv" info -m "$tmp/F32.gguf" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"])')
prompts=("Once upon a time" "Tom had a big red ball" "One day")
greedy_same() { # file → how many prompts give the same 32 greedy tokens in both
  local n=0
  for p in "${prompts[@]}"; do
    a=$("$lc/build/bin/llama-simple" -m "$1" -n 32 "$p" 2>/dev/null | tr -d '\0' | sed 's/^<s> //')
    b=$("$kv" run -m "$1" --temp 0 -n 32 -p "$p" 2>/dev/null | tr -d '\0')
    [ "$a" = "$b" ] && n=$((n + 1))
  done
  echo "$n/${#prompts[@]}"
}
printf '%-8s %8s %6s %9s %9s %7s %10s %10s %7s %7s\n' type MiB bpw kvattn llama.cpp differ "KL mean" "KL p99" "top-1" greedy
worst=0
for q in "${types[@]}"; do
  [ "$q" = F32 ] || "$lc/build/bin/llama-quantize" "$tmp/F32.gguf" "$tmp/$q.gguf" "$q" >/dev/null 2>&1 || { echo "$q: llama-quantize failed"; continue; }
  f=$tmp/$q.gguf
  size=$(stat -c %s "$f")
  a=$("$kv" eval -m "$f" -f "$text" -c "$ctx" --score-second-half --kld-base-out "$tmp/kv.kld" --json 2>/dev/null | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])' 2>/dev/null)
  b=$("$lc/build/bin/llama-perplexity" -m "$f" -f "$text" -c "$ctx" -t "$(nproc)" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  "$lc/build/bin/llama-perplexity" -m "$f" -f "$text" -c "$ctx" -t "$(nproc)" --kl-divergence-base "$tmp/kv.kld" --kl-divergence > "$tmp/kld.txt" 2>&1
  klm=$(sed -n 's/^Mean    KLD: *\([-0-9.e]*\).*/\1/p' "$tmp/kld.txt")
  klp=$(sed -n 's/^99.0%   KLD: *\([-0-9.e]*\).*/\1/p' "$tmp/kld.txt")
  top=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$tmp/kld.txt")
  d=$(python3 -c "print('%.3f%%' % (100 * abs(${a:-0} - ${b:-0}) / ${b:-1}))" 2>/dev/null || echo "?")
  g=$(greedy_same "$f")
  printf '%-8s %8.2f %6.2f %9s %9s %7s %10s %10s %6s%% %7s\n' "$q" "$(python3 -c "print($size / 2**20)")" \
    "$(python3 -c "print(8 * $size / $params)")" "${a:-failed}" "${b:-failed}" "$d" "${klm:-?}" "${klp:-?}" "${top:-?}" "$g"
  worst=$(python3 -c "print(max($worst, abs(${a:-0} - ${b:-0}) / ${b:-1}))")
done
python3 -c "import sys; w=$worst; print('largest difference %.3f%%' % (100 * w)); sys.exit(0 if w < 0.005 else 1)"
