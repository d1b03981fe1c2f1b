// Drives `kvattn serve` with the official OpenAI client (npm `openai`), as an
// application would, and checks what it gets back (tests/test_serve.sh).
// usage: node serve_client.mjs BASE_URL API_KEY EXPECTED.json
//   EXPECTED.json: [{"prompt": P, "text": greedy text of `kvattn run --temp 0 -n N`, "n": N}, ...]
// Prints one line per check; exits 1 if any failed.
import OpenAI from "openai";
import { readFileSync } from "node:fs";

const [baseURL, apiKey, expectedPath] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAILED"}: ${what}`);
  if (!ok) failed++;
};

const models = await client.models.list();
const model = models.data[0]?.id;
check(models.data.length === 1 && typeof model === "string", `models.list gives one model (${model})`);

// greedy completions, one at a time, against kvattn run
const first = expected[0];
const one = await client.completions.create({ model, prompt: first.prompt, max_tokens: first.n, temperature: 0 });
check(one.choices[0].text === first.text, `completion equals kvattn run: ${JSON.stringify(one.choices[0].text.slice(0, 40))}`);
check(one.usage.completion_tokens > 0 && one.usage.total_tokens === one.usage.prompt_tokens + one.usage.completion_tokens,
  `usage adds up (${JSON.stringify(one.usage)})`);
check(one.object === "text_completion" && one.model === model && one.id.startsWith("cmpl-"), "completion object fields");

// the same streamed
let streamed = "", finish = null, usage = null, chunks = 0;
const stream = await client.completions.create({ model, prompt: first.prompt, max_tokens: first.n, temperature: 0,
  stream: true, stream_options: { include_usage: true } });
for await (const c of stream) {
  if (c.choices.length) { streamed += c.choices[0].text; finish = c.choices[0].finish_reason ?? finish; chunks++; }
  if (c.usage) usage = c.usage;
}
check(streamed === first.text && chunks > 1, `streamed completion equals it, in ${chunks} chunks`);
check(finish === one.choices[0].finish_reason && usage?.completion_tokens === one.usage.completion_tokens,
  `stream's finish (${finish}) and usage match`);

// 16 at once, every one greedy: each equals its lone run whatever else runs beside it
const all = await Promise.all(expected.map((e) =>
  client.completions.create({ model, prompt: e.prompt, max_tokens: e.n, temperature: 0 })));
const same = all.filter((r, i) => r.choices[0].text === expected[i].text).length;
check(same === expected.length, `${expected.length} concurrent completions equal kvattn run: ${same}`);

// chat, plain and streamed (a model without a template: the message is the prompt)
const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: first.prompt }],
  max_tokens: first.n, temperature: 0 });
check(chat.choices[0].message.role === "assistant" && chat.choices[0].message.content === first.text,
  "chat completion (plain format) equals the completion");
let chatText = "", sawRole = false;
for await (const c of await client.chat.completions.create({ model, messages: [{ role: "user", content: first.prompt }],
  max_tokens: first.n, temperature: 0, stream: true })) {
  if (c.choices[0]?.delta?.role === "assistant") sawRole = true;
  chatText += c.choices[0]?.delta?.content ?? "";
}
check(sawRole && chatText === first.text, "streamed chat equals it, the role in its first chunk");

// sampled with a seed: the same seed, the same text
const seeded = () => client.completions.create({ model, prompt: first.prompt, max_tokens: 30, temperature: 1, seed: 42 });
const [s1, s2] = await Promise.all([seeded(), seeded()]);
check(s1.choices[0].text === s2.choices[0].text, "two requests with seed 42 give the same text");

// a stop string: the text ends before it
const cut = first.text.indexOf(" ", 10);
if (cut > 0) {
  const stopAt = first.text.slice(cut, cut + 4);
  const stopped = await client.completions.create({ model, prompt: first.prompt, max_tokens: first.n, temperature: 0,
    stop: [stopAt] });
  check(stopped.choices[0].finish_reason === "stop" && first.text.startsWith(stopped.choices[0].text) &&
    !stopped.choices[0].text.includes(stopAt), `stop ${JSON.stringify(stopAt)} ends the text before it`);
}

// errors come as the client's typed errors
const status = async (p) => { try { await p; return 200; } catch (e) { return e.status ?? String(e); } };
check(await status(client.completions.create({ model, prompt: first.prompt, max_tokens: -1 })) === 400,
  "max_tokens -1: 400 (BadRequestError)");
check(await status(client.completions.create({ model: "no-such-model", prompt: "x" })) === 404,
  "an unknown model: 404");
const wrongKey = new OpenAI({ baseURL, apiKey: apiKey + "-wrong", maxRetries: 0 });
const keyed = apiKey !== "none";
check(await status(wrongKey.models.list()) === (keyed ? 401 : 200),
  keyed ? "a wrong API key: 401 (AuthenticationError)" : "no API key asked: any key passes");

console.log(failed ? `serve_client: ${failed} failed` : "serve_client: all passed");
process.exit(failed ? 1 : 0);
