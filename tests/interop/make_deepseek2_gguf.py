#!/usr/bin/python3
"""A random-weight deepseek2 GGUF written with llama.cpp's own gguf-py (the interop check
of issue #5; not run in CI). The vocabulary is stories260K's tok512.bin, so both engines can
print text. Weights are scaled so logits are peaked: greedy choices are far from ties.

usage: PYTHONPATH=$LLAMA_CPP/gguf-py /usr/bin/python3 make_deepseek2_gguf.py MODELS_DIR OUT.gguf
           [--moe] [--q-lora] [--split-kv-b] [--yarn] [--f16]
"""
import sys

import numpy as np
import gguf
from tok512 import add_tok512_vocab


def main():
    models, out = sys.argv[1], sys.argv[2]
    moe, qlora, split, yarn, f16 = ("--moe" in sys.argv, "--q-lora" in sys.argv, "--split-kv-b" in sys.argv,
                                    "--yarn" in sys.argv, "--f16" in sys.argv)
    rng = np.random.default_rng(7 + 2 * moe + 4 * qlora + 8 * split)
    # llama.cpp reads a deepseek2 without q_lora_rank only at 27 layers (its V2-Lite detection)
    V, D, L, H, F = 512, 128, 3 if qlora else 27, 4, 192
    dc, dr, dn, dv, ql = 64, 32, 32, 32, 48
    E, K, S, Fm = 8, 2, 1, 64

    w = gguf.GGUFWriter(out, "deepseek2")
    w.add_name("tiny-deepseek2" + ("-moe" if moe else "") + ("-qlora" if qlora else ""))
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(1 if split else H)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(dr)
    if qlora:
        w.add_q_lora_rank(ql)
    w.add_kv_lora_rank(dc)
    if split:
        w.add_key_length(dc + dr)
        w.add_value_length(dc)
        w.add_key_length_mla(dn + dr)
        w.add_value_length_mla(dv)
    else:
        w.add_key_length(dn + dr)
        w.add_value_length(dv)
    if yarn:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(40.0)
        w.add_rope_scaling_orig_ctx_len(64)
        w.add_rope_scaling_yarn_log_mul(0.1 * 0.707)
    w.add_expert_feed_forward_length(Fm)  # llama.cpp requires these two even for dense models
    w.add_expert_shared_count(S if moe else 0)
    w.add_leading_dense_block_count(1 if moe else L)  # llama.cpp: layers past this count are MoE
    if moe:
        w.add_expert_count(E)
        w.add_expert_used_count(K)
        w.add_expert_weights_scale(1.0)
        w.add_expert_weights_norm(False)
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    add_tok512_vocab(w, models, V)

    dt = np.float16 if f16 else np.float32

    def mat(rows, cols, scale=1.0):
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(dt)

    def vec(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", (rng.standard_normal((V, D))).astype(dt))
    w.add_tensor("output_norm.weight", vec(D))
    w.add_tensor("output.weight", mat(V, D, 6.0))
    for l in range(L):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", vec(D))
        if qlora:
            w.add_tensor(p + "attn_q_a.weight", mat(ql, D))
            w.add_tensor(p + "attn_q_a_norm.weight", vec(ql))
            w.add_tensor(p + "attn_q_b.weight", mat(H * (dn + dr), ql))
        else:
            w.add_tensor(p + "attn_q.weight", mat(H * (dn + dr), D))
        w.add_tensor(p + "attn_kv_a_mqa.weight", mat(dc + dr, D))
        w.add_tensor(p + "attn_kv_a_norm.weight", vec(dc))
        kv_b = mat(H * (dn + dv), dc)
        if split:  # as llama.cpp's converter splits it: k_b transposed per head
            kvb = kv_b.reshape(H, dn + dv, dc)
            w.add_tensor(p + "attn_k_b.weight", np.ascontiguousarray(kvb[:, :dn, :].transpose(0, 2, 1)))
            w.add_tensor(p + "attn_v_b.weight", np.ascontiguousarray(kvb[:, dn:, :]))
        else:
            w.add_tensor(p + "attn_kv_b.weight", kv_b)
        w.add_tensor(p + "attn_output.weight", mat(D, H * dv))
        w.add_tensor(p + "ffn_norm.weight", vec(D))
        if moe and l >= 1:
            w.add_tensor(p + "ffn_gate_inp.weight", mat(E, D, 4.0).astype(np.float32))
            w.add_tensor(p + "ffn_gate_exps.weight", np.stack([mat(Fm, D) for _ in range(E)]))
            w.add_tensor(p + "ffn_up_exps.weight", np.stack([mat(Fm, D) for _ in range(E)]))
            w.add_tensor(p + "ffn_down_exps.weight", np.stack([mat(D, Fm) for _ in range(E)]))
            w.add_tensor(p + "ffn_gate_shexp.weight", mat(S * Fm, D))
            w.add_tensor(p + "ffn_up_shexp.weight", mat(S * Fm, D))
            w.add_tensor(p + "ffn_down_shexp.weight", mat(D, S * Fm))
        else:
            w.add_tensor(p + "ffn_gate.weight", mat(F, D))
            w.add_tensor(p + "ffn_up.weight", mat(F, D))
            w.add_tensor(p + "ffn_down.weight", mat(D, F))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
