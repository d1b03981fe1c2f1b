#!/usr/bin/env python3
"""Writes stories260K (llama2.c .bin + tok512.bin) as a Hugging Face Llama folder:
config.json, model.safetensors (or two shards + model.safetensors.index.json) and
tokenizer.json — the layout transformers' convert_llama_weights_to_hf produces,
including its permutation of the Q/K rows for rotate_half RoPE. Standard library
only (CI runs it); used by test_cli.sh to prove the safetensors loader and its RoPE
pairing against llama2.c's golden output.

usage: make_hf_stories.py MODELS_DIR OUT_DIR [F32|F16|BF16] [--shards]
"""
import array
import json
import os
import struct
import sys


def read_bin(path):
    with open(path, "rb") as f:
        head = struct.unpack("<7i", f.read(28))
        data = array.array("f")
        data.frombytes(f.read())
    dim, hidden, layers, heads, kv_heads, vocab, seq = head
    return dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, vocab=abs(vocab),
                shared=vocab > 0, seq=seq), data


def read_tok(path, n):
    pieces, scores = [], []
    with open(path, "rb") as f:
        f.read(4)
        for _ in range(n):
            score, length = struct.unpack("<fi", f.read(8))
            pieces.append(f.read(length).decode("utf-8"))
            scores.append(score)
    return pieces, scores


def permute(rows, n_heads, hs):
    """HF's layout: within each head, the even rows first, then the odd ones."""
    out = []
    for h in range(n_heads):
        head = rows[h * hs:(h + 1) * hs]
        out.extend(head[0::2] + head[1::2])
    return out


def to_bytes(values, dtype):
    a = array.array("f", values)
    if dtype == "F32":
        return a.tobytes()
    if dtype == "F16":
        return struct.pack("<%de" % len(a), *a)
    raw = array.array("I")
    raw.frombytes(a.tobytes())
    return array.array("H", [((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF for x in raw]).tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, (shape, values) in tensors:
        b = to_bytes(values, dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def main():
    models, out = sys.argv[1], sys.argv[2]
    dtype = sys.argv[3] if len(sys.argv) > 3 else "F32"
    shards = "--shards" in sys.argv
    cfg, w = read_bin(os.path.join(models, "stories260K.bin"))
    D, F, L, H, KV, V = cfg["dim"], cfg["hidden"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["vocab"]
    hs = D // H
    pos = 0

    def take(n):
        nonlocal pos
        pos += n
        return list(w[pos - n:pos])

    def rows(flat, n_rows, n_cols):
        return [flat[r * n_cols:(r + 1) * n_cols] for r in range(n_rows)]

    emb = take(V * D)
    attn_norm, wq, wk = take(L * D), take(L * D * D), take(L * D * KV * hs)
    wv, wo, ffn_norm = take(L * D * KV * hs), take(L * D * D), take(L * D)
    w1, w2, w3 = take(L * F * D), take(L * F * D), take(L * F * D)
    final_norm = take(D)
    tensors = [("model.embed_tokens.weight", ([V, D], emb)), ("model.norm.weight", ([D], final_norm))]
    for l in range(L):
        q = rows(wq[l * D * D:(l + 1) * D * D], D, D)
        k = rows(wk[l * KV * hs * D:(l + 1) * KV * hs * D], KV * hs, D)
        p = "model.layers.%d." % l
        tensors += [
            (p + "input_layernorm.weight", ([D], attn_norm[l * D:(l + 1) * D])),
            (p + "self_attn.q_proj.weight", ([D, D], sum(permute(q, H, hs), []))),
            (p + "self_attn.k_proj.weight", ([KV * hs, D], sum(permute(k, KV, hs), []))),
            (p + "self_attn.v_proj.weight", ([KV * hs, D], wv[l * KV * hs * D:(l + 1) * KV * hs * D])),
            (p + "self_attn.o_proj.weight", ([D, D], wo[l * D * D:(l + 1) * D * D])),
            (p + "post_attention_layernorm.weight", ([D], ffn_norm[l * D:(l + 1) * D])),
            (p + "mlp.gate_proj.weight", ([F, D], w1[l * F * D:(l + 1) * F * D])),
            (p + "mlp.down_proj.weight", ([D, F], w2[l * F * D:(l + 1) * F * D])),
            (p + "mlp.up_proj.weight", ([F, D], w3[l * F * D:(l + 1) * F * D])),
        ]
    os.makedirs(out, exist_ok=True)
    if shards:
        half = len(tensors) // 2
        parts = [("model-00001-of-00002.safetensors", tensors[:half]), ("model-00002-of-00002.safetensors", tensors[half:])]
        weight_map = {}
        for fname, part in parts:
            write_safetensors(os.path.join(out, fname), part, dtype)
            weight_map.update({name: fname for name, _ in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
    else:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
                   "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H,
                   "num_key_value_heads": KV, "vocab_size": V, "max_position_embeddings": cfg["seq"],
                   "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": cfg["shared"],
                   "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}, f, indent=1)

    pieces, _ = read_tok(os.path.join(models, "tok512.bin"), V)
    names = {0: "<unk>", 1: "<s>", 2: "</s>"}
    vocab = {}
    for i, p in enumerate(pieces):
        vocab[names.get(i, p.replace(" ", "\u2581") if i > 258 else p)] = i
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    merges = []
    for piece, i in by_id[259:]:  # in the order of their scores, best first
        for k in range(1, len(piece)):
            if piece[:k] in vocab and piece[k:] in vocab:
                merges.append(piece[:k] + " " + piece[k:])
    tok = {"version": "1.0",
           "added_tokens": [{"id": i, "content": names[i], "special": True} for i in range(3)],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                              {"type": "Replace", "pattern": {"String": " "},
                                                               "content": "\u2581"}]},
           "pre_tokenizer": None,
           "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "byte_fallback": True,
                     "vocab": vocab, "merges": merges}}
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
