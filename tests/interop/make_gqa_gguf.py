#!/usr/bin/python3
"""A random-weight qwen2, qwen3, Mixtral (llama with experts) or llama GGUF written with llama.cpp's
own gguf-py (the interop check of issue #20; not run in CI), and with --hf DIR the same weights as a
Hugging Face folder (config.json + model.safetensors, HF's names and Q/K row order). The vocabulary
is stories260K's tok512.bin, so both engines can print text. Weights are scaled so logits are
peaked: greedy choices are far from ties.

usage: PYTHONPATH=$LLAMA_CPP/gguf-py /usr/bin/python3 make_gqa_gguf.py MODELS_DIR OUT.gguf
           --arch qwen2|qwen3|mixtral|llama [--f16] [--tied] [--llama3-rope] [--hf DIR]

--llama3-rope: Llama 3.1's RoPE scaling (factor 8, low 1, high 4) over an original context of 64,
so that the short generations here reach all three bands: rope_freqs.weight in the GGUF, computed
as llama.cpp's converter computes it, and rope_scaling in config.json.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from tok512 import add_tok512_vocab


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def to_half_order(w, hd):
    """GGUF llama's Q/K rows (adjacent pairs per head) in HF's rotate_half order."""
    rows = w.shape[0]
    r = w.reshape(rows // hd, hd // 2, 2, *w.shape[1:])
    return np.ascontiguousarray(np.swapaxes(r, 1, 2).reshape(w.shape))


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    models, out, arch = sys.argv[1], sys.argv[2], arg("--arch")
    f16, tied, hf, llama3 = "--f16" in sys.argv, "--tied" in sys.argv, arg("--hf"), "--llama3-rope" in sys.argv
    moe = arch == "mixtral"
    gguf_arch = "llama" if moe else arch
    rng = np.random.default_rng({"qwen2": 3, "qwen3": 5, "mixtral": 7, "llama": 9}[arch] + 11 * tied + 13 * llama3)
    V, D, L, H, KV, F = 512, 128, 3, 4, 2, 192
    hd = 48 if arch == "qwen3" else D // H  # qwen3: head_dim · heads ≠ d_model, as Qwen3 models have
    E, K = 8, 2

    w = gguf.GGUFWriter(out, gguf_arch)
    w.add_name(f"tiny-{arch}")
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    if hd * H != D:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_layer_norm_rms_eps(1e-6)
    theta = 1000000.0 if arch.startswith("qwen") else 10000.0
    w.add_rope_freq_base(theta)
    if gguf_arch == "llama":
        w.add_rope_dimension_count(hd)
    if moe:
        w.add_expert_count(E)
        w.add_expert_used_count(K)
    add_tok512_vocab(w, models, V)

    dt = np.float16 if f16 else np.float32
    hf_t = {}

    def mat(rows, cols, scale=1.0):
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(dt)

    def vec(n, around=1.0):
        return (around + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def put(name, t, hf_name=None, hf_value=None):
        w.add_tensor(name, t)
        if hf_name:
            hf_t[hf_name] = (t if hf_value is None else hf_value).astype(np.float32)

    if llama3:  # llama.cpp's converter: a divisor per pair, 1 above the high band, factor below the low
        factor, low, high, orig = 8.0, 1.0, 4.0, 64
        divisors = []
        for i in range(hd // 2):
            wavelen = 2 * np.pi * theta ** (2 * i / hd)
            if wavelen < orig / high:
                divisors.append(1.0)
            elif wavelen > orig / low:
                divisors.append(factor)
            else:
                smooth = (orig / wavelen - low) / (high - low)
                divisors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(divisors, dtype=np.float32))
    put("token_embd.weight", rng.standard_normal((V, D)).astype(dt), "model.embed_tokens.weight")
    put("output_norm.weight", vec(D), "model.norm.weight")
    if not tied:
        put("output.weight", mat(V, D, 6.0), "lm_head.weight")
    for l in range(L):
        p, hp = f"blk.{l}.", f"model.layers.{l}."
        put(p + "attn_norm.weight", vec(D), hp + "input_layernorm.weight")
        for n, rows in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
            m = mat(rows, D)
            # GGUF llama keeps Q/K in adjacent-pair order; HF (and GGUF qwen) in rotate_half order
            put(p + f"attn_{n}.weight", m, hp + f"self_attn.{n}_proj.weight",
                to_half_order(m, hd) if gguf_arch == "llama" and n != "v" else None)
            if arch == "qwen2":
                put(p + f"attn_{n}.bias", (0.5 * rng.standard_normal(rows)).astype(np.float32),
                    hp + f"self_attn.{n}_proj.bias")
        if arch == "qwen3":
            put(p + "attn_q_norm.weight", vec(hd, 1.2), hp + "self_attn.q_norm.weight")
            put(p + "attn_k_norm.weight", vec(hd, 0.8), hp + "self_attn.k_norm.weight")
        put(p + "attn_output.weight", mat(D, H * hd), hp + "self_attn.o_proj.weight")
        put(p + "ffn_norm.weight", vec(D), hp + "post_attention_layernorm.weight")
        if moe:
            put(p + "ffn_gate_inp.weight", mat(E, D, 4.0).astype(np.float32), hp + "block_sparse_moe.gate.weight")
            for n, hn, shape in (("gate", "w1", (F, D)), ("up", "w3", (F, D)), ("down", "w2", (D, F))):
                st = np.stack([mat(*shape) for _ in range(E)])
                w.add_tensor(p + f"ffn_{n}_exps.weight", st)
                for e in range(E):
                    hf_t[hp + f"block_sparse_moe.experts.{e}.{hn}.weight"] = st[e].astype(np.float32)
        else:
            put(p + "ffn_gate.weight", mat(F, D), hp + "mlp.gate_proj.weight")
            put(p + "ffn_up.weight", mat(F, D), hp + "mlp.up_proj.weight")
            put(p + "ffn_down.weight", mat(D, F), hp + "mlp.down_proj.weight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    if hf:
        os.makedirs(hf, exist_ok=True)
        cfg = {"model_type": arch, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
               "num_key_value_heads": KV, "head_dim": hd, "intermediate_size": F, "vocab_size": V,
               "rms_norm_eps": 1e-6, "rope_theta": theta,
               "tie_word_embeddings": tied, "max_position_embeddings": 256, "bos_token_id": 1, "eos_token_id": 2}
        if moe:
            cfg.update(num_local_experts=E, num_experts_per_tok=K)
        if llama3:
            cfg["rope_scaling"] = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                                   "high_freq_factor": high, "original_max_position_embeddings": orig}
        with open(os.path.join(hf, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        write_safetensors(os.path.join(hf, "model.safetensors"), hf_t)


if __name__ == "__main__":
    main()
