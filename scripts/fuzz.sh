#!/usr/bin/env bash
# Runs the libFuzzer harnesses of a -DKVATTN_FUZZ=ON build: each replays its
# committed corpus (fuzz/corpus/NAME), then fuzzes for SECONDS with its
# dictionary, new inputs going to a scratch corpus (the committed one is only
# read). Any crash, leak, timeout (> 1 s an input) or sanitizer report fails,
# and its input is left in ARTIFACTS for a regression test. With KEEP_CORPUS=DIR
# the scratch corpus is kept as DIR/NAME, for minimising into the committed one.
# usage: scripts/fuzz.sh BUILD_DIR SECONDS [NAME...]   (default: every harness)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 secs=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gguf llama2c tokenizer_bin config_json safetensors tokenizer_json tokenize cli_numbers http_request)
artifacts=${ARTIFACTS:-$build/fuzz-artifacts}
mkdir -p "$artifacts"
export KVATTN_MODELS=${KVATTN_MODELS:-$(pwd)/../shared/models}
export KVATTN_FUZZ_BPE=${KVATTN_FUZZ_BPE:-$(pwd)/fuzz/corpus/gguf/tiny_chatml.gguf}
for n in "${names[@]}"; do
  dict=fuzz/dict/json.dict
  case $n in gguf) dict=fuzz/dict/gguf.dict ;; http_request) dict=fuzz/dict/http.dict ;;
  llama2c | tokenizer_bin | tokenize | cli_numbers) dict= ;; esac
  scratch=$(mktemp -d)
  found=$scratch/corpus
  [ -z "${KEEP_CORPUS:-}" ] || found=$KEEP_CORPUS/$n
  mkdir -p "$found"
  "$build/fuzz_$n" -runs=0 "fuzz/corpus/$n" 2>"$scratch/replay.log" ||
    { echo "fuzz_$n: the committed corpus does not replay cleanly" >&2; tail -30 "$scratch/replay.log" >&2; exit 1; }
  if ! "$build/fuzz_$n" -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/${n}-" ${dict:+-dict=$dict} "$found" "fuzz/corpus/$n" >"$scratch/run.log" 2>&1; then
    echo "fuzz_$n: a finding (its input is under $artifacts):" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$scratch/run.log" | head -20 >&2
    exit 1
  fi
  execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$scratch/run.log" | grep -o "[0-9]*$" || true)
  cov=$(grep -o "cov: [0-9]*" "$scratch/run.log" | tail -1 || true)
  echo "fuzz_$n: ${secs} s, ${execs:-?} inputs, ${cov:-cov: ?} edges, no finding"
  rm -rf "$scratch"
done
