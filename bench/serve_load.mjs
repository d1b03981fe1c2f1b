// Load on an OpenAI-compatible server (kvattn serve, llama.cpp's llama-server): N streams at
// once, each sending streamed completions one after another (at least --requests in all, two a
// stream), every one --max-tokens long unless the model ends it. Reports aggregate
// generated tokens/s, time to first token (p50, p99), requests and errors; with --soak, random
// requests of every kind with random disconnects, checking every answer's form.
// Node 20, no packages. bench/serve_bench.sh drives it against both servers.
//
// usage: node serve_load.mjs --url http://127.0.0.1:8080 [--streams 1,4,16,64] [--requests 16]
//          [--max-tokens 128] [--prompts FILE] [--api-key KEY] [--model ID] [--json] [--soak SECONDS]
import { readFileSync } from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "1"]);
  return acc;
}, []));
const url = args.url ?? "http://127.0.0.1:8080";
const streamsList = (args.streams ?? "1,4,16,64").split(",").map(Number);
const minRequests = Number(args.requests ?? 16); // a run: at least this many requests, and 2 a stream
const maxTokens = Number(args["max-tokens"] ?? 128);
const headers = { "Content-Type": "application/json", ...(args["api-key"] ? { Authorization: `Bearer ${args["api-key"]}` } : {}) };
const prompts = args.prompts ? readFileSync(args.prompts, "utf8").split("\n").filter((l) => l.trim()) : [
  "Once upon a time", "The little dog", "Tom and Sue went to the park", "One day, a girl named Lily",
  "There was a big red ball", "The sun was hot and", "A bird sat on a tree", "Ben wanted to play",
];
const model = args.model ?? (await (await fetch(`${url}/v1/models`, { headers })).json()).data[0].id;

const pct = (xs, p) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

// One streamed completion: tokens (from usage, else the chunks with text), time to first text.
async function completion(prompt, max_tokens, { abortAfterMs, temperature = 0, seed } = {}) {
  const ctl = new AbortController();
  const t0 = performance.now();
  let timer;
  if (abortAfterMs !== undefined) timer = setTimeout(() => ctl.abort(), abortAfterMs);
  let res;
  try {
    res = await fetch(`${url}/v1/completions`, { method: "POST", headers, signal: ctl.signal, body: JSON.stringify({
      model, prompt, max_tokens, temperature, seed, stream: true, stream_options: { include_usage: true } }) });
  } catch (e) {
    clearTimeout(timer);
    if (ctl.signal.aborted) return { status: 200, aborted: true };
    throw e;
  }
  if (!res.ok) { clearTimeout(timer); return { status: res.status, body: await res.text() }; }
  let ttft = null, chunks = 0, usage = null, done = false, buf = "", text = "";
  const decoder = new TextDecoder();
  try {
    for await (const part of res.body) {
      buf += decoder.decode(part, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
        if (!ev.startsWith("data: ")) throw new Error(`not an event: ${ev.slice(0, 80)}`);
        const data = ev.slice(6);
        if (data === "[DONE]") { done = true; continue; }
        const j = JSON.parse(data);
        if (j.error) throw new Error(`error event: ${JSON.stringify(j.error)}`);
        if (j.usage) usage = j.usage;
        const t = j.choices?.[0]?.text ?? "";
        if (t.length) { if (ttft === null) ttft = performance.now() - t0; chunks++; text += t; }
      }
    }
  } catch (e) {
    clearTimeout(timer);
    if (ctl.signal.aborted) return { status: 200, aborted: true };
    throw e;
  }
  clearTimeout(timer);
  if (!done) throw new Error("a stream ended without [DONE]");
  return { status: 200, ttft, tokens: usage?.completion_tokens ?? chunks, ms: performance.now() - t0, text };
}

// N streams, each sending `per` requests one after another: every request of a run has the
// same length, so the aggregate rate is the run's tokens over its wall time.
async function load(n, per) {
  const ttfts = [];
  let tokens = 0, requests = 0, errors = 0, k = 0;
  const t0 = performance.now();
  // kvattn's /metrics: the most KV blocks in use during the run, as bytes, and the most requests
  // running at once (the rest wait for blocks or a slot)
  let peakBlocks = 0, blockBytes = 0, peakRunning = 0, polling = true;
  const preemptions = async () => Number(/^kvattn_preemptions_total (\d+)/m.exec(await metrics())?.[1] ?? NaN);
  const preempted0 = await preemptions();
  const poller = (async () => {
    while (polling) {
      const m = await metrics();
      const used = Number(/^kvattn_kv_blocks\{state="used"\} (\d+)/m.exec(m)?.[1] ?? NaN);
      const all = ["used", "cached", "free"].reduce((a, st) =>
        a + Number(new RegExp(`^kvattn_kv_blocks\\{state="${st}"\\} (\\d+)`, "m").exec(m)?.[1] ?? 0), 0);
      const bytes = Number(/^kvattn_kv_pool_bytes (\d+)/m.exec(m)?.[1] ?? NaN);
      if (Number.isFinite(used)) { peakBlocks = Math.max(peakBlocks, used); blockBytes = bytes / all; }
      const running = Number(/^kvattn_requests_running (\d+)/m.exec(m)?.[1] ?? NaN);
      if (Number.isFinite(running)) peakRunning = Math.max(peakRunning, running);
      await new Promise((ok) => setTimeout(ok, 250));
    }
  })();
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = 0; i < per; i++) {
      const i = k++; /* a prompt of its own: no answer comes from another request's cache whole */
      const r = await completion(`${i}. ${prompts[i % prompts.length]}`, maxTokens).catch((e) => ({ status: String(e) }));
      if (r.status !== 200) { errors++; continue; }
      requests++, tokens += r.tokens, ttfts.push(r.ttft ?? r.ms);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  polling = false;
  await poller;
  const preempted = (await preemptions()) - preempted0;
  return { streams: n, requests, errors, tokens, seconds: +secs.toFixed(2), tok_per_s: +(tokens / secs).toFixed(2),
    ttft_p50_ms: +pct(ttfts, 0.5).toFixed(1), ttft_p99_ms: +pct(ttfts, 0.99).toFixed(1),
    ...(blockBytes ? { kv_peak_mib: +(peakBlocks * blockBytes / 1048576).toFixed(2), running_peak: peakRunning,
      preemptions: preempted } : {}) };
}

async function metrics() {
  const r = await fetch(`${url}/metrics`, { headers }).catch(() => null);
  return r && r.ok ? await r.text() : "";
}

// Random requests for a while: streamed or not, completions and chats, some cut off mid-answer,
// some invalid; every answer must have the form its kind promises.
async function soak(secs, n) {
  const until = performance.now() + secs * 1000;
  const seen = { ok: 0, aborted: 0, rejected: 0, bad: 0 };
  const problems = [];
  const rnd = (k) => Math.floor(Math.random() * k);
  await Promise.all(Array.from({ length: n }, async () => {
    while (performance.now() < until) {
      const kind = rnd(10);
      try {
        if (kind < 5) {
          const r = await completion(prompts[rnd(prompts.length)], 1 + rnd(maxTokens),
            { abortAfterMs: kind < 2 ? rnd(400) : undefined, temperature: rnd(2), seed: rnd(1000) });
          if (r.aborted) seen.aborted++;
          else if (r.status === 200) seen.ok++;
          else if (r.status === 429) seen.rejected++;
          else throw new Error(`status ${r.status}: ${r.body}`);
        } else if (kind < 8) {
          const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify({
            model, messages: [{ role: "user", content: prompts[rnd(prompts.length)] }], max_tokens: 1 + rnd(maxTokens) }) });
          const j = await res.json();
          if (res.status === 429) { seen.rejected++; continue; }
          if (res.status !== 200 || typeof j.choices?.[0]?.message?.content !== "string" || !j.usage)
            throw new Error(`chat: ${res.status} ${JSON.stringify(j).slice(0, 200)}`);
          seen.ok++;
        } else {
          const bodies = ['{"prompt": 5}', '{"prompt": "x", "max_tokens": 0}', '{', '{"messages": []}'];
          const res = await fetch(`${url}/v1/${kind === 8 ? "completions" : "chat/completions"}`, { method: "POST", headers,
            body: bodies[rnd(bodies.length)] });
          const j = await res.json();
          if (res.status !== 400 || typeof j.error?.message !== "string") throw new Error(`bad request: ${res.status} ${JSON.stringify(j)}`);
          seen.bad++;
        }
      } catch (e) { problems.push(String(e).slice(0, 300)); }
    }
  }));
  return { seen, problems };
}

if (args.soak) {
  const before = await metrics();
  const r = await soak(Number(args.soak), Math.max(...streamsList));
  await new Promise((ok) => setTimeout(ok, 1000));
  const after = await metrics();
  const used = (m) => Number(/^kvattn_kv_blocks\{state="used"\} (\d+)/m.exec(m)?.[1] ?? NaN);
  const out = { soak_seconds: Number(args.soak), ...r, kv_blocks_used_before: used(before), kv_blocks_used_after: used(after) };
  console.log(args.json ? JSON.stringify(out) : out);
  process.exit(r.problems.length ? 1 : 0);
}
const results = [];
for (const n of streamsList) {
  const r = await load(n, Math.max(2, Math.ceil(minRequests / n)));
  results.push(r);
  if (!args.json) console.error(`${n} streams: ${r.tok_per_s} tok/s, TTFT p50 ${r.ttft_p50_ms} ms p99 ${r.ttft_p99_ms} ms, ${r.requests} requests, ${r.errors} errors`);
}
if (args.json) console.log(JSON.stringify({ url, model, max_tokens: maxTokens, results }));
