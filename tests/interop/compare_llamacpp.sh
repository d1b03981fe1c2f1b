#!/usr/bin/env bash
# Interop with llama.cpp, both ways (issues #5 and #20; needs a local llama.cpp build, not run in CI):
#  1. deepseek2, qwen2, qwen3 and Mixtral (llama with experts) GGUFs written by llama.cpp's gguf-py
#     → greedy text in llama.cpp and in kvattn, on several prompts;
#  2. the same models written again by kvattn (kvattn export) → greedy text in llama.cpp;
#  3. qwen2/qwen3/Mixtral/llama (Llama 3.1's RoPE scaling included): the same weights as a Hugging
#     Face folder → greedy text in kvattn.
# usage: tests/interop/compare_llamacpp.sh LLAMA_CPP_DIR KVATTN_BIN MODELS_DIR
set -u
lc=$1 kv=$2 models=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompts=("Once upon a time" "Tom had a big red ball" "One day")
same=0 diff=0
# llama-simple prints each piece with printf("%s"), so the byte token <0x00> prints nothing there;
# NUL bytes are dropped from both sides.
after_prompt() { # stdin: text with the prompt ($1) in it → the bytes after it, trailing space dropped
  P="$1" python3 -c '
import os, sys
t, p = sys.stdin.buffer.read().replace(b"\0", b""), os.environb[b"P"]
i = t.find(p)
sys.stdout.buffer.write(t[i + len(p):].rstrip() if i >= 0 else b"<no output>")'
}
llamacpp_text() { # model, prompt → 16 greedy tokens' text (llama-simple prints "<s> " + prompt first)
  "$lc/build/bin/llama-simple" -m "$1" -n 16 "$2" 2>"$tmp/lc.err" | after_prompt "$2"
}
kvattn_text() { # model, prompt[, -z tokenizer] → 16 greedy tokens' text, as llama-simple -n 16
  "$kv" run -m "$1" ${3:+-z "$3"} --temp 0 -n 16 -p "$2" 2>/dev/null | after_prompt "$2"
}
compare() { # label, text A file, text B file
  if cmp -s "$2" "$3"; then same=$((same + 1)); echo "SAME  $1"; else diff=$((diff + 1)); echo "DIFF  $1"; od -c "$2" | head -2; od -c "$3" | head -2; fi
}
check() { # name, GGUF, HF folder or ""
  "$kv" export -m "$2" -o "$tmp/$1.kvattn.gguf" --type f32 2>/dev/null
  for i in "${!prompts[@]}"; do
    p=${prompts[$i]}
    llamacpp_text "$2" "$p" > "$tmp/$1.$i.lc"
    kvattn_text "$2" "$p" > "$tmp/$1.$i.kv"
    compare "$1 «$p»: llama.cpp-written GGUF, llama.cpp vs kvattn" "$tmp/$1.$i.lc" "$tmp/$1.$i.kv"
    llamacpp_text "$tmp/$1.kvattn.gguf" "$p" > "$tmp/$1.$i.kvlc"
    compare "$1 «$p»: kvattn-written GGUF in llama.cpp vs kvattn" "$tmp/$1.$i.kvlc" "$tmp/$1.$i.kv"
    if [ -n "$3" ]; then
      kvattn_text "$3" "$p" "$models/tok512.bin" > "$tmp/$1.$i.hf"
      compare "$1 «$p»: Hugging Face folder in kvattn vs the GGUF in llama.cpp" "$tmp/$1.$i.hf" "$tmp/$1.$i.lc"
    fi
  done
}
for flags in "" "--moe" "--q-lora" "--q-lora --moe" "--moe --split-kv-b" "--q-lora --moe --split-kv-b --yarn" "--q-lora --yarn" "--q-lora --moe --f16"; do
  name=$(echo "ds$flags" | tr -d ' -')
  PYTHONPATH="$lc/gguf-py" /usr/bin/python3 "$(dirname "$0")/make_deepseek2_gguf.py" "$models" "$tmp/$name.gguf" $flags ||
    { echo "gguf-py failed for $name"; continue; }
  check "$name" "$tmp/$name.gguf" ""
done
for arch in qwen2 qwen3 mixtral llama; do
  for flags in "" "--f16" "--tied" "--llama3-rope"; do
    [ "$flags" = "--llama3-rope" ] && [ "$arch" != llama ] && continue
    name=$(echo "$arch$flags" | tr -d ' -')
    PYTHONPATH="$lc/gguf-py" /usr/bin/python3 "$(dirname "$0")/make_gqa_gguf.py" "$models" "$tmp/$name.gguf" \
      --arch $arch $flags --hf "$tmp/$name-hf" || { echo "gguf-py failed for $name"; continue; }
    # the HF folder holds f32 weights: compared where the GGUF's are f32 too
    check "$name" "$tmp/$name.gguf" "$([ "$flags" = "--f16" ] || echo "$tmp/$name-hf")"
  done
done
echo "interop: $same same, $diff different"
