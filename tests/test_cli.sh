#!/usr/bin/env bash
# The kvattn CLI end to end: the demo runs and says the right things, its JSON
# parses and carries the brief's figures, bad options fail with exit 2.
set -u
kvattn=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*" >&2; }
expect_exit() { # code, description, command...
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$what: exit $got, want $want"; cat "$tmp/err" >&2; fi
}
expect_grep() { # pattern, file, description
  if grep -q -- "$1" "$2"; then ok; else bad "$3: '$1' not in output"; fi
}

expect_exit 0 "demo --quick" "$kvattn" demo --quick
expect_grep "31,104" "$tmp/out" "demo shows DeepSeek-V2-Lite's 31,104 bytes/token"
expect_grep "131,072" "$tmp/out" "demo shows Llama-3-8B's 131,072 bytes/token"
expect_grep "max|absorbed - naive|" "$tmp/out" "demo compares absorbed and naive MLA"

expect_exit 0 "demo --quick --json" "$kvattn" demo --quick --json --kv-type f32
if python3 - "$tmp/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
mem = {r["design"]: r for r in d["memory"]}
assert mem["mha"]["kv_bytes_per_token"] == 1048576, mem["mha"]   # f32: twice the 16-bit figure
assert mem["mla:512+64"]["kv_bytes_per_token"] == 62208, mem
assert len(d["decode"]) >= 8 and all(r["us_per_step"] > 0 for r in d["decode"])
assert d["mla_agreement"]["absorbed_vs_naive"] < 1e-5, d["mla_agreement"]
assert d["mla_agreement"]["absorbed_vs_reference"] < 1e-5, d["mla_agreement"]
PY
then ok; else bad "demo --json content"; fi

expect_exit 0 "--help" "$kvattn" --help
expect_grep "demo" "$tmp/out" "help lists demo"
expect_exit 2 "unknown command" "$kvattn" frobnicate
expect_grep "unknown command 'frobnicate'" "$tmp/err" "unknown command message"
expect_exit 2 "bad --ctx" "$kvattn" demo --ctx 12x
expect_grep "\-\-ctx '12x'" "$tmp/err" "bad --ctx message"
expect_exit 2 "non-cache --kv-type" "$kvattn" demo --kv-type q4_0
expect_exit 2 "missing option value" "$kvattn" demo --reps
expect_exit 2 "no command" "$kvattn"

echo "test_cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
