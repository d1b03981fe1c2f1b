#!/usr/bin/env bash
# Training speed of `kvattn uptrain`: a student converted from MODEL (stories15M by default) distilled
# from it at --seq 256, for --train attn and --train all, on 1 and on all threads. Reports training
# tokens/s and the share of the machine's FMA peak at 6 flops a parameter a token (forward and
# backward; the teacher's forward is on top of that and not counted), as `kvattn uptrain --json`
# measures them. The first --warm steps of each run are left out of the figures (a second run of
# that many steps is timed and subtracted), so that loading and sampling do not count.
#
# usage: bench/train_bench.sh [--model MODEL] [-z TOKENIZER] [--to DESIGN] [--steps 12] [--warm 2]
#          [--batch 4] [--seq 256] [--kvattn PATH]
# Prints a table on stderr and one JSON object per run on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$here/../../shared/models/stories15M.bin tok=$here/../../shared/models/tokenizer.bin
design=gqa:2 steps=12 warm=2 batch=4 seq=256 kvattn=$here/../build/kvattn
while [ $# -gt 0 ]; do
  case $1 in
  --model) model=$2 ;;
  -z) tok=$2 ;;
  --to) design=$2 ;;
  --steps) steps=$2 ;;
  --warm) warm=$2 ;;
  --batch) batch=$2 ;;
  --seq) seq=$2 ;;
  --kvattn) kvattn=$2 ;;
  *) echo "train_bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$kvattn" ] || { echo "train_bench: no kvattn at $kvattn (--kvattn)" >&2; exit 2; }
[ "$steps" -gt "$warm" ] || { echo "train_bench: --steps $steps must exceed --warm $warm" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ztok=()
case $model in *.bin) ztok=(-z "$tok") ;; esac
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
cores=$(nproc)
echo "train_bench: $cpu, $cores threads; student: $model as $design" >&2
"$kvattn" convert -m "$model" "${ztok[@]}" --to "$design" --calib-tokens 2048 -o "$tmp/student.gguf" >/dev/null
"$kvattn" uptrain -m "$tmp/student.gguf" --teacher "$model" "${ztok[@]}" --self-generate $((64 * seq)) \
  --save-text "$tmp/text.txt" --steps 1 --batch 1 --seq "$seq" -o "$tmp/warm.gguf" >/dev/null 2>&1

run() { # threads, what, steps -> seconds tokens fma_gflops params
  "$kvattn" uptrain -m "$tmp/student.gguf" --teacher "$model" "${ztok[@]}" --data "$tmp/text.txt" \
    --steps "$3" --batch "$batch" --seq "$seq" --train "$2" -t "$1" -o "$tmp/out.gguf" --json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["seconds"], d["tokens"], d["fma_gflops"], d["params"])'
}
printf '%-8s %-5s %12s %12s %10s\n' threads train "tok/s" "GFLOP/s" "of peak" >&2
for threads in 1 "$cores"; do
  for what in attn all; do
    read -r s_all n_all peak params < <(run "$threads" "$what" "$steps")
    read -r s_warm n_warm _ _ < <(run "$threads" "$what" "$warm")
    python3 - "$threads" "$what" "$s_all" "$n_all" "$s_warm" "$n_warm" "$peak" "$params" "$cpu" "$seq" <<'EOF'
import json, sys
th, what, s_all, n_all, s_warm, n_warm, peak, params, cpu, seq = sys.argv[1:]
tokens, seconds = int(n_all) - int(n_warm), float(s_all) - float(s_warm)
tps = tokens / seconds
gflops = 6 * float(params) * tps / 1e9
frac = gflops / float(peak)
print(f"{th:<8} {what:<5} {tps:12.0f} {gflops:12.1f} {100 * frac:9.1f}%", file=sys.stderr)
print(json.dumps({"cpu": cpu, "threads": int(th), "train": what, "seq": int(seq), "tokens": tokens,
                  "seconds": round(seconds, 3), "tokens_per_s": round(tps, 1), "gflops": round(gflops, 1),
                  "fma_gflops": float(peak), "fma_fraction": round(frac, 4)}))
EOF
  done
done
