#!/usr/bin/env bash
# kvattn serve against llama.cpp's llama-server on one GGUF, N concurrent streams at a time
# (bench/serve_load.mjs): aggregate generated tokens/s, time to first token p50/p99, and KV
# memory. For each N both servers are started fresh with N slots and the same context per
# sequence, then loaded in turn (kvattn, then llama-server; with --twice 1 kvattn again, so a
# drift of the machine shows as a gap between kvattn's two runs). With --soak S, a soak of kvattn
# alone follows: S seconds of random requests with random disconnects, its RSS read before,
# every tenth of the soak and after, and its KV blocks before and after.
#
# usage: bench/serve_bench.sh MODEL.gguf [--streams 1,4,16,64] [--requests 16] [--max-tokens 128]
#          [--ctx 512] [--threads 2] [--kvattn PATH] [--llama-server PATH] [--soak SECONDS] [--twice 1]
#          [--kv-mem SIZE]   (kvattn's pool; default: N contexts, llama-server's KV size)
# Prints a table on stderr and one JSON object per run on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${1:?usage: serve_bench.sh MODEL.gguf [options]}
shift
streams=1,4,16,64 requests=16 max_tokens=128 twice=0 ctx=512 threads=2 soak=0 kv_mem=
kvattn=$here/../build/kvattn
llama_server=${LLAMA_SERVER:-/tmp/llama.cpp/build/bin/llama-server}
while [ $# -gt 0 ]; do
  case $1 in
  --streams) streams=$2 ;;
  --requests) requests=$2 ;;
  --twice) twice=$2 ;;
  --max-tokens) max_tokens=$2 ;;
  --ctx) ctx=$2 ;;
  --threads) threads=$2 ;;
  --kvattn) kvattn=$2 ;;
  --llama-server) llama_server=$2 ;;
  --soak) soak=$2 ;;
  --kv-mem) kv_mem=$2 ;;
  *) echo "serve_bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$kvattn" ] || { echo "serve_bench: no kvattn at $kvattn (--kvattn)" >&2; exit 2; }
have_llama=1
[ -x "$llama_server" ] || { echo "serve_bench: no llama-server at $llama_server: kvattn alone" >&2; have_llama=0; }
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo "serve_bench: $(basename "$model"), $cpu, $threads threads, context $ctx a sequence, $max_tokens tokens a request, at least $requests requests a run" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kib() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }

start_kvattn() { # N
  local log=$tmp/kvattn.log
  "$kvattn" serve -m "$model" --port 0 -t "$threads" -c "$ctx" --parallel "$1" ${kv_mem:+--kv-mem "$kv_mem"} \
    --max-waiting 4096 2>"$log" &
  server=$!
  port=
  for _ in $(seq 600); do
    port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "serve_bench: kvattn serve did not start: $(cat "$log")" >&2; exit 1; }
  kv_note=$(grep -m1 -o 'KV pool [^)]*)' "$log" || true)
}

start_llama() { # N
  port=$(free_port)
  "$llama_server" -m "$model" --port "$port" -t "$threads" -tb "$threads" -np "$1" -c $((ctx * $1)) -cb \
    --no-webui >"$tmp/llama.log" 2>&1 &
  server=$!
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
    kill -0 "$server" 2>/dev/null || { echo "serve_bench: llama-server died: $(tail -5 "$tmp/llama.log")" >&2; exit 1; }
    sleep 0.1
  done
}

stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=
}

run() { # NAME N
  local rss0
  rss0=$(rss_kib "$server")
  local out
  out=$(node "$here/serve_load.mjs" --url "http://127.0.0.1:$port" --streams "$2" --requests "$requests" \
    --max-tokens "$max_tokens" --json)
  local rss1
  rss1=$(rss_kib "$server")
  python3 - "$1" "$out" "$rss0" "$rss1" "$(basename "$model")" "$cpu" "$threads" <<'EOF'
import json, sys
name, out, rss0, rss1, model, cpu, threads = sys.argv[1:]
r = json.loads(out)["results"][0]
r.update(server=name, model=model, cpu=cpu, threads=int(threads), rss_mib_before=round(int(rss0) / 1024),
         rss_mib_after=round(int(rss1) / 1024))
kv = f"KV peak {r['kv_peak_mib']} MiB, {r['running_peak']} running at most, {r['preemptions']} preemptions" if "kv_peak_mib" in r else ""
print(json.dumps(r))
print(f"  {name:13s} {r['streams']:3d} streams: {r['tok_per_s']:8.1f} tok/s  TTFT p50 {r['ttft_p50_ms']:8.1f} ms  "
      f"p99 {r['ttft_p99_ms']:8.1f} ms  {r['requests']:4d} requests  {r['errors']} errors  RSS {r['rss_mib_after']} MiB  {kv}",
      file=sys.stderr)
EOF
}

kv_per_token=$("$kvattn" info -m "$model" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["kv_bytes_per_token"])')
for n in ${streams//,/ }; do
  start_kvattn "$n"
  echo "  kvattn KV pool: $kv_note" >&2
  run kvattn "$n"
  stop
  if [ "$have_llama" = 1 ]; then
    start_llama "$n"
    echo "  llama-server KV cache: $((ctx * n)) tokens allocated at start, $((ctx * n * kv_per_token / 1048576)) MiB" \
      "(f16, at kvattn's bytes a token)" >&2
    run llama-server "$n"
    stop
  fi
  if [ "$twice" = 1 ]; then
    start_kvattn "$n"
    run kvattn-again "$n"
    stop
  fi
done

if [ "$soak" -gt 0 ]; then
  n=${streams##*,}
  start_kvattn "$n"
  node "$here/serve_load.mjs" --url "http://127.0.0.1:$port" --streams "$n" --requests "$n" \
    --max-tokens "$max_tokens" --json >/dev/null
  rss0=$(rss_kib "$server")
  # RSS every soak/10 seconds, to tell growth that levels off from growth that does not
  (while sleep $(((soak + 9) / 10)); do rss_kib "$server" >>"$tmp/rss" || break; done) &
  sampler=$!
  soak_out=$(node "$here/serve_load.mjs" --url "http://127.0.0.1:$port" --streams "$n" --max-tokens "$max_tokens" \
    --soak "$soak" --json) || { echo "serve_bench: the soak found problems: $soak_out" >&2; kill "$sampler"; exit 1; }
  kill "$sampler" 2>/dev/null || true
  rss1=$(rss_kib "$server")
  series=$(awk '{printf "%s%d", (NR > 1 ? "," : ""), $1 / 1024}' "$tmp/rss" 2>/dev/null)
  echo "$soak_out" | python3 -c 'import json,sys; d=json.load(sys.stdin); d.update(rss_mib_before=int(sys.argv[1])//1024, rss_mib_after=int(sys.argv[2])//1024, rss_mib_during=[int(x) for x in sys.argv[3].split(",") if x]); print(json.dumps(d))' "$rss0" "$rss1" "$series"
  echo "  soak: $soak s, $n streams: $soak_out; RSS $((rss0 / 1024)) -> [$series] -> $((rss1 / 1024)) MiB" >&2
  stop
fi
