#!/usr/bin/python3
"""Golden gradients for kvattn's training (src/train), computed by PyTorch's autograd.

Two tiny models with random weights, each run forward over one window of T tokens
(positions 0..T-1, causal) and scored as kvattn uptrain scores a window: at each
position, with the teacher's log-probabilities given, ce_weight x cross-entropy on
the target plus (1 - ce_weight) x KL(teacher || model), or the KL alone where the
target is -1; the mean over the T positions. loss.backward() gives the gradient
of every weight.

- train_llama: a llama model (GQA, 2 KV heads for 4 query heads; RoPE on adjacent
  pairs, as GGUF's llama layout has it; untied output), the model of
  gen_golden.gqa_model_fixture.
- train_mla: a dense deepseek2 model (MLA without q compression, the latent normed,
  decoupled RoPE, YaRN on), its attention in DeepSeek-V3 model.py's naive form (the
  one it trains in: keys and values expanded from the latent), gen_golden.ReferenceMLA.

Everything runs in float64 (RoPE's angles float32, as in the references). The
fixtures hold what gen_golden's model fixtures hold (so the tests write them as
GGUF the same way), plus "targets", "teacher_logp", "ce_weight", "loss" and
"grad.<tensor name>" for every weight.

Run: /usr/bin/python3 tests/golden/gen_train_grads.py   (Debian's python3-torch)
"""
import math
import os

import torch

import gen_golden as G

T = 10
CE_WEIGHT = 0.4


def teacher_and_targets(gen, V):
    teacher_logp = torch.log_softmax(3.0 * torch.randn(T, V, generator=gen, dtype=torch.float64), -1)
    targets = torch.randint(0, V, (T,), generator=gen)
    targets[3::4] = -1  # positions scored by the KL alone
    return teacher_logp, targets


def window_loss(logits, teacher_logp, targets):
    logp = torch.log_softmax(logits, -1)
    kl = (teacher_logp.exp() * (teacher_logp - logp)).sum(-1)
    total = 0.0
    for t in range(T):
        if targets[t] >= 0:
            total = total + CE_WEIGHT * -logp[t, targets[t]] + (1 - CE_WEIGHT) * kl[t]
        else:
            total = total + kl[t]
    return total / T


def finish(name, arrays, weights, logits, teacher_logp, targets):
    loss = window_loss(logits, teacher_logp, targets)
    loss.backward()
    arrays.update({k: v.detach() for k, v in weights.items()})
    arrays.update({"grad." + k: v.grad for k, v in weights.items()})
    arrays.update({"targets": targets.double(), "teacher_logp": teacher_logp, "ce_weight": G.scalar(CE_WEIGHT),
                   "loss": G.scalar(loss.item()), "logits": logits.detach()})
    G.write_fixture(os.path.join(G.OUT, name + ".bin"), arrays)
    print(name, "loss", loss.item(), "tensors", len(weights))


def embedding_and_head(seed, V, D):
    """The generator, a norm-weight maker and the embedding, output norm and head, drawn in that order."""
    gen = torch.Generator().manual_seed(seed)

    def norm_w(n):
        return 1 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)

    W = {"token_embd.weight": torch.randn(V, D, generator=gen, dtype=torch.float64),
         "output_norm.weight": norm_w(D), "output.weight": G.randw(gen, V, D)}
    return gen, norm_w, W


def llama_fixture(name, seed, D, H, n_kv, hd, V, L, F, eps, theta):
    gen, norm_w, W = embedding_and_head(seed, V, D)
    for l in range(L):
        b = "blk.%d." % l
        W.update({b + "attn_norm.weight": norm_w(D), b + "ffn_norm.weight": norm_w(D),
                  b + "attn_q.weight": G.randw(gen, H * hd, D), b + "attn_k.weight": G.randw(gen, n_kv * hd, D),
                  b + "attn_v.weight": G.randw(gen, n_kv * hd, D), b + "attn_output.weight": G.randw(gen, D, H * hd),
                  b + "ffn_gate.weight": G.randw(gen, F, D), b + "ffn_up.weight": G.randw(gen, F, D),
                  b + "ffn_down.weight": G.randw(gen, D, F)})
    tokens = torch.randint(0, V, (T,), generator=gen)
    teacher_logp, targets = teacher_and_targets(gen, V)
    for v in W.values():
        v.requires_grad_(True)
    cos, sin = G.cos_sin(G.base_freqs(hd, theta), list(range(T)))
    causal = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    h = W["token_embd.weight"][tokens]
    for l in range(L):
        b = "blk.%d." % l
        x = G.rms_norm(h, W[b + "attn_norm.weight"], eps)
        q = (x @ W[b + "attn_q.weight"].T).view(T, H, hd).transpose(0, 1)
        k = (x @ W[b + "attn_k.weight"].T).view(T, n_kv, hd).transpose(0, 1)
        v = (x @ W[b + "attn_v.weight"].T).view(T, n_kv, hd).transpose(0, 1)
        q, k = G.rope_adjacent(q, cos, sin), G.rope_adjacent(k, cos, sin)
        k, v = k.repeat_interleave(H // n_kv, 0), v.repeat_interleave(H // n_kv, 0)
        s = torch.einsum("htd,hsd->hts", q, k) / math.sqrt(hd) + causal
        o = torch.einsum("hts,hsd->htd", torch.softmax(s, -1), v).transpose(0, 1).reshape(T, H * hd)
        h = h + o @ W[b + "attn_output.weight"].T
        x = G.rms_norm(h, W[b + "ffn_norm.weight"], eps)
        h = h + G.silu_mlp(x, W[b + "ffn_gate.weight"], W[b + "ffn_down.weight"], W[b + "ffn_up.weight"])
    logits = G.rms_norm(h, W["output_norm.weight"], eps) @ W["output.weight"].T
    arrays = {"arch": G.scalar(0), "D": G.scalar(D), "H": G.scalar(H), "n_kv": G.scalar(n_kv), "hd": G.scalar(hd),
              "V": G.scalar(V), "L": G.scalar(L), "F": G.scalar(F), "experts": G.scalar(0), "topk": G.scalar(0),
              "eps": G.scalar(eps), "theta": G.scalar(theta), "prefill": G.scalar(T), "tokens": tokens.double()}
    finish(name, arrays, W, logits, teacher_logp, targets)


def mla_fixture(name, seed, p):
    D, H, V, L, F = p["D"], p["H"], p["V"], p["L"], p["F"]
    dn, dr, dv, dc = p["dn"], p["dr"], p["dv"], p["dc"]
    gen, norm_w, W = embedding_and_head(seed, V, D)
    for l in range(L):
        b = "blk.%d." % l
        W.update({b + "attn_norm.weight": norm_w(D), b + "ffn_norm.weight": norm_w(D),
                  b + "attn_q.weight": G.randw(gen, H * (dn + dr), D),
                  b + "attn_kv_a_mqa.weight": G.randw(gen, dc + dr, D), b + "attn_kv_a_norm.weight": norm_w(dc),
                  b + "attn_kv_b.weight": G.randw(gen, H * (dn + dv), dc),
                  b + "attn_output.weight": G.randw(gen, D, H * dv),
                  b + "ffn_gate.weight": G.randw(gen, F, D), b + "ffn_up.weight": G.randw(gen, F, D),
                  b + "ffn_down.weight": G.randw(gen, D, F)})
    tokens = torch.randint(0, V, (T,), generator=gen)
    teacher_logp, targets = teacher_and_targets(gen, V)
    for v in W.values():
        v.requires_grad_(True)
    mp = dict(H=H, ql=0, dc=dc, dn=dn, dr=dr, dv=dv, theta=10000.0, orig=p["orig"], factor=40.0, mscale=0.707,
              beta_fast=32, beta_slow=1)
    h = W["token_embd.weight"][tokens]
    for l in range(L):
        b = "blk.%d." % l
        a = {"wq": W[b + "attn_q.weight"], "wkv_a": W[b + "attn_kv_a_mqa.weight"],
             "kv_norm": W[b + "attn_kv_a_norm.weight"], "wkv_b": W[b + "attn_kv_b.weight"],
             "wo": W[b + "attn_output.weight"]}
        h = h + G.ReferenceMLA(mp, a, p["max_seq"], "naive").forward(G.rms_norm(h, W[b + "attn_norm.weight"]), 0)
        x = G.rms_norm(h, W[b + "ffn_norm.weight"])
        h = h + G.silu_mlp(x, W[b + "ffn_gate.weight"], W[b + "ffn_down.weight"], W[b + "ffn_up.weight"])
    logits = G.rms_norm(h, W["output_norm.weight"]) @ W["output.weight"].T
    arrays = {k: G.scalar(v) for k, v in p.items()}
    arrays.update({"sigmoid": G.scalar(0), "prefill": G.scalar(T), "tokens": tokens.double()})
    finish(name, arrays, W, logits, teacher_logp, targets)


if __name__ == "__main__":
    torch.manual_seed(0)
    llama_fixture("train_llama", 31, D=24, H=4, n_kv=2, hd=6, V=37, L=2, F=32, eps=1e-5, theta=10000.0)
    # YaRN on (max_seq > orig), as DeepSeek's models have it
    mla_fixture("train_mla", 32, dict(D=32, H=3, V=41, L=2, dn=8, dr=4, dv=6, dc=12, ql=0, F=40, experts=0, Fm=0,
                                      shared=0, topk=0, dense=2, groups=1, topk_groups=1, route_scale=1.0, bias=0,
                                      orig=16, max_seq=64))
