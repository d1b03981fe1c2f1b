#!/usr/bin/env bash
# Interop with llama.cpp, both ways (issue #5; needs a local llama.cpp build, not run in CI):
#  1. deepseek2 GGUFs written by llama.cpp's gguf-py → greedy text in llama.cpp and in kvattn;
#  2. the same models written again by kvattn (kvattn export) → greedy text in llama.cpp.
# usage: tests/interop/compare_llamacpp.sh LLAMA_CPP_DIR KVATTN_BIN MODELS_DIR
set -u
lc=$1 kv=$2 models=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompt="Once upon a time"
same=0 diff=0
gen() { # variant flags...
  PYTHONPATH="$lc/gguf-py" /usr/bin/python3 "$(dirname "$0")/make_deepseek2_gguf.py" "$models" "$@"
}
llamacpp_text() { # model → the generated text after the prompt (llama-simple prints "<s> " + prompt first)
  "$lc/build/bin/llama-simple" -m "$1" -n 16 "$prompt" 2>"$tmp/lc.err" | python3 -c '
import sys
t = sys.stdin.buffer.read()
p = b"'"$prompt"'"
i = t.find(p)
sys.stdout.buffer.write(t[i + len(p):].rstrip() if i >= 0 else b"<llama.cpp failed>")'
}
kvattn_text() { # model → 16 generated tokens' text after the prompt (5 prompt tokens + 16 = 20 positions)
  "$kv" run -m "$1" --temp 0 -n 20 -p "$prompt" 2>/dev/null | python3 -c '
import sys
t = sys.stdin.buffer.read()
p = b"'"$prompt"'"
sys.stdout.buffer.write(t[len(p):].rstrip())'
}
compare() { # label, text A file, text B file
  if cmp -s "$2" "$3"; then same=$((same + 1)); echo "SAME  $1"; else diff=$((diff + 1)); echo "DIFF  $1"; od -c "$2" | head -2; od -c "$3" | head -2; fi
}
for flags in "" "--moe" "--q-lora" "--q-lora --moe" "--moe --split-kv-b" "--q-lora --moe --split-kv-b --yarn" "--q-lora --yarn" "--q-lora --moe --f16"; do
  name=$(echo "ds$flags" | tr -d ' -')
  gen "$tmp/$name.gguf" $flags || { echo "gguf-py failed for $name"; continue; }
  llamacpp_text "$tmp/$name.gguf" > "$tmp/$name.lc"
  kvattn_text "$tmp/$name.gguf" > "$tmp/$name.kv"
  compare "$name: llama.cpp-written GGUF, llama.cpp vs kvattn" "$tmp/$name.lc" "$tmp/$name.kv"
  "$kv" export -m "$tmp/$name.gguf" -o "$tmp/$name.kvattn.gguf" --type f32 2>/dev/null
  llamacpp_text "$tmp/$name.kvattn.gguf" > "$tmp/$name.kvlc"
  compare "$name: kvattn-written GGUF in llama.cpp vs kvattn" "$tmp/$name.kvlc" "$tmp/$name.kv"
done
echo "interop: $same same, $diff different"
