#!/usr/bin/python3
"""Brief §7's random-weight models for end-to-end speed runs (not CI), written with llama.cpp's
gguf-py, F16, synthetic vocabulary of 32000 (speed runs never read text):
  llama:     dim 2048, 16 layers, 32 heads, 8 KV heads, ff 5632 — 852M parameters
  deepseek2: dim 2048, 16 layers, 16 heads, latent 512 + rope 64, nope 128, v 128, dense ff 5632 — 905M

usage: PYTHONPATH=$LLAMA_CPP/gguf-py /usr/bin/python3 make_bench_gguf.py llama|deepseek2 OUT.gguf
"""
import sys

import numpy as np
import gguf

arch = sys.argv[1]
ds = arch == "deepseek2"
V, D, L, F = 32000, 2048, 16, 5632
H, KV = (16, 16) if ds else (32, 8)
hd = D // H
dc, dr, dn, dv = 512, 64, 128, 128
rng = np.random.default_rng(1)
w = gguf.GGUFWriter(sys.argv[2], arch)
w.add_name("bench-deepseek2-905m" if ds else "bench-llama-852m")
w.add_context_length(32768)
w.add_embedding_length(D)
w.add_block_count(L)
w.add_feed_forward_length(F)
w.add_head_count(H)
w.add_head_count_kv(KV)
w.add_rope_dimension_count(dr if ds else hd)
if ds:
    w.add_q_lora_rank(0)  # explicit: llama.cpp requires the key unless the model has 27 layers
    w.add_kv_lora_rank(dc)
    w.add_key_length(dn + dr)
    w.add_value_length(dv)
    w.add_expert_feed_forward_length(F)
    w.add_expert_shared_count(0)
    w.add_leading_dense_block_count(L)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(10000.0)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
w.add_tokenizer_model("llama")
toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["t%d" % i for i in range(V - 259)]
w.add_token_list(toks)
w.add_token_scores([0.0] * 259 + [-float(i) for i in range(V - 259)])
w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (V - 259))
w.add_bos_token_id(1)
w.add_eos_token_id(2)


def mat(rows, cols):
    return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float16)


w.add_tensor("token_embd.weight", mat(V, D))
w.add_tensor("output_norm.weight", np.ones(D, dtype=np.float32))
w.add_tensor("output.weight", mat(V, D))
for l in range(L):
    p = "blk.%d." % l
    w.add_tensor(p + "attn_norm.weight", np.ones(D, dtype=np.float32))
    if ds:
        w.add_tensor(p + "attn_q.weight", mat(H * (dn + dr), D))
        w.add_tensor(p + "attn_kv_a_mqa.weight", mat(dc + dr, D))
        w.add_tensor(p + "attn_kv_a_norm.weight", np.ones(dc, dtype=np.float32))
        w.add_tensor(p + "attn_kv_b.weight", mat(H * (dn + dv), dc))
        w.add_tensor(p + "attn_output.weight", mat(D, H * dv))
    else:
        w.add_tensor(p + "attn_q.weight", mat(H * hd, D))
        w.add_tensor(p + "attn_k.weight", mat(KV * hd, D))
        w.add_tensor(p + "attn_v.weight", mat(KV * hd, D))
        w.add_tensor(p + "attn_output.weight", mat(D, H * hd))
    w.add_tensor(p + "ffn_norm.weight", np.ones(D, dtype=np.float32))
    w.add_tensor(p + "ffn_gate.weight", mat(F, D))
    w.add_tensor(p + "ffn_up.weight", mat(F, D))
    w.add_tensor(p + "ffn_down.weight", mat(D, F))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
