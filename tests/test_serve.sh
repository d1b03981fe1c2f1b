#!/usr/bin/env bash
# kvattn serve, driven over loopback as clients would: curl, and the official OpenAI client (npm
# `openai`, tests/js/serve_client.mjs). On stories15M (llama2.c, MHA):
#   - greedy completions equal `kvattn run --temp 0`, alone and with 4 and 16 requests at once;
#   - streamed text equals the whole answer; chat, usage, seeds and stop strings;
#   - bad requests get the OpenAI error object and the right status (400, 404, 405, 413, 429, 401);
#   - clients that go away mid-answer or send slowly are dropped, and every KV block comes back;
#   - SIGTERM ends the server.
# usage: test_serve.sh KVATTN   (models from $KVATTN_MODELS or ../shared/models; 77 when absent)
set -u
kvattn=$1
here=$(cd "$(dirname "$0")" && pwd)
models=${KVATTN_MODELS:-$here/../../shared/models}
model=$models/stories15M.bin
if [ ! -f "$model" ]; then
  echo "test_serve: $model is missing; rest skipped"
  [ -n "${KVATTN_REQUIRE_MODELS:-}" ] && exit 1
  exit 77
fi
command -v curl >/dev/null || { echo "test_serve: curl is missing (scripts/install-deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0 pass=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
expect() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3: got '$1', want '$2'"; fi; }

# Starts a server with the options given; sets port and pid.
start() {
  local log=$tmp/server$((${#pids[@]})).log
  "$kvattn" serve -m "$model" --port 0 -t 2 "$@" 2>"$log" &
  pid=$!
  pids+=("$pid")
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAILED: the server did not start: $(cat "$log")"; exit 1; }
}
post() { curl -s -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$port$1" "${@:2}"; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/body" "$1"; }
metric() { curl -s "http://127.0.0.1:$port/metrics" | sed -n "s/^kvattn_$1 //p"; }

# ---- what kvattn run gives each prompt, greedy ----
prompts=("Once upon a time" "The cat" "Tom and Sue went to the park" "A little bird" "One day, a boy named Tim"
  "The sun was" "Lily loved" "There was a big red ball" "The dog ran" "Mom said" "In the forest" "A girl had a toy"
  "The old man" "Ben wanted to" "It was a rainy day" "The fish")
n_gen=(40 33 25 40 31 40 28 40 36 40 22 40 30 40 27 40)
for i in "${!prompts[@]}"; do
  "$kvattn" run -m "$model" -p "${prompts[$i]}" -n "${n_gen[$i]}" --temp 0 --json -t 1 2>/dev/null | tail -1 >"$tmp/run$i.json"
done
python3 - "$tmp" "${#prompts[@]}" "${n_gen[@]}" <<'EOF'
import json, sys
tmp, n = sys.argv[1], int(sys.argv[2])
out = []
for i in range(n):
    r = json.load(open(f"{tmp}/run{i}.json"))
    out.append({"prompt": r["prompt"], "text": r["text"], "n": int(sys.argv[3 + i]), "finish": r["finish_reason"]})
json.dump(out, open(f"{tmp}/expected.json", "w"))
EOF
want() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])][sys.argv[3]])' "$tmp/expected.json" "$1" "$2"; }
body_of() { python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": int(sys.argv[2]), "temperature": 0}))' "$1" "$2"; }

# ---- a server with a pool of 4 contexts, 4 at once ----
start --parallel 4
expect "$(post /health)" 200 "GET /health"
expect "$(post /v1/models)$(field 'd["data"][0]["id"]')" "200stories15M.bin" "GET /v1/models names the model"

# one request
expect "$(post /v1/completions -d "$(body_of "${prompts[0]}" "${n_gen[0]}")")" 200 "POST /v1/completions"
expect "$(field 'd["choices"][0]["text"]')" "$(want 0 text)" "one request's text equals kvattn run --temp 0"
expect "$(field 'd["usage"]["prompt_tokens"], d["usage"]["completion_tokens"], d["choices"][0]["finish_reason"]')" \
  "(5, 40, 'length')" "its usage and finish reason"

# 4 at once, then 16 at once (12 of them wait for a place)
for n in 4 16; do
  cpids=()
  for i in $(seq 0 $((n - 1))); do
    curl -s "http://127.0.0.1:$port/v1/completions" -d "$(body_of "${prompts[$i]}" "${n_gen[$i]}")" >"$tmp/c$i.json" &
    cpids+=($!)
  done
  wait "${cpids[@]}"
  same=0
  for i in $(seq 0 $((n - 1))); do
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$tmp/c$i.json" 2>&1)
    [ "$got" = "$(want "$i" text)" ] && same=$((same + 1))
  done
  expect "$same" "$n" "$n concurrent requests each equal kvattn run --temp 0"
done

# streaming: the events' text joined equals the answer; [DONE] ends it
curl -sN "http://127.0.0.1:$port/v1/completions" \
  -d "{\"prompt\": \"${prompts[1]}\", \"max_tokens\": ${n_gen[1]}, \"temperature\": 0, \"stream\": true}" >"$tmp/sse"
joined=$(python3 - "$tmp/sse" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
assert all(l.startswith("data: ") for l in lines), lines
assert lines[-1] == "data: [DONE]", lines[-1]
chunks = [json.loads(l[6:]) for l in lines[:-1]]
assert chunks[-1]["choices"][0]["finish_reason"] == "length"
print("".join(c["choices"][0]["text"] for c in chunks))
EOF
)
expect "$joined" "$(want 1 text)" "a stream's events join to kvattn run's text, [DONE] last"

# chat: a model without a template gets the message as its prompt
expect "$(post /v1/chat/completions -d "{\"messages\": [{\"role\": \"user\", \"content\": \"${prompts[0]}\"}], \"max_tokens\": 40, \"temperature\": 0}")" \
  200 "POST /v1/chat/completions"
expect "$(field 'd["choices"][0]["message"]["role"] + ":" + d["choices"][0]["message"]["content"]')" \
  "assistant:$(want 0 text)" "chat (plain format) answers as the completion"

# stop strings: the text ends before the first one
expect "$(post /v1/completions -d "{\"prompt\": \"${prompts[0]}\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": [\"Lily\", \"zebra\"]}")$(field 'd["choices"][0]["finish_reason"], d["choices"][0]["text"]')" \
  "200('stop', ', there was a little girl named ')" "a stop string ends the text before it"

# bad requests: the OpenAI error object, the right status, and the server goes on
bad_request() { # BODY STATUS PARAM-or-CODE WHAT [PATH]
  local got
  got=$(post "${5:-/v1/completions}" --data-binary "$1")
  local detail
  detail=$(field 'd["error"]["type"] + "/" + str(d["error"]["param"] or d["error"]["code"])' 2>&1)
  expect "$got $detail" "$2 $3" "$4"
}
bad_request '{"prompt": "x", ' 400 "invalid_request_error/None" "malformed JSON: 400"
bad_request '{"prompt": 5}' 400 "invalid_request_error/prompt" "a prompt of the wrong type: 400, param prompt"
bad_request '{"prompt": "x", "temperature": "hot"}' 400 "invalid_request_error/temperature" "a temperature string: 400"
bad_request '{"prompt": "x", "max_tokens": 0}' 400 "invalid_request_error/max_tokens" "max_tokens 0: 400"
bad_request '{"prompt": "x", "max_tokens": 100000000}' 400 "invalid_request_error/max_tokens" "absurd max_tokens: 400"
bad_request '{"prompt": "x", "model": "gpt-4"}' 404 "invalid_request_error/model" "an unknown model: 404"
bad_request '{"prompt": "x", "n": 3}' 400 "invalid_request_error/n" "n = 3: 400"
bad_request '{"messages": []}' 400 "invalid_request_error/messages" "no messages: 400" /v1/chat/completions
bad_request '{"messages": [{"role": "user", "content": 7}]}' 400 "invalid_request_error/messages[0].content" \
  "content of the wrong type: 400" /v1/chat/completions
python3 -c 'import json; print(json.dumps({"prompt": "Once upon a time " * 400}))' >"$tmp/long.json"
bad_request "@$tmp/long.json" 400 "invalid_request_error/prompt" "a prompt longer than the context: 400"
expect "$(post /v1/completions -d @"$tmp/long.json" >/dev/null; field 'd["error"]["code"]')" "context_length_exceeded" \
  "... with code context_length_exceeded"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$tmp/huge.json"
expect "$(post /v1/completions --data-binary @"$tmp/huge.json")" 413 "a body over 1 MiB: 413"
expect "$(post /v1/completions)" 405 "GET on a POST route: 405"
expect "$(post /v2/nothing)" 404 "an unknown path: 404"
expect "$(post /health)" 200 "the server still answers after them"

# clients that go away mid-answer: their requests end, their blocks come back
for i in 1 2 3 4 5 6; do
  curl -sN --max-time 0.3 "http://127.0.0.1:$port/v1/completions" \
    -d '{"prompt": "Once", "max_tokens": 250, "stream": true}' >/dev/null 2>&1 &
  curl -s --max-time 0.3 "http://127.0.0.1:$port/v1/completions" -d '{"prompt": "Once", "max_tokens": 250}' \
    >/dev/null 2>&1 &
done
sleep 1.5
cancelled=$(metric 'requests_total{outcome="cancelled"}')
if [ "$cancelled" -ge 6 ] && [ "$cancelled" -le 12 ]; then ok "12 clients gone mid-answer: $cancelled requests cancelled"
else bad "12 clients gone mid-answer: $cancelled requests cancelled"; fi
expect "$(metric 'kv_blocks{state="used"}') $(metric requests_running) $(metric requests_waiting)" "0 0 0" \
  "every KV block is back in the pool, nothing runs or waits"

# a client that sends slowly is dropped after --timeout (here the default 60 s would be too long: a second server)
start --parallel 1 --timeout 1 --max-waiting 1
t0=$(date +%s.%N)
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"pro' >&3
timeout 10 cat <&3 >/dev/null
exec 3<&-
secs=$(python3 -c "import time,sys; print(int(time.time() - float(sys.argv[1]) < 5))" "$t0")
expect "$secs" 1 "a body that stops coming: the connection is closed after --timeout 1"

# more requests than --parallel 1 runs and --max-waiting 1 queues: 429 for the rest
cpids=()
for i in 1 2 3 4 5 6; do
  curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/v1/completions" \
    -d '{"prompt": "Once", "max_tokens": 200, "temperature": 0}' >"$tmp/q$i" &
  cpids+=($!)
done
wait "${cpids[@]}"
codes=$(cat "$tmp"/q? | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
case "$codes" in
*200x*429x*) ok "6 requests at once with one running and one waiting: some 200, the rest 429 ($codes)" ;;
*) bad "6 requests at once with one running and one waiting: $codes" ;;
esac
expect "$(metric 'kv_blocks{state="used"}')" 0 "after them every block is back"

# an API key: 401 without it or with a wrong one; a pool of 4 blocks of 64 tokens for 8 at once, so that the
# OpenAI client's 16 requests preempt each other
start --parallel 8 --kv-mem 2M --api-key sekret
expect "$(post /health)" 401 "--api-key: no Authorization header: 401"
expect "$(post /v1/models -H 'Authorization: Bearer nope')" 401 "--api-key: a wrong key: 401"
expect "$(field 'd["error"]["code"]')" invalid_api_key "... with code invalid_api_key"
expect "$(post /v1/models -H 'Authorization: Bearer sekret')" 200 "--api-key: the key: 200"

# the OpenAI client (npm), against the keyed server: concurrency, streaming, errors
if [ -d "$here/js/node_modules/openai" ] && command -v node >/dev/null; then
  if (cd "$here/js" && node serve_client.mjs "http://127.0.0.1:$port/v1" sekret "$tmp/expected.json") >"$tmp/js.log" 2>&1; then
    ok "the OpenAI npm client: $(grep -c '^ok' "$tmp/js.log") checks"
  else
    bad "the OpenAI npm client: $(cat "$tmp/js.log")"
  fi
  expect "$(curl -s -H 'Authorization: Bearer sekret' "http://127.0.0.1:$port/metrics" | sed -n 's/^kvattn_kv_blocks{state="used"} //p')" 0 \
    "after the client's requests every block is back"
  preempted=$(curl -s -H 'Authorization: Bearer sekret' "http://127.0.0.1:$port/metrics" | sed -n 's/^kvattn_preemptions_total //p')
  if [ "${preempted:-0}" -gt 0 ]; then ok "... with $preempted preemptions on the way"; else bad "no preemption in a pool of 4 blocks"; fi
else
  echo "skipped: the OpenAI npm client (tests/js/node_modules/openai; scripts/install-deps.sh installs it)"
fi

# SIGTERM: the server stops and exits 0
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then bad "SIGTERM: the server is still running"; else
  wait "$pid"
  expect "$?" 0 "SIGTERM: the server exits 0"
fi

echo "test_serve: $pass passed, $fail failed"
[ "$fail" = 0 ]
