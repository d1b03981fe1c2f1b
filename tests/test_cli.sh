#!/usr/bin/env bash
# The kvattn CLI end to end: the demo runs and says the right things, its JSON
# parses and carries the brief's figures, bad options fail with exit 2.
set -u
kvattn=$1
deepseek_model=${2:-}
chat_model=${3:-}
arch_dir=${4:-} # tiny_qwen2/qwen3/mixtral.gguf from test_arch
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

# kvattn plan
data=$(dirname "$0")/data
expect_exit 0 "plan: the circulating 7B example" "$kvattn" plan --preset llama-2-7b --head-dim 64 --ctx 80k --as gqa:8 --as mqa
for fig in "mha 20.97 GB" "gqa:8 5.24 GB" "mqa 0.66 GB" "30x too high"; do expect_grep "$fig" "$tmp/out" "7B example: $fig"; done
expect_exit 0 "plan --json" "$kvattn" plan --preset deepseek-v2-lite --ctx 32K --gpu h100-80g --json
if python3 - "$tmp/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ctx"] == 32768 and d["batch"] == 1 and d["kv_type"] == "f16", d
rows = {r["design"]: r for r in d["rows"]}
own = rows["mla:512+64"]
assert own["native"] is True and own["kv_bytes_per_token"] == 31104, own
assert own["kv_bytes_total"] == 31104 * 32768 and own["kv_elems_per_token_layer"] == 576
assert own["total_bytes"] == own["kv_bytes_total"] + own["weights_bytes"]
assert own["gpus_needed"] == 1 and own["max_context"] > 32768
assert set(rows) == {"mla:512+64", "mha", "gqa:8", "mqa"}, rows.keys()
assert all(not r["native"] for k, r in rows.items() if k != "mla:512+64")
PY
then ok; else bad "plan --json content"; fi
expect_exit 0 "plan --config" "$kvattn" plan --config "$data/configs/llama-3-8b.json" --ctx 128K
expect_grep "131,072" "$tmp/out" "llama-3-8b from config.json: 131,072 bytes/token"
expect_exit 0 "plan falcon (71 heads)" "$kvattn" plan --preset falcon-7b
expect_grep "skipped gqa:8" "$tmp/out" "gqa:8 is skipped for 71 heads, with the reason"
expect_exit 0 "plan --plot" "$kvattn" plan --preset llama-3-8b --gpu a100-80g --ctx 128K --plot "$tmp/p.svg"
if head -c 4 "$tmp/p.svg" | grep -q "<svg" && grep -q "1× a100-80g" "$tmp/p.svg"; then ok; else bad "plot is an SVG with GPU lines"; fi
expect_exit 0 "plan --list-presets" "$kvattn" plan --list-presets
expect_grep "deepseek-v3" "$tmp/out" "presets list deepseek-v3"
expect_exit 1 "plan: unknown preset" "$kvattn" plan --preset llama-9
expect_grep "known: gpt-2" "$tmp/err" "unknown preset lists the known ones"
expect_exit 1 "plan: bad config" "$kvattn" plan --config "$data/bad_configs/missing_heads.json"
expect_grep "missing_heads.json: missing key 'num_attention_heads'" "$tmp/err" "bad config names file and key"
expect_exit 2 "plan: heads not divisible" "$kvattn" plan --preset llama-3-8b --heads 30
expect_grep "n_kv_heads = 8" "$tmp/err" "contradictory heads named"
expect_exit 2 "plan: bad --ctx" "$kvattn" plan --preset llama-3-8b --ctx 12q
expect_exit 2 "plan: unknown gpu" "$kvattn" plan --preset llama-3-8b --gpu v100
expect_exit 2 "plan: bad design" "$kvattn" plan --preset llama-3-8b --as gqa:3
expect_grep "gqa:3" "$tmp/err" "bad design named"
expect_exit 2 "plan: no model" "$kvattn" plan --ctx 4096
expect_exit 1 "plan: overflow" "$kvattn" plan --preset llama-3.1-405b --ctx 1000G --batch 1000000
expect_grep "overflows 64-bit" "$tmp/err" "overflow is reported"

# kvattn run / info / eval on the real model: the rest needs ../shared/models (or KVATTN_MODELS)
models=${KVATTN_MODELS:-$(dirname "$0")/../../shared/models}
for f in stories260K.bin stories260K.gguf tok512.bin stories15M.bin tokenizer.bin; do
  [ -f "$models/$f" ] && continue
  if [ -n "${KVATTN_REQUIRE_MODELS:-}" ] && [ "${KVATTN_REQUIRE_MODELS}" != 0 ]; then
    bad "the real models are not under $models (set KVATTN_MODELS)"
  elif [ "$fail" = 0 ]; then
    echo "test_cli: $pass passed; the rest skipped: $models/$f is missing (set KVATTN_MODELS; see ../shared/models/README.md)"
    exit 77
  fi
  echo "test_cli: $pass passed, $fail failed"; exit 1
done
golden='Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily'"'"'s mom said, "Lily, let'"'"'s go to the park." Lily was sad and didn'"'"'t know what to do. She said, "I want to play with your ball, but I can'"'"'t find it."
Lily was sad and didn'"'"'t know what to do. She said, "I'"'"'m sorry, Lily. I didn'"'"'t know what to do."
Lily didn'"'"'t want to help her mom, so she'
expect_exit 0 "run: llama2.c golden" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" --temp 0 -n 200
if [ "$(cat "$tmp/out")" = "$golden" ]; then ok; else bad "run output is not llama2.c's golden text"; fi
expect_grep "generated: 200 tokens" "$tmp/err" "run reports speed on stderr"
expect_grep "KV cache" "$tmp/err" "run reports the KV cache"
expect_exit 0 "run: gguf golden" "$kvattn" run -m "$models/stories260K.gguf" --temp 0 -n 200
if [ "$(cat "$tmp/out")" = "$golden" ]; then ok; else bad "GGUF run output differs from the golden text"; fi
expect_exit 0 "run --json" "$kvattn" run -m "$models/stories260K.gguf" --temp 0 -n 20 -p "Lily and Tom" --json --kv-type q8_0
if python3 - "$tmp/out" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
d, stream = lines[-1], lines[:-1]
assert d["prompt_tokens"][0] == 1 and len(d["prompt_tokens"]) > 2, d
assert len(d["tokens"]) == 20 and d["n_generated"] == 20 and d["finish_reason"] == "length", d   # -n: tokens to generate
assert d["prompt"] == "Lily and Tom" and not d["text"].startswith("Lily"), d                  # text: the generated part only
assert [x["token"] for x in stream] == d["tokens"] and "".join(x["piece"] for x in stream) == d["text"], stream
assert d["gen_tok_per_s"] > 0 and d["kv_bytes"] > 0 and d["kv_type_k"] == d["kv_type_v"] == "q8_0", d
PY
then ok; else bad "run --json content"; fi
expect_exit 0 "run: sampling" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" --temp 0.9 --top-p 0.9 --top-k 40 --seed 7 -n 50
cp "$tmp/out" "$tmp/s1"
expect_exit 0 "run: same seed" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" --temp 0.9 --top-p 0.9 --top-k 40 --seed 7 -n 50
if cmp -s "$tmp/out" "$tmp/s1"; then ok; else bad "the same seed gives the same text"; fi
expect_exit 0 "info --json" "$kvattn" info -m "$models/stories260K.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["design"]=="gqa:4" and d["layers"]==5 and d["kv_bytes_per_token"]==640 and d["tokenizer"]=="spm", d' "$tmp/out"; then ok; else bad "info --json content"; fi
printf '%s\n' "$golden" > "$tmp/text.txt"
expect_exit 0 "eval" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" -c 64 --logits-out "$tmp/lp.jsonl" --json
if python3 - "$tmp/out" "$tmp/lp.jsonl" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert 1.0 < d["perplexity"] < 4.0, d   # the model's own greedy text is very likely under it
rows = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == d["tokens"] and len(rows[0]["top"]) == 10
nll = -sum(r["logprob"] for r in rows) / len(rows)
assert abs(math.exp(nll) - d["perplexity"]) < 1e-3 * d["perplexity"], (nll, d)
assert all(r["top"][0][1] >= r["logprob"] - 1e-6 for r in rows)
PY
then ok; else bad "eval perplexity and --logits-out"; fi
# eval --ref: a model against itself is KL 0 and full agreement; against its q8_0 export a small KL
expect_exit 0 "eval --ref itself" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" -c 64 --ref "$models/stories260K.bin" --ref-z "$models/tok512.bin" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["kl_mean"]==0 and d["kl_p99"]==0 and d["top1_agree"]==1 and d["ppl"]==d["ref_ppl"], d' "$tmp/out"; then ok; else bad "eval --ref against itself"; fi
expect_exit 0 "export q8_0 for --ref" "$kvattn" export -m "$models/stories260K.bin" -z "$models/tok512.bin" --type q8_0 -o "$tmp/q8.gguf"
expect_exit 0 "eval --ref q8_0" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" -c 64 --ref "$models/stories260K.bin" --ref-z "$models/tok512.bin" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d["kl_mean"] < 0.02 and d["kl_p99"] >= d["kl_median"] and 0.9 < d["top1_agree"] <= 1 and d["ppl"] != d["ref_ppl"], d' "$tmp/out"; then ok; else bad "eval --ref against a q8_0 copy"; fi
# the decode products: q8_0 rows meet x rounded to 16 bits, a cost measured by --ref-exact (small, not
# zero: the path ran); two runs of the same products agree exactly; token by token equals one prompt
expect_exit 0 "eval --decode --ref-exact" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" -c 64 --ref "$tmp/q8.gguf" --ref-exact --decode --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d["kl_mean"] < 1e-4 and d["top1_agree"] > 0.99 and abs(d["ln_ppl_ratio"]) < 1e-3 and d["feed"] == "decode" and not d["exact"], d' "$tmp/out"; then ok; else bad "eval --ref-exact: the 16-bit products' cost"; fi
expect_exit 0 "eval --decode --ref itself" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" -c 64 --ref "$tmp/q8.gguf" --decode --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["kl_mean"] == 0 and d["ppl"] == d["ref_ppl"], d' "$tmp/out"; then ok; else bad "eval --decode: the same products agree"; fi
expect_exit 0 "eval --exact --decode" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" -c 64 --exact --decode --json
cp "$tmp/out" "$tmp/exact_decode.json"
expect_exit 0 "eval --exact" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" -c 64 --exact --json
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a["exact"] and abs(a["ppl"] / b["ppl"] - 1) < 1e-5, (a, b)' "$tmp/exact_decode.json" "$tmp/out"; then ok; else bad "eval --exact: token by token as one prompt"; fi
expect_exit 2 "eval --ref-exact without --ref" "$kvattn" eval -m "$tmp/q8.gguf" -f "$tmp/text.txt" --ref-exact
expect_grep "--ref-exact needs --ref" "$tmp/err" "eval --ref-exact names what it needs"
# llama-perplexity's KL base format: header, tokens, and records whose probabilities sum to 1
printf '%s %s %s %s\n' "$golden" "$golden" "$golden" "$golden" > "$tmp/text4.txt"
expect_exit 0 "eval --kld-base-out" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text4.txt" -c 64 --score-second-half --kld-base-out "$tmp/kv.kld" --json
if python3 - "$tmp/kv.kld" "$tmp/out" <<'PY'
import json, math, struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"_logits_", b[:8]
ctx, V, chunks = struct.unpack("<3i", b[8:20])
nv = 2 * ((V + 1) // 2) + 4
per = ctx - 1 - ctx // 2
assert (ctx, V) == (64, 512) and chunks >= 2, (ctx, V, chunks)
rec0 = 20 + 4 * chunks * ctx
assert len(b) == rec0 + chunks * per * nv * 2, (len(b), rec0, chunks, per, nv)
assert chunks * per == json.load(open(sys.argv[2]))["tokens"]
for r in (0, chunks * per - 1):
    o = rec0 + r * nv * 2
    scale, min_lp = struct.unpack("<2f", b[o:o + 8])
    q = struct.unpack("<%dH" % V, b[o + 8:o + 8 + 2 * V])
    total = sum(math.exp(min_lp + scale * v) for v in q if v)
    assert abs(total - 1) < 0.01, total
PY
then ok; else bad "the --kld-base-out file is not llama-perplexity's format"; fi
expect_exit 1 "eval --kld-base-out without --score-second-half" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text4.txt" -c 64 --kld-base-out "$tmp/kv2.kld"
expect_grep "needs --score-second-half" "$tmp/err" "the windowing is named"
# 4-bit weights written by kvattn (q4_k where rows are whole super-blocks, q4_0 elsewhere) run, and
# cost stories15M little against its f32 original on the golden text (the --ref figures)
expect_exit 0 "export q4_k" "$kvattn" export -m "$models/stories15M.bin" -z "$models/tokenizer.bin" --type q4_k -o "$tmp/q4k.gguf"
expect_exit 0 "eval q4_k --ref f32" "$kvattn" eval -m "$tmp/q4k.gguf" -f "$tmp/text.txt" --ref "$models/stories15M.bin" --ref-z "$models/tokenizer.bin" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ppl"] < 1.25 * d["ref_ppl"] and d["top1_agree"] > 0.7, d' "$tmp/out"; then ok; else bad "q4_k export: perplexity or agreement off ($(head -c 300 "$tmp/out"))"; fi
# its decode products: x and its rounding's residual (default) cost no measurable accuracy against f32
# products; x rounded once (--fast-products, llama.cpp's numerics) costs more, measurably
head -c 1500 "$tmp/text.txt" > "$tmp/short.txt"
expect_exit 0 "eval q4_k --decode --ref-exact" "$kvattn" eval -m "$tmp/q4k.gguf" -f "$tmp/short.txt" -c 128 --ref "$tmp/q4k.gguf" --ref-exact --decode --json
cp "$tmp/out" "$tmp/q4k_default.json"
expect_exit 0 "eval q4_k --decode --ref-exact --fast-products" "$kvattn" eval -m "$tmp/q4k.gguf" -f "$tmp/short.txt" -c 128 --ref "$tmp/q4k.gguf" --ref-exact --fast-products --decode --json
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert 0 < a["kl_mean"] < 1e-5 and b["kl_mean"] > 10 * a["kl_mean"], (a, b)' "$tmp/q4k_default.json" "$tmp/out"; then ok; else bad "q4_k decode products: the residual's accuracy, --fast-products' cost"; fi
expect_exit 1 "export: a type the writer does not write" "$kvattn" export -m "$models/stories260K.bin" -z "$models/tok512.bin" --type q6_k -o "$tmp/x.gguf"
expect_grep "q4_0, q4_k" "$tmp/err" "export names the types it writes"
expect_exit 1 "eval --ref: another vocabulary" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" --ref "$models/stories15M.bin"
expect_grep "vocabulary of 32000 tokens" "$tmp/err" "eval --ref names the vocabularies"
# kvattn convert: a GQA model to MQA and MLA, loaded back by info, eval and plan
expect_exit 0 "convert mqa mean" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mqa --method mean -o "$tmp/mqa.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["from"]=="gqa:4" and d["to"]=="mqa" and d["method"]=="mean" and d["kv_bytes_per_token_to"]*4==d["kv_bytes_per_token_from"] and d["calib_tokens"]==0, d' "$tmp/out"; then ok; else bad "convert --json"; fi
expect_exit 0 "info of a converted model" "$kvattn" info -m "$tmp/mqa.gguf"
expect_grep "converted:    mqa from gqa:4 (stories260K.bin) by mean" "$tmp/out" "info names the conversion"
expect_exit 0 "info --json of a converted model" "$kvattn" info -m "$tmp/mqa.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["design"]=="mqa" and d["conversion"].startswith("mqa from gqa:4"), d' "$tmp/out"; then ok; else bad "info --json conversion"; fi
expect_exit 0 "info --json of an original" "$kvattn" info -m "$models/stories260K.bin" -z "$models/tok512.bin" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["conversion"] is None, d' "$tmp/out"; then ok; else bad "info --json: no conversion"; fi
expect_exit 0 "convert mla with --calib and --latent-norm keep" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mla:16+8 --latent-norm keep --calib "$tmp/text.txt" --calib-ctx 32 -o "$tmp/mla.gguf"
expect_grep "gqa:4 → mla:16+8" "$tmp/out" "convert names both designs"
expect_exit 0 "eval --ref of the MLA conversion" "$kvattn" eval -m "$tmp/mla.gguf" -f "$tmp/text.txt" -c 64 --ref "$models/stories260K.bin" --ref-z "$models/tok512.bin" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d["kl_mean"] < 5 and 0 < d["top1_agree"] < 1 and d["ppl"] > d["ref_ppl"], d' "$tmp/out"; then ok; else bad "eval --ref of a converted model"; fi
expect_exit 0 "plan -m of a converted model" "$kvattn" plan -m "$tmp/mla.gguf" --ctx 512 --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=[x for x in d["rows"] if x["design"]=="mla:16+8"]; assert r and r[0]["kv_bytes_per_token"]==5*24*2, d["rows"]' "$tmp/out"; then ok; else bad "plan of the converted MLA model"; fi
expect_exit 0 "convert: self-sampled calibration saved" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to gqa:2 --calib-tokens 300 --calib-ctx 64 --save-calib "$tmp/calib.txt" -o "$tmp/g2.gguf"
if [ -s "$tmp/calib.txt" ] && grep -q "300 tokens of text the model sampled itself" "$tmp/out"; then ok; else bad "convert --save-calib"; fi
expect_exit 1 "convert: G not dividing the KV heads" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to gqa:3 --method mean -o "$tmp/x.gguf"
expect_grep "3 KV heads do not divide the source's 4" "$tmp/err" "convert names the bad group count"
expect_exit 1 "convert: d_c + d_R too large" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mla:60+8 --calib "$tmp/text.txt" -o "$tmp/x.gguf"
expect_grep "d_c must be in \[1, 56\]" "$tmp/err" "convert names the rank limit"
expect_exit 1 "convert: an MLA source" "$kvattn" convert -m "$tmp/mla.gguf" --to mqa --method mean -o "$tmp/x.gguf"
expect_grep "already MLA" "$tmp/err" "convert refuses an MLA source"
expect_exit 1 "convert: unreadable --calib" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mqa --calib "$tmp/nope.txt" -o "$tmp/x.gguf"
expect_grep "nope.txt: cannot read" "$tmp/err" "convert names the calibration file"
expect_exit 2 "convert: no --to" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" -o "$tmp/x.gguf"
expect_exit 2 "convert: mean to MLA" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mla:16+8 --method mean -o "$tmp/x.gguf"
expect_exit 2 "convert: bad --latent-norm" "$kvattn" convert -m "$models/stories260K.bin" -z "$models/tok512.bin" --to mla:16+8 --latent-norm maybe -o "$tmp/x.gguf"
[ ! -e "$tmp/x.gguf" ] && ok || bad "a refused conversion left a file"
expect_exit 0 "plan -m -z" "$kvattn" plan -m "$models/stories260K.bin" -z "$models/tok512.bin" --ctx 512
# kvattn uptrain: the mean-pooled MQA model distilled back towards stories260K on self-generated text
expect_exit 0 "uptrain --self-generate" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 2048 --save-text "$tmp/sampled.txt" --steps 24 --seq 64 --batch 2 --lr 3e-3 --checkpoint-every 10 -o "$tmp/up.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["steps"]==[1,24] and d["steps_run"]==24 and d["tokens"]==24*2*64 and d["kl"][1] < 0.6*d["kl"][0] and "sampled itself" in d["data"], d' "$tmp/out"; then ok; else bad "uptrain lowers the KL"; fi
[ -s "$tmp/up.gguf.state" ] && [ ! -e "$tmp/up.gguf.tmp" ] && ok || bad "uptrain leaves the model and its state, no temporary"
expect_exit 0 "eval of the uptrained model" "$kvattn" eval -m "$tmp/up.gguf" -f "$tmp/text.txt" -c 64 --ref "$models/stories260K.bin" --ref-z "$models/tok512.bin" --json
cp "$tmp/out" "$tmp/up_eval.json"
expect_exit 0 "eval of the converted model" "$kvattn" eval -m "$tmp/mqa.gguf" -f "$tmp/text.txt" -c 64 --ref "$models/stories260K.bin" --ref-z "$models/tok512.bin" --json
if python3 -c 'import json,sys; u=json.load(open(sys.argv[1])); c=json.load(open(sys.argv[2])); assert u["kl_mean"] < c["kl_mean"], (u, c)' "$tmp/up_eval.json" "$tmp/out"; then ok; else bad "the uptrained model is closer to the original on held-out text"; fi
expect_exit 0 "uptrain --resume" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 2048 --steps 30 --seq 64 --batch 2 --lr 3e-3 -o "$tmp/up.gguf" --resume --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["steps"]==[25,30] and d["steps_run"]==6, d' "$tmp/out"; then ok; else bad "uptrain --resume goes on from the state's step"; fi
expect_exit 0 "uptrain of an MLA student" "$kvattn" uptrain -m "$tmp/mla.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 2048 --steps 16 --seq 64 --batch 2 --lr 3e-3 -o "$tmp/mla-up.gguf" --json
if python3 -c 'import json,sys,math; d=json.load(open(sys.argv[1])); assert d["steps_run"]==16 and all(0 < k < 20 and math.isfinite(k) for k in d["kl"]), d' "$tmp/out"; then ok; else bad "uptrain of an MLA student: 16 steps, a finite KL (test_train checks that it falls)"; fi
expect_exit 0 "the uptrained MLA model runs" "$kvattn" run -m "$tmp/mla-up.gguf" -p "Once upon a time" -n 8 --temp 0
expect_exit 1 "uptrain: a mixture of experts" "$kvattn" uptrain -m "$deepseek_model" --teacher "$deepseek_model" --self-generate 64 --steps 2 --seq 16 -o "$tmp/x.gguf"
expect_grep "is not trainable yet" "$tmp/err" "uptrain names what it cannot train"
if python3 -c 'import sys; t=open(sys.argv[1]).read(); p=[x for x in t.split("\n\n") if x.strip()]; assert len(t) > 4000 and len(p) >= 8, (len(t), len(p))' "$tmp/sampled.txt"; then ok; else bad "uptrain --save-text writes the sampled windows, one a paragraph"; fi
# a colder sampler gives text the teacher finds likelier: the temperature reaches the sampler
expect_exit 0 "uptrain --self-generate --temperature" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 2048 --temperature 0.5 --save-text "$tmp/cold.txt" --steps 1 --seq 64 --batch 1 -o "$tmp/up3.gguf" --json
expect_grep "temperature 0.5" "$tmp/out" "uptrain's data names the sampling temperature"
expect_exit 0 "eval of the colder text" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/cold.txt" -c 64 --json
cp "$tmp/out" "$tmp/cold_eval.json"
expect_exit 0 "eval of the text at temperature 1" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/sampled.txt" -c 64 --json
if python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); w=json.load(open(sys.argv[2])); assert c["ppl"] < 0.8 * w["ppl"], (c["ppl"], w["ppl"])' "$tmp/cold_eval.json" "$tmp/out"; then ok; else bad "text sampled at temperature 0.5 is likelier to the teacher than at 1"; fi
# hot sampling draws the NUL byte token (about 1 in 1,500 at temperature 10; this seed's 8,192
# tokens hold it four times); the saved text must still be a text file that --data reads
expect_exit 0 "uptrain --temperature 10 --save-text" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 8192 --temperature 10 --save-text "$tmp/hot.txt" --steps 1 --seq 64 --batch 1 -o "$tmp/up3.gguf"
expect_exit 0 "the hot text's file is text (no NUL byte)" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/hot.txt" -c 64
expect_exit 2 "uptrain: --temperature 0" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --self-generate 100 --temperature 0 -o "$tmp/x.gguf"
expect_exit 0 "uptrain --data on the saved text" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/sampled.txt" --steps 2 --seq 64 --batch 1 -o "$tmp/up2.gguf" --json
expect_exit 0 "uptrain --minutes" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/sampled.txt" --minutes 0.05 --seq 64 --batch 1 -o "$tmp/up2.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["budget_s"]==3.0 and d["steps_run"] >= 2 and d["steps"][1]==d["steps_run"] and d["seconds"] < 6, d' "$tmp/out"; then ok; else bad "uptrain --minutes 0.05 trains for about 3 s"; fi
expect_exit 2 "uptrain: --minutes with --resume" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/sampled.txt" --minutes 1 --resume -o "$tmp/up2.gguf"
expect_exit 2 "uptrain: --save-text with --data" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/text.txt" --save-text "$tmp/x.txt" -o "$tmp/x.gguf"
expect_exit 2 "uptrain: both --data and --self-generate" "$kvattn" uptrain -m "$tmp/mqa.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/text.txt" --self-generate 100 -o "$tmp/x.gguf"
expect_exit 1 "uptrain: a state of another model" "$kvattn" uptrain -m "$tmp/g2.gguf" --teacher "$models/stories260K.bin" -z "$models/tok512.bin" --data "$tmp/text.txt" --steps 2 --seq 16 -o "$tmp/up.gguf" --resume --train all
expect_grep "not the optimizer state of this model" "$tmp/err" "uptrain --resume checks the state"
[ ! -e "$tmp/x.gguf" ] && ok || bad "a refused uptrain left a file"
expect_exit 2 "plan -z without -m" "$kvattn" plan --preset llama-2-7b -z "$models/tok512.bin"
# kvattn retention: every default target of stories260K, both methods, the table, JSON and plot
expect_exit 0 "retention --json --plot" "$kvattn" retention -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" -c 64 --calib-tokens 600 --calib-ctx 64 --json --plot "$tmp/ret.svg" --out-dir "$tmp"
if python3 - "$tmp/out" "$tmp/ret.svg" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = {(r["design"], r["method"]): r for r in d["rows"]}
assert d["design"] == "gqa:4" and d["kv_bytes_per_token"] == 640 and d["calib_tokens"] == 600, d
mla = ["mla:28+4", "mla:24+8", "mla:16+16", "mla:12+4", "mla:8+8", "mla:4+4"]  # 1/2, 1/4, 1/8 of 64 elements
want = [(g, m) for g in ("gqa:2", "mqa") for m in ("mean", "aware")] + [(x, n) for x in mla for n in ("norm off", "norm kept")]
assert sorted(rows) == sorted(want), sorted(rows)
for g in ("gqa:2", "mqa"):
    assert rows[(g, "aware")]["delta_ppl"] < rows[(g, "mean")]["delta_ppl"], (rows[(g, "aware")], rows[(g, "mean")])
assert rows[("mqa", "aware")]["reduction"] == 4 and rows[("mla:24+8", "norm off")]["kv_bytes_per_token"] == 320
assert all(0 < r["top1_agree"] < 1 and r["kl_mean"] > 0 and r["file"].endswith(".gguf") for r in d["rows"])
svg = open(sys.argv[2]).read()
assert svg.startswith("<svg") and svg.count("<circle") + svg.count("<rect x") + svg.count("<polygon") >= len(want)
PY
then ok; else bad "retention --json and --plot"; fi
expect_exit 0 "eval of a file retention wrote" "$kvattn" eval -m "$tmp/stories260K-mqa-aware.gguf" -f "$tmp/text.txt" -c 64
expect_exit 0 "retention table" "$kvattn" retention -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" -c 64 --calib "$tmp/calib.txt" --to gqa:2
expect_grep "gqa:2        aware" "$tmp/out" "retention's table has the aware row"
expect_exit 1 "retention: a target the model cannot become" "$kvattn" retention -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" --calib "$tmp/text.txt" --to gqa:3
expect_grep "do not divide" "$tmp/err" "retention names the bad target"
expect_exit 1 "retention: an MLA model" "$kvattn" retention -m "$tmp/mla.gguf" -f "$tmp/text.txt"
expect_grep "already MLA" "$tmp/err" "retention refuses an MLA source"
expect_exit 2 "retention: no text" "$kvattn" retention -m "$models/stories260K.bin" -z "$models/tok512.bin"
# kvattn tokenize: llama-tokenize's output, --ids, --no-bos; a BPE vocabulary from a GGUF
expect_exit 0 "tokenize" "$kvattn" tokenize -m "$models/stories260K.bin" -z "$models/tok512.bin" -p "Once upon a time"
if python3 -c 'import sys; l=open(sys.argv[1]).read().split("\n"); assert l[0] == "     1 -> '"'"'<s>'"'"'" and l[1] == "   403 -> '"'"'Once'"'"'" and l[2] == "   407 -> '"'"' upon'"'"'", l' "$tmp/out"; then ok; else bad "tokenize prints id -> piece"; fi
expect_exit 0 "tokenize --ids --no-bos --show-count" "$kvattn" tokenize -m "$models/stories260K.bin" -z "$models/tok512.bin" -p "Once upon a time" --ids --no-bos --show-count
expect_grep "^\[403, 407, 261, 378\]$" "$tmp/out" "tokenize --ids"
expect_grep "Total number of tokens: 4" "$tmp/out" "tokenize --show-count"
printf 'Hello world\n' > "$tmp/hello.txt"
expect_exit 0 "tokenize -f (bytes as they are)" "$kvattn" tokenize -m "$chat_model" -f "$tmp/hello.txt" --ids --no-bos
if python3 -c 'import sys; ids=eval(open(sys.argv[1]).read()); assert len(ids) >= 3 and ids[-1] == 10, ids' "$tmp/out"; then ok; else bad "tokenize -f keeps the final newline"; fi
expect_exit 2 "tokenize: no text" "$kvattn" tokenize -m "$models/stories260K.bin" -z "$models/tok512.bin"
expect_exit 1 "tokenize: missing file" "$kvattn" tokenize -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/nope.txt"
expect_grep "nope.txt: cannot read" "$tmp/err" "tokenize names the missing file"
# An unknown pre-tokenizer name: info says so, run warns and falls back to llama.cpp's default
python3 - "$chat_model" "$tmp/unknown_pre.gguf" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
k = b.find(b"tokenizer.ggml.pre") + len(b"tokenizer.ggml.pre")
n = int.from_bytes(b[k + 4:k + 12], "little")  # type u32, then the string's length
b[k + 12:k + 12 + n] = b"z" * n
open(sys.argv[2], "wb").write(b)
PY
expect_exit 0 "info: an unknown pre-tokenizer" "$kvattn" info -m "$tmp/unknown_pre.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["pre_tokenizer"] == "zzzzz" and d["pre_tokenizer_known"] is False, d' "$tmp/out"; then ok; else bad "info names the unknown pre-tokenizer"; fi
expect_exit 0 "run: an unknown pre-tokenizer" "$kvattn" run -m "$tmp/unknown_pre.gguf" -p "hi" -n 2 --temp 0
expect_grep "pre-tokenizer 'zzzzz' is unknown; using llama.cpp's default" "$tmp/err" "run warns of the unknown pre-tokenizer"
# --score-second-half: llama-perplexity's chunks, ctx/2 - 1 tokens scored in each
for i in 1 2 3; do printf '%s\n' "$golden"; done > "$tmp/text3.txt"
expect_exit 0 "eval --score-second-half" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text3.txt" -c 64 --score-second-half --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["windows"]>=2 and d["tokens"]==d["windows"]*31 and d["scoring"]=="second-half", d' "$tmp/out"; then ok; else bad "eval --score-second-half windows"; fi
expect_exit 1 "eval --score-second-half: short text" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/text.txt" -c 256 --score-second-half
expect_grep "at least twice the context" "$tmp/err" "second half needs 2 contexts"
expect_exit 1 "run: prompt longer than the context" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" -c 4 -p "Once upon a time there was a dog"
expect_grep "longer than the context" "$tmp/err" "long prompt message"
expect_exit 1 "run: missing model" "$kvattn" run -m "$tmp/nope.gguf"
expect_grep "nope.gguf" "$tmp/err" "missing model named"
head -c 1000 "$models/stories260K.gguf" > "$tmp/trunc.gguf"
expect_exit 1 "run: truncated gguf" "$kvattn" run -m "$tmp/trunc.gguf"
expect_grep "trunc.gguf" "$tmp/err" "truncated file named"
expect_exit 1 "run: .bin without tokenizer" "$kvattn" run -m "$models/stories260K.bin" -z "$tmp/nope.bin"
expect_exit 2 "run: bad --kv-type" "$kvattn" run -m "$models/stories260K.bin" --kv-type q4_0
expect_exit 2 "run: no -m" "$kvattn" run -p hi

# Hugging Face folders made from the same model (Q/K permuted for rotate_half)
python3 "$(dirname "$0")/data/make_hf_stories.py" "$models" "$tmp/hf32" F32
python3 "$(dirname "$0")/data/make_hf_stories.py" "$models" "$tmp/hfbf16" BF16 --shards
expect_exit 0 "run: safetensors f32 golden" "$kvattn" run -m "$tmp/hf32" --temp 0 -n 200
if [ "$(cat "$tmp/out")" = "$golden" ]; then ok; else bad "safetensors output differs from the golden text"; fi
expect_exit 0 "run: safetensors bf16, sharded" "$kvattn" run -m "$tmp/hfbf16/model.safetensors.index.json" --temp 0 -n 30
expect_grep "Once upon a time" "$tmp/out" "bf16 shards generate the story"
for m in "$models/stories260K.gguf" "$tmp/hf32"; do
  expect_exit 0 "tokens via $m" "$kvattn" run -m "$m" --temp 0 -n 1 --json -p "Lily's caf$(printf '\303\251') is 日本 fun!"
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["prompt_tokens"])' "$tmp/out" >> "$tmp/toks"
done
expect_exit 0 "tokens via .bin" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" --temp 0 -n 1 --json -p "Lily's caf$(printf '\303\251') is 日本 fun!"
python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["prompt_tokens"])' "$tmp/out" >> "$tmp/toks"
if [ "$(sort -u "$tmp/toks" | wc -l)" = 1 ]; then ok; else bad "tokenizer.bin, GGUF and tokenizer.json disagree: $(cat "$tmp/toks")"; fi
cp -r "$tmp/hf32" "$tmp/hfbad" && head -c 5000 "$tmp/hf32/model.safetensors" > "$tmp/hfbad/model.safetensors"
expect_exit 1 "run: truncated safetensors" "$kvattn" run -m "$tmp/hfbad"
expect_grep "model.safetensors" "$tmp/err" "truncated safetensors named"
rm "$tmp/hfbad/config.json"
expect_exit 1 "run: folder without config.json" "$kvattn" run -m "$tmp/hfbad"
expect_grep "config.json" "$tmp/err" "missing config.json named"

# Hostile files the fuzzing issue (#21) found, each refused by name: a FIFO (it blocked the open), a directory
# as -z, tokenizer.json with an id of 1e12 (undefined float-to-int), empty or not JSON, a config whose
# rms_norm_eps is -1, a text with a NUL byte for eval.
mkfifo "$tmp/fifo"
expect_exit 1 "run -m FIFO" timeout 10 "$kvattn" run -m "$tmp/fifo"
expect_grep "fifo: is a FIFO, not a regular file" "$tmp/err" "a FIFO as -m is refused, not waited on"
expect_exit 1 "run -z FIFO" timeout 10 "$kvattn" run -m "$models/stories260K.bin" -z "$tmp/fifo"
expect_grep "is a FIFO" "$tmp/err" "a FIFO as -z is refused"
expect_exit 1 "run -z directory" "$kvattn" run -m "$models/stories260K.bin" -z "$tmp"
expect_grep "is a directory, not a file" "$tmp/err" "a directory as -z is named as one"
for case in "empty:" "garbage:{not json" "huge_id:HUGE"; do
  name=${case%%:*} body=${case#*:}
  cp -r "$tmp/hf32" "$tmp/hftok_$name"
  if [ "$body" = HUGE ]; then
    python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d.setdefault("added_tokens", []).append({"id": 1e12, "content": "<x>", "special": True}); json.dump(d, open(p, "w"))' "$tmp/hftok_$name/tokenizer.json"
  else
    printf '%s' "$body" > "$tmp/hftok_$name/tokenizer.json"
  fi
  expect_exit 1 "run: tokenizer.json $name" "$kvattn" run -m "$tmp/hftok_$name" -n 2
done
expect_exit 1 "run: empty tokenizer.json" "$kvattn" run -m "$tmp/hftok_empty" -n 2
expect_grep "tokenizer.json: empty file" "$tmp/err" "an empty tokenizer.json is called empty"
expect_exit 1 "run: garbage tokenizer.json" "$kvattn" run -m "$tmp/hftok_garbage" -n 2
expect_grep "not a JSON object (parse error near byte" "$tmp/err" "garbage tokenizer.json is called not JSON"
expect_exit 1 "run: added token id 1e12" "$kvattn" run -m "$tmp/hftok_huge_id" -n 2
expect_grep "added_tokens entry '<x>'" "$tmp/err" "the added token is named"
cp "$tmp/hf32/tokenizer.json" "$tmp/lower.json"
python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}; json.dump(d, open(p, "w"))' "$tmp/lower.json"
expect_exit 1 "tokenize: a normalizer kvattn does not apply" "$kvattn" tokenize -m "$tmp/lower.json" -p "Hi"
expect_grep 'normalizer "Lowercase" is not supported' "$tmp/err" "the normalizer is refused by name"
cp -r "$tmp/hf32" "$tmp/hfswa"
python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["use_sliding_window"] = True; json.dump(d, open(p, "w"))' "$tmp/hfswa/config.json"
expect_exit 1 "run: sliding-window attention refused" "$kvattn" run -m "$tmp/hfswa" -n 2
expect_grep "use_sliding_window" "$tmp/err" "the sliding window is named"
cp -r "$tmp/hf32" "$tmp/hfeps"
python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["rms_norm_eps"] = -1; json.dump(d, open(p, "w"))' "$tmp/hfeps/config.json"
expect_exit 1 "run: rms_norm_eps -1" "$kvattn" run -m "$tmp/hfeps" -n 2
expect_grep "rms_norm_eps must be a positive number" "$tmp/err" "a negative rms_norm_eps is refused"
printf 'Once upon\0 a time' > "$tmp/nul.txt"
expect_exit 1 "eval: NUL byte" "$kvattn" eval -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/nul.txt"
expect_grep "NUL byte at offset 9" "$tmp/err" "eval names the NUL byte"

# A memory limit too small for the model is a clear error (not under the sanitizers: their shadow
# memory needs more address space than any such limit leaves).
if [ -z "${ASAN_OPTIONS:-}" ]; then
  expect_exit 1 "run under ulimit -v 40000" sh -c "ulimit -v 40000; '$kvattn' run -m '$models/stories15M.bin' -z '$models/tokenizer.bin' -n 2"
  expect_grep "stories15M.bin: out of memory for 60816028 bytes" "$tmp/err" "the memory limit is named as out of memory"
fi

# corrupted safetensors headers and tokenizer.json: an error or a run, never a crash
crashes=0
for i in $(seq 1 40); do
  rm -rf "$tmp/hfc" && cp -r "$tmp/hf32" "$tmp/hfc"
  python3 - "$tmp/hfc" "$i" <<'PY'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
name = "tokenizer.json" if seed % 4 == 0 else "model.safetensors"
p = os.path.join(d, name)
b = bytearray(open(p, "rb").read())
limit = min(len(b), 6000 if name == "model.safetensors" else len(b))
for _ in range(rnd.randint(1, 3)):
    b[rnd.randrange(limit)] ^= rnd.randint(1, 255)
if seed % 7 == 0:
    b = b[: rnd.randrange(len(b))]
open(p, "wb").write(bytes(b))
PY
  "$kvattn" run -m "$tmp/hfc" --temp 0 -n 8 -p "Once" >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -gt 1 ]; then crashes=$((crashes + 1)); echo "corrupt safetensors $i: exit $rc" >&2; cat "$tmp/err" >&2; fi
done
if [ "$crashes" = 0 ]; then ok; else bad "$crashes corrupted safetensors folders crashed kvattn"; fi

# export: GGUF written by kvattn, from the llama2.c file and from the Hugging Face folder
expect_exit 0 "export .bin to GGUF q8_0" "$kvattn" export -m "$models/stories260K.bin" -z "$models/tok512.bin" -o "$tmp/s8.gguf" --type q8_0
expect_exit 0 "info of the q8_0 export" "$kvattn" info -m "$tmp/s8.gguf" --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="gguf" and d["weight_bytes"] < 600000, d' "$tmp/out"; then ok; else bad "q8_0 export is smaller than f32"; fi
expect_exit 0 "export HF folder to GGUF f16" "$kvattn" export -m "$tmp/hf32" -o "$tmp/hf16.gguf" --type f16
expect_exit 0 "run the HF export" "$kvattn" run -m "$tmp/hf16.gguf" --temp 0 -n 200
if [ "$(cat "$tmp/out")" = "$golden" ]; then ok; else bad "HF folder → GGUF f16 (Q/K un-permuted) loses the golden text"; fi
expect_exit 2 "export: bad type" "$kvattn" export -m "$tmp/hf32" -o "$tmp/x.gguf" --type q9_9
expect_exit 1 "export: unwritable" "$kvattn" export -m "$tmp/hf32" -o "$tmp/no/such/dir/x.gguf"
expect_grep "x.gguf" "$tmp/err" "unwritable output named"

# qwen2, qwen3 and Mixtral (from test_arch) through info, plan, export and convert
if [ -n "$arch_dir" ] && [ -f "$arch_dir/tiny_qwen3.gguf" ]; then
  expect_exit 0 "info: qwen2" "$kvattn" info -m "$arch_dir/tiny_qwen2.gguf"
  expect_grep "Q/K/V biases" "$tmp/out" "info names qwen2's biases"
  expect_exit 0 "info --json: qwen3" "$kvattn" info -m "$arch_dir/tiny_qwen3.gguf" --json
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["arch"]=="qwen3" and d["qk_norm"] and not d["qkv_bias"] and d["head_dim"]==12 and d["experts"]==0, d' "$tmp/out"; then ok; else bad "info --json on qwen3"; fi
  expect_exit 0 "info --json: mixtral" "$kvattn" info -m "$arch_dir/tiny_mixtral.gguf" --json
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["arch"]=="llama" and d["experts"]==6 and d["experts_per_token"]==2 and d["expert_ffn_dim"]==24, d' "$tmp/out"; then ok; else bad "info --json on mixtral"; fi
  expect_exit 0 "info: mixtral" "$kvattn" info -m "$arch_dir/tiny_mixtral.gguf"
  expect_grep "6 routed (2 per token)" "$tmp/out" "info shows the experts"
  expect_exit 0 "plan -m qwen3" "$kvattn" plan -m "$arch_dir/tiny_qwen3.gguf" --ctx 1024 --json
  expect_exit 0 "export qwen3" "$kvattn" export -m "$arch_dir/tiny_qwen3.gguf" --type f32 -o "$tmp/q3.gguf"
  expect_exit 0 "info of the exported qwen3" "$kvattn" info -m "$tmp/q3.gguf"
  expect_grep "qwen3" "$tmp/out" "export keeps the qwen3 architecture"
  expect_exit 1 "convert: qwen2's biases refused" "$kvattn" convert -m "$arch_dir/tiny_qwen2.gguf" --to mqa --method mean -o "$tmp/x.gguf"
  expect_grep "biases" "$tmp/err" "convert names the biases"
else
  bad "the tiny qwen/mixtral models from test_arch are missing ($arch_dir)"
fi

# DeepSeek (MLA + MoE) through the CLI: absorbed and naive MLA give the same greedy tokens
if [ -n "$deepseek_model" ] && [ -f "$deepseek_model" ]; then
  expect_exit 0 "info: deepseek2" "$kvattn" info -m "$deepseek_model" --json
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["arch"]=="deepseek2" and d["design"]=="mla:32+8", d' "$tmp/out"; then ok; else bad "info on deepseek2"; fi
  for mode in absorbed naive; do
    expect_exit 0 "run --mla $mode" "$kvattn" run -m "$deepseek_model" --mla $mode --temp 0 -n 12 -p "ABC" --json --kv-type f32
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["tokens"])' "$tmp/out" > "$tmp/mla_$mode"
  done
  if [ -s "$tmp/mla_absorbed" ] && cmp -s "$tmp/mla_absorbed" "$tmp/mla_naive"; then ok; else bad "absorbed and naive MLA give different tokens"; fi
  printf 'ABCABCABC BBB CCC AAA' > "$tmp/abc.txt"
  for mode in absorbed naive; do
    expect_exit 0 "eval --mla $mode" "$kvattn" eval -m "$deepseek_model" -f "$tmp/abc.txt" --mla $mode --json --kv-type f32
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["perplexity"], 4))' "$tmp/out" > "$tmp/ppl_$mode"
  done
  if cmp -s "$tmp/ppl_absorbed" "$tmp/ppl_naive"; then ok; else bad "absorbed and naive perplexities differ"; fi
else
  bad "the tiny deepseek2 model from test_deepseek is missing ($deepseek_model)"
fi

# kvattn batch: many prompts through one engine (continuous batching over a paged pool); each text is
# what run gives its prompt alone: greedy and sampled, with prefixes reused, and with a pool so small
# that requests wait and are preempted
long="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog. Every morning she ran to the big tree by the pond, where the ducks swam and the birds sang. Her best friend Tom lived next door, and he liked to climb the tree and look at the clouds. One day"
# the last prompt, about 390 tokens, runs in pieces over two steps (256 prompt tokens a step) while the others decode
printf '%s\n' "Once upon a time" "$long, she saw a big red ball." "The little dog ran" "$long, her mom said" "" "$long, they went to the sea." "$long. $long. $long, it rained." > "$tmp/prompts"
for cfg in "--temp 0 -n 48 --parallel 4" "--temp 0.9 --seed 5 -n 40 --parallel 3" "--temp 0 -n 64 --parallel 4 --kv-mem 320K"; do
  # shellcheck disable=SC2086
  expect_exit 0 "batch $cfg" "$kvattn" batch -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/prompts" $cfg --json
  cp "$tmp/out" "$tmp/batch.json"
  i=0
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    # shellcheck disable=SC2086
    "$kvattn" run -m "$models/stories260K.bin" -z "$models/tok512.bin" -p "$p" $(echo "$cfg" | sed 's/--parallel [0-9]*//; s/--kv-mem [0-9A-Z]*//') --json 2>/dev/null | tail -1 > "$tmp/run$i.json"
    i=$((i + 1))
  done < "$tmp/prompts"
  if python3 - "$tmp/batch.json" "$tmp" "$cfg" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
reqs = b["requests"]
assert len(reqs) == 6, len(reqs)
for i, r in enumerate(reqs):
    run = json.load(open("%s/run%d.json" % (sys.argv[2], i)))
    assert r["tokens"] == run["tokens"], (i, r["tokens"][:10], run["tokens"][:10])
    assert r["finish_reason"] in ("length", "stop"), r
assert b["prefix_hits"] >= 2 and b["prompt_tokens_reused"] >= 128, b   # the long prefix's first block, twice
if "kv-mem" in sys.argv[3]:
    assert b["kv_blocks"] == 8 and b["preemptions"] >= 1 and b["kv_blocks_peak"] <= 8, b
PY
  then ok; else bad "batch $cfg: each text as run gives it alone"; fi
done
expect_exit 2 "batch without -f" "$kvattn" batch -m "$models/stories260K.bin" -z "$models/tok512.bin"
expect_exit 1 "batch: a pool too small for one prompt" "$kvattn" batch -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/prompts" --kv-mem 10K
expect_grep "holds no block" "$tmp/err" "batch: --kv-mem too small says why"
expect_exit 2 "batch --parallel 0" "$kvattn" batch -m "$models/stories260K.bin" -z "$models/tok512.bin" -f "$tmp/prompts" --parallel 0

# kvattn bench: the machine's limits and the kernels against them; -m end to end
expect_exit 0 "bench --json" "$kvattn" bench --ctx 128,512 --reps 2 --as mha --as mla:512+64 --naive-max-ctx 128 --json
if python3 - "$tmp/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["machine"]["read_gbps"] > 0.5 and d["machine"]["fma_gflops"] > 1, d["machine"]
assert d["machine"]["simd_bits"] in (32, 256, 512), d["machine"]
assert d["machine"]["isa"] in ("scalar", "avx2", "avx512", "avx512vnni") and d["machine"]["cpu"], d["machine"]
assert d["machine"]["simd_bits"] == {"scalar": 32, "avx2": 256}.get(d["machine"]["isa"], 512), d["machine"]
rows = d["rows"]
keys = {"design", "ctx", "kv_type", "us_per_step", "gbps", "gflops", "bound", "fraction_of_bound"}
assert all(keys <= set(r) for r in rows), rows[0]
assert {(r["design"], r["mla"]) for r in rows} == {("gqa:8", ""), ("mha", ""), ("mla:512+64", "absorbed"), ("mla:512+64", "naive")}
assert all(r["us_per_step"] > 0 and 0 < r["fraction_of_bound"] < 5 and r["bound"] in ("memory", "compute") for r in rows)
naive = [r for r in rows if r["mla"] == "naive"]
assert len(naive) == 1 and naive[0]["ctx"] == 128, naive    # --naive-max-ctx
PY
then ok; else bad "bench --json content"; fi
# the kernels' level: the best the CPU has, or the lower one KVATTN_ISA names; a name that is not a
# level, or one beyond this CPU, is said on stderr and the best runs
expect_exit 0 "version" "$kvattn" version
best=$(sed -n 's/^kernels: //p' "$tmp/out")
expect_grep "^cpu: " "$tmp/out" "version names the CPU"
if [ -n "$best" ]; then ok; else bad "version names the kernels' level"; fi
if KVATTN_ISA=scalar "$kvattn" version | grep -qx "kernels: scalar"; then ok; else bad "KVATTN_ISA=scalar runs the scalar kernels"; fi
KVATTN_ISA=avx3 "$kvattn" version > "$tmp/out" 2> "$tmp/err"
if grep -qx "kernels: $best" "$tmp/out" && grep -q "KVATTN_ISA=avx3 is not a level" "$tmp/err"; then ok; else bad "KVATTN_ISA: an unknown level is named"; fi
if KVATTN_ISA=scalar "$kvattn" bench --ctx 64 --reps 1 --json | python3 -c 'import json,sys; m=json.load(sys.stdin)["machine"]; assert m["isa"] == "scalar" and m["simd_bits"] == 32, m'; then ok; else bad "bench at the scalar level says so"; fi
expect_exit 0 "bench --csv --plot" "$kvattn" bench --ctx 64,128 --reps 1 --as mqa --csv --plot "$tmp/b.svg" --kv-type f16,q8_0
expect_grep "design,mla,ctx,kv_type,us_per_step" "$tmp/out" "bench csv header"
if [ "$(grep -c ',q8_0,' "$tmp/out")" -ge 2 ] && head -c 4 "$tmp/b.svg" | grep -q "<svg"; then ok; else bad "bench csv rows per kv type, and the plot"; fi
# The plots agree with the tables and with each other: the wall draws weights + KV (the table's total),
# a design has one colour in every plot, ticks are round values in units.
if python3 - "$tmp/p.svg" "$tmp/b.svg" <<'PY'
import re, sys
wall, bench = open(sys.argv[1]).read(), open(sys.argv[2]).read()
assert "memory: weights + KV cache" in wall and "gqa:8 (own): 30.96 GiB" in wall, "the legend gives the total: 16 GiB KV + 14.96 GiB weights"
def colours(svg):   # design → the colour of its legend swatch (rect or line just before its label)
    out = {}
    for m in re.finditer(r'(?:fill|stroke)="(#[0-9a-f]{6})"[^>]*/>\n<text[^>]*>((?:mha|mqa|gqa:\d+|mla:\d+\+\d+))', svg):
        out.setdefault(m.group(2), m.group(1))
    return out
w, b = colours(wall), colours(bench)
assert w and b and all(w[d] == b[d] for d in w if d in b), (w, b)
assert len(set(w.values())) == len(w), w                        # distinct designs, distinct colours
assert "e+" not in bench and "µs" in bench and "%" in bench, "bench ticks in µs/ms and %"
PY
then ok; else bad "plots: totals, one colour per design, round ticks"; fi
expect_exit 0 "bench -m" "$kvattn" bench -m "$models/stories260K.gguf" --depth 64,256 --prompt 8 --gen 4 --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["rows"]; assert [x["depth"] for x in r]==[64,256] and all(x["gen_tok_per_s"]>0 and x["bound_tok_per_s"]>0 and abs(x["fraction_of_bound"]-x["gen_tok_per_s"]/x["bound_tok_per_s"])<=0.0006 for x in r), d' "$tmp/out"; then ok; else bad "bench -m content"; fi
# --paged: each point on a paged cache too, the two taking turns; a block size that is not whole tiles is refused
expect_exit 0 "bench --paged" "$kvattn" bench --ctx 200 --reps 2 --as mqa --as mla:512+64 --naive-max-ctx 64 --kv-type q8_0 --paged 64 --json
if python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"]; assert len(r)==3 and all(x["paged_block_tokens"]==64 and x["paged_us_per_step"]>0 and abs(x["paged_over_contiguous"]*x["us_per_step"]-x["paged_us_per_step"])<1e-2*x["paged_us_per_step"] for x in r), r' "$tmp/out"; then ok; else bad "bench --paged json"; fi
expect_exit 0 "bench --paged table" "$kvattn" bench --ctx 100 --reps 1 --as mha --paged 128
expect_grep "paged/c" "$tmp/out" "bench --paged: the ratio column"
expect_exit 1 "bench --paged 96" "$kvattn" bench --ctx 100 --reps 1 --paged 96
expect_grep "block_tokens = 96 must be a power of two" "$tmp/err" "bench --paged 96: why"
expect_exit 0 "bench -m --batch" "$kvattn" bench -m "$models/stories260K.gguf" --depth 32 --prompt 4 --gen 3 --batch 1,5 --json
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); b=d["batch_rows"]; assert [(x["depth"],x["batch"]) for x in b]==[(32,1),(32,5)] and all(x["gen_tok_per_s"]>0 and x["alone_tok_per_s"]>0 and x["over_alone"]>0 for x in b), b' "$tmp/out"; then ok; else bad "bench --batch json"; fi
expect_exit 2 "bench --batch without -m" "$kvattn" bench --batch 4
expect_exit 2 "bench --batch 0" "$kvattn" bench -m "$models/stories260K.gguf" --batch 0
expect_exit 2 "bench: bad kv type" "$kvattn" bench --kv-type q4_0
expect_exit 2 "bench: bad ctx" "$kvattn" bench --ctx 0

# run: llama.cpp's meanings. -n counts generated tokens, -1 runs to the end; the prompt from -p -, --stdin,
# -f (bytes as they are) or -p with -e escapes; stop strings; the finish reason; -s 0 is a seed like any other.
m260=("$models/stories260K.bin" -z "$models/tok512.bin")
last() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(eval(sys.argv[2]))' "$tmp/out" "$1"; }
expect_exit 0 "run -n 7" "$kvattn" run -m "${m260[@]}" --temp 0 -n 7 -p "Once upon a time" --json
[ "$(last 'd["n_generated"], d["finish_reason"]')" = "(7, 'length')" ] && ok || bad "-n 7 generates 7 tokens"
expect_exit 0 "run -n -1 -c 24" "$kvattn" run -m "${m260[@]}" --temp 0 -n -1 -c 24 -p "Once upon a time"
expect_grep "stopped: the context of 24 tokens is full" "$tmp/err" "reaching the context end is said"
expect_grep "finish: context" "$tmp/err" "finish reason context"
printf 'Once upon a time' > "$tmp/prompt.txt"
expect_exit 0 "run -p -" sh -c "'$kvattn' run -m '$models/stories260K.bin' -z '$models/tok512.bin' --temp 0 -n 3 -p - --json < '$tmp/prompt.txt'"
[ "$(last 'd["prompt"]')" = "Once upon a time" ] && ok || bad "-p - reads standard input"
expect_exit 0 "run --stdin" sh -c "'$kvattn' run -m '$models/stories260K.bin' -z '$models/tok512.bin' --temp 0 -n 3 --stdin --json < '$tmp/prompt.txt'"
[ "$(last 'd["prompt"]')" = "Once upon a time" ] && ok || bad "--stdin reads standard input"
printf 'Once upon\n' > "$tmp/prompt_nl.txt"
expect_exit 0 "run -f" "$kvattn" run -m "${m260[@]}" --temp 0 -n 3 -f "$tmp/prompt_nl.txt" --json
[ "$(last 'repr(d["prompt"])')" = "'Once upon\\n'" ] && ok || bad "-f keeps the file's bytes, the trailing newline included"
expect_exit 0 "run -e" "$kvattn" run -m "${m260[@]}" --temp 0 -n 1 -p 'a\nb\x41' -e --json
[ "$(last 'repr(d["prompt"])')" = "'a\\nbA'" ] && ok || bad "-e processes \\n and \\xHH"
expect_exit 0 "run without -e" "$kvattn" run -m "${m260[@]}" --temp 0 -n 1 -p 'a\nb' --json
[ "$(last 'repr(d["prompt"])')" = "'a\\\\nb'" ] && ok || bad "without -e the backslash stays"
expect_exit 2 "run: -p and -f" "$kvattn" run -m "${m260[@]}" -p x -f "$tmp/prompt.txt"
expect_exit 0 "run -s 0" "$kvattn" run -m "${m260[@]}" --temp 1 -s 0 -n 30 --json
last 'd["tokens"]' > "$tmp/seed0a"
expect_exit 0 "run -s 0 again" "$kvattn" run -m "${m260[@]}" --temp 1 -s 0 -n 30 --json
last 'd["tokens"]' > "$tmp/seed0b"
cmp -s "$tmp/seed0a" "$tmp/seed0b" && ok || bad "-s 0 is reproducible"
expect_exit 0 "run --stop" "$kvattn" run -m "${m260[@]}" --temp 0 -p "Once upon a time" --stop "park" --json
[ "$(last 'd["finish_reason"], "park" in d["text"], d["text"].endswith("outside in the ")')" = "('stop', False, True)" ] && ok || bad "--stop ends at the stop string and leaves it out"
expect_exit 0 "run -r (text)" "$kvattn" run -m "${m260[@]}" --temp 0 -p "Once upon a time" -r "park"
if grep -q "park" "$tmp/out"; then bad "-r: the stop string is not printed"; else ok; fi
expect_exit 0 "run --no-display-prompt" "$kvattn" run -m "${m260[@]}" --temp 0 -n 5 -p "Once upon a time" --no-display-prompt
if head -c 4 "$tmp/out" | grep -q "Once"; then bad "--no-display-prompt prints the prompt"; else ok; fi
expect_exit 0 "run: stats end their line with 2>&1" sh -c "'$kvattn' run -m '$models/stories260K.bin' -z '$models/tok512.bin' --temp 0 -n 5 > '$tmp/both' 2>&1"
tail -1 "$tmp/both" | grep -q "^prompt: " && ok || bad "the stats line starts a line of its own"
expect_exit 0 "run -c past the trained context" "$kvattn" run -m "${m260[@]}" --temp 0 -n 2 -c 1024
expect_grep "warning: a context of 1024 tokens is past the 512 the model was trained for" "$tmp/err" "context beyond training warned, both numbers named"
expect_exit 0 "run --repeat-penalty" "$kvattn" run -m "${m260[@]}" --temp 0 -n 40 --repeat-penalty 1.5 --no-display-prompt
cp "$tmp/out" "$tmp/pen"
expect_exit 0 "run greedy" "$kvattn" run -m "${m260[@]}" --temp 0 -n 40 --no-display-prompt
cmp -s "$tmp/out" "$tmp/pen" && bad "--repeat-penalty changes greedy text" || ok
expect_exit 0 "run -ctk f16 -ctv q8_0" "$kvattn" run -m "${m260[@]}" --temp 0 -n 4 -ctk f16 -ctv q8_0 --json
[ "$(last 'd["kv_type_k"], d["kv_type_v"]')" = "('f16', 'q8_0')" ] && ok || bad "-ctk/-ctv reach the cache"
if [ -n "$deepseek_model" ]; then
  expect_exit 1 "run: MLA with two cache types" "$kvattn" run -m "$deepseek_model" -n 2 -ctk f16 -ctv q8_0
  expect_grep "MLA caches one latent row" "$tmp/err" "MLA explains why K and V share a type"
fi

# chat: plain turns for a model without a template, the same greedy text as run, /clear starts over.
expect_exit 0 "run for chat" "$kvattn" run -m "${m260[@]}" --temp 0 -n 12 -p "Once upon a time" --no-display-prompt
head -1 "$tmp/out" > "$tmp/run12"
expect_exit 0 "chat from a pipe" sh -c "printf 'Once upon a time\n/clear\nOnce upon a time\n/exit\nignored\n' | '$kvattn' chat -m '$models/stories260K.bin' -z '$models/tok512.bin' --temp 0 -n 12"
expect_grep "no chat template" "$tmp/err" "chat says it uses plain turns"
expect_grep "conversation cleared" "$tmp/err" "/clear"
[ "$(sed -n 1p "$tmp/out")" = "$(cat "$tmp/run12")" ] && [ "$(sed -n 2p "$tmp/out")" = "$(cat "$tmp/run12")" ] && [ "$(wc -l < "$tmp/out")" = 2 ] && ok || bad "chat answers as run does, again after /clear, and stops at /exit"
# Ctrl-C at chat's prompt ends the chat (exit 0) without waiting for input. The signal goes once the
# chat has said which template it uses (the model is loaded), however slow the machine.
mkfifo "$tmp/chat_in"
"$kvattn" chat -m "${m260[@]}" --temp 0 <"$tmp/chat_in" >/dev/null 2>"$tmp/chat_err" &
chat_pid=$!
exec 7>"$tmp/chat_in" # its input stays open, and empty
for _ in $(seq 100); do grep -q "template" "$tmp/chat_err" && break; sleep 0.1; done
sleep 0.5
t0=$(date +%s%N)
kill -INT "$chat_pid"
for _ in $(seq 50); do kill -0 "$chat_pid" 2>/dev/null || break; sleep 0.1; done
int_t=$(date +%s%N)
kill -0 "$chat_pid" 2>/dev/null && kill -KILL "$chat_pid" # still there after 5 s: the test fails, it does not hang
wait "$chat_pid"
int_rc=$?
exec 7>&-
[ "$int_rc" = 0 ] && [ $(( (int_t - t0) / 1000000 )) -lt 2000 ] && ok || bad "Ctrl-C at the chat prompt ends it (rc $int_rc, $(( (int_t - t0) / 1000000 )) ms after the signal)"
expect_exit 0 "run -cnv" sh -c "printf 'Once upon a time\n' | '$kvattn' run -cnv -m '$models/stories260K.bin' -z '$models/tok512.bin' --temp 0 -n 12"
[ "$(sed -n 1p "$tmp/out")" = "$(cat "$tmp/run12")" ] && ok || bad "run -cnv is chat"

if [ -n "$chat_model" ] && [ -f "$chat_model" ]; then # a tiny random model whose GGUF has a ChatML template
  expect_exit 0 "chat in the ChatML template" sh -c "printf 'hello\nhello hello\n' | '$kvattn' chat -m '$chat_model' --temp 0 -n 3"
  expect_grep "chatml template" "$tmp/err" "chat names the template it found"
  [ "$(wc -l < "$tmp/out")" = 2 ] && ok || bad "chat answers each turn on its own line"
fi

# A tokenizer of another vocabulary is an error, whether given or found beside the model.
expect_exit 1 "run: 32000-token tokenizer for a 512-token model" "$kvattn" run -m "$models/stories260K.bin" -z "$models/tokenizer.bin" -n 4
expect_grep "holds 32000 tokens, the model 512" "$tmp/err" "vocabulary mismatch named"
expect_exit 1 "run: 512-token tokenizer for a 32000-token model" "$kvattn" run -m "$models/stories15M.bin" -z "$models/tok512.bin" -n 4
expect_grep "ends at token 512, the model has 32000" "$tmp/err" "short vocabulary named"
mkdir -p "$tmp/beside" && ln -s "$(cd "$models" && pwd)/stories260K.bin" "$tmp/beside/stories260K.bin" && ln -s "$(cd "$models" && pwd)/tokenizer.bin" "$tmp/beside/tokenizer.bin"
expect_exit 1 "run: tokenizer.bin beside the model of another vocabulary" "$kvattn" run -m "$tmp/beside/stories260K.bin" -n 4
expect_grep "no usable tokenizer: .*holds 32000 tokens" "$tmp/err" "the tokenizer beside the model is refused with the reason"

# Every command reads its own option table: another command's option, a value out of range, or
# options that would be ignored are errors that name them.
expect_exit 2 "info: run's --temp" "$kvattn" info -m "$models/stories260K.bin" -z "$models/tok512.bin" --temp 3
expect_grep "kvattn info: unknown option '--temp'" "$tmp/err" "info names the foreign option"
expect_exit 2 "eval: run's -p" "$kvattn" eval -m "$models/stories260K.bin" -f /dev/null -p x
expect_exit 2 "run: eval's --logits-out" "$kvattn" run -m "$models/stories260K.bin" --logits-out "$tmp/x.jsonl"
expect_exit 2 "run: --top-p 5" "$kvattn" run -m "$models/stories260K.bin" --top-p 5
expect_grep "\-\-top-p '5': expected a number in \[0, 1\]" "$tmp/err" "top-p range named"
expect_exit 2 "demo: --reps 100" "$kvattn" demo --reps 100
expect_grep "\-\-reps '100': expected a count in \[1, 16\]" "$tmp/err" "reps range named"
expect_exit 2 "bench -m with --ctx" "$kvattn" bench -m "$models/stories260K.gguf" --ctx 1K
expect_grep "\-\-ctx is for attention-only runs" "$tmp/err" "bench says --ctx would be ignored"
expect_exit 2 "bench --depth without -m" "$kvattn" bench --depth 64
expect_exit 2 "plan: --gpu and --gpu-mem" "$kvattn" plan --preset llama-3-8b --gpu h100-80g --gpu-mem 48G
expect_exit 2 "plan: stray argument" "$kvattn" plan --preset llama-3-8b extra
expect_grep "unexpected argument 'extra'" "$tmp/err" "stray argument named"
for c in demo plan run info eval export bench; do
  expect_exit 0 "$c --help" "$kvattn" $c --help
  expect_grep "^usage: kvattn $c" "$tmp/out" "$c --help prints its usage"
done
expect_exit 0 "help run" "$kvattn" help run
expect_grep "^usage: kvattn run" "$tmp/out" "kvattn help run is run --help"
expect_exit 0 "bench --help" "$kvattn" bench --help
expect_grep "\-\-naive-max-ctx N" "$tmp/out" "bench --help explains every option"

echo "test_cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
