#!/usr/bin/python3
"""Golden vectors for kvattn's attention layers, computed independently with PyTorch.

GQA/MHA/MQA: attention written with torch's own ops (einsum, softmax, causal mask,
repeat_interleave for the KV-head sharing), RoPE with adjacent pairs (llama2.c /
GGUF convention) or half-split pairs (Hugging Face rotate_half), optionally on the
first n_rot dims only.

MLA: the math of DeepSeek-V3's reference inference/model.py (class MLA and
precompute_freqs_cis), both of its attention paths: "naive" (per-head k/v caches)
and "absorb" (kv_cache + pe_cache, wkv_b folded into the query and the output),
run as that code runs them: a prefill at start_pos 0, then one-token decode steps.
YaRN is on in one fixture (max_seq_len > original_seq_len: blended frequencies and
the mscale² softmax factor).

Everything but RoPE's angles runs in float64; RoPE's frequencies, angles, cos and
sin are float32 as in the references. Writes tests/golden/*.bin (format below);
CI does not need torch, only these files.

Format: b"KVGOLD01", u32 count, then per array: u32 name length, name (utf-8),
u32 ndim, u32 dims[ndim], float32 data (little-endian, row-major).

Run: /usr/bin/python3 tests/golden/gen_golden.py   (Debian's python3-torch)
"""
import math
import os
import struct

import torch

OUT = os.path.dirname(os.path.abspath(__file__))
PREFILL, DECODE = 7, 3


def write_fixture(path, arrays):
    with open(path, "wb") as f:
        f.write(b"KVGOLD01")
        f.write(struct.pack("<I", len(arrays)))
        for name, t in arrays.items():
            t = torch.as_tensor(t, dtype=torch.float32).contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<f4").tobytes())


def randw(gen, out_f, in_f):
    return torch.randn(out_f, in_f, generator=gen, dtype=torch.float64) / math.sqrt(in_f)


def scalar(v):
    return torch.tensor([float(v)])


# ---------------------------------------------------------------- RoPE (float32 angles)

def base_freqs(n_rot, theta):
    return 1.0 / (theta ** (torch.arange(0, n_rot, 2, dtype=torch.float32) / n_rot))


def yarn_freqs(n_rot, theta, factor, orig, beta_fast, beta_slow):
    """DeepSeek-V3 precompute_freqs_cis frequencies when max_seq_len > original_seq_len."""
    def corr_dim(rot):
        return n_rot * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))
    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), n_rot - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(n_rot // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    smooth = 1 - ramp
    f = base_freqs(n_rot, theta)
    return f / factor * (1 - smooth) + f * smooth


def cos_sin(freqs, positions):
    ang = torch.outer(torch.tensor(positions, dtype=torch.float32), freqs)  # float32, as the references
    return torch.cos(ang).double(), torch.sin(ang).double()


def rope_adjacent(x, cos, sin):
    """x [..., T, n] rotated on pairs (2i, 2i+1) — view_as_complex in DeepSeek's code."""
    xr = x.reshape(*x.shape[:-1], -1, 2)
    a, b = xr[..., 0], xr[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def rope_half(x, cos, sin):
    """x [..., T, n] rotated on pairs (i, i + n/2) — Hugging Face rotate_half."""
    c, s = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * c + rot * s


# ---------------------------------------------------------------- GQA family

def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def gqa_fixture(name, seed, D, H, n_kv, hd, n_rot, pairing, theta, bias=False, qk_norm=False, eps=1e-6):
    """bias: Qwen2's q/k/v_proj biases; qk_norm: Qwen3's q_norm/k_norm (RMSNorm over each head's
    head_dim, weights shared by the heads, applied before RoPE as Qwen3Attention does)."""
    gen = torch.Generator().manual_seed(seed)
    T = PREFILL + DECODE
    wq, wk, wv = randw(gen, H * hd, D), randw(gen, n_kv * hd, D), randw(gen, n_kv * hd, D)
    wo = randw(gen, D, H * hd)
    x = torch.randn(T, D, generator=gen, dtype=torch.float64)
    extra = {}
    bq, bk, bv = torch.zeros(H * hd), torch.zeros(n_kv * hd), torch.zeros(n_kv * hd)
    if bias:
        bq, bk, bv = (0.5 * torch.randn(n, generator=gen, dtype=torch.float64) for n in (H * hd, n_kv * hd, n_kv * hd))
        extra.update(bq=bq, bk=bk, bv=bv)

    q = (x @ wq.T + bq).view(T, H, hd)
    k = (x @ wk.T + bk).view(T, n_kv, hd)
    v = (x @ wv.T + bv).view(T, n_kv, hd).transpose(0, 1)
    if qk_norm:
        qn = 1 + 0.3 * torch.randn(hd, generator=gen, dtype=torch.float64)
        kn = 1 + 0.3 * torch.randn(hd, generator=gen, dtype=torch.float64)
        q, k = rms_norm(q, qn, eps), rms_norm(k, kn, eps)
        extra.update(q_norm=qn, k_norm=kn, rms_eps=scalar(eps))
    q, k = q.transpose(0, 1), k.transpose(0, 1)        # [H, T, hd], [n_kv, T, hd]
    cos, sin = cos_sin(base_freqs(n_rot, theta), list(range(T)))
    rope = rope_adjacent if pairing == "adjacent" else rope_half
    q = torch.cat([rope(q[..., :n_rot], cos, sin), q[..., n_rot:]], -1)
    k = torch.cat([rope(k[..., :n_rot], cos, sin), k[..., n_rot:]], -1)
    k = k.repeat_interleave(H // n_kv, dim=0)          # query head h reads KV head h // group
    v = v.repeat_interleave(H // n_kv, dim=0)
    scores = torch.einsum("htd,hsd->hts", q, k) / math.sqrt(hd)
    scores = scores + torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    o = torch.einsum("hts,hsd->htd", torch.softmax(scores, -1), v)
    out = o.transpose(0, 1).reshape(T, H * hd) @ wo.T

    write_fixture(os.path.join(OUT, name + ".bin"), {
        "kind": scalar(0), "d_model": scalar(D), "n_heads": scalar(H), "n_kv_heads": scalar(n_kv),
        "head_dim": scalar(hd), "n_rot": scalar(n_rot), "pairing": scalar(0 if pairing == "adjacent" else 1),
        "theta": scalar(theta), "prefill": scalar(PREFILL),
        "wq": wq, "wk": wk, "wv": wv, "wo": wo, "x": x, "out": out, **extra,
    })


# ---------------------------------------------------------------- MLA (DeepSeek-V3 reference math)



class ReferenceMLA:
    """DeepSeek-V3 inference/model.py's MLA, batch 1, float64, both attention paths."""

    def __init__(self, p, w, max_seq_len, impl):
        self.p, self.w, self.impl = p, w, impl
        H, dn, dr, dv, dc = p["H"], p["dn"], p["dr"], p["dv"], p["dc"]
        self.scale = (dn + dr) ** -0.5
        yarn = max_seq_len > p["orig"]
        if yarn:
            mscale = 0.1 * p["mscale"] * math.log(p["factor"]) + 1.0
            self.scale *= mscale * mscale
            self.freqs = yarn_freqs(dr, p["theta"], p["factor"], p["orig"], p["beta_fast"], p["beta_slow"])
        else:
            self.freqs = base_freqs(dr, p["theta"])
        if impl == "naive":
            self.k_cache = torch.zeros(max_seq_len, H, dn + dr, dtype=torch.float64)
            self.v_cache = torch.zeros(max_seq_len, H, dv, dtype=torch.float64)
        else:
            self.kv_cache = torch.zeros(max_seq_len, dc, dtype=torch.float64)
            self.pe_cache = torch.zeros(max_seq_len, dr, dtype=torch.float64)

    def forward(self, x, start_pos):
        p, w = self.p, self.w
        H, dn, dr, dv, dc = p["H"], p["dn"], p["dr"], p["dv"], p["dc"]
        seqlen = x.shape[0]
        end_pos = start_pos + seqlen
        cos, sin = cos_sin(self.freqs, list(range(start_pos, end_pos)))
        if p["ql"] == 0:
            q = x @ w["wq"].T
        else:
            q = rms_norm(x @ w["wq_a"].T, w["q_norm"]) @ w["wq_b"].T
        q = q.view(seqlen, H, dn + dr)
        q_nope, q_pe = q[..., :dn], q[..., dn:]
        q_pe = rope_adjacent(q_pe.transpose(0, 1), cos, sin).transpose(0, 1)   # [s, H, dr]
        kv = x @ w["wkv_a"].T
        kv, k_pe = kv[:, :dc], kv[:, dc:]
        k_pe = rope_adjacent(k_pe, cos, sin)                                  # [s, dr]
        wkv_b = w["wkv_b"].view(H, dn + dv, dc)
        if self.impl == "naive":
            qf = torch.cat([q_nope, q_pe], -1)
            kvb = (rms_norm(kv, w["kv_norm"]) @ w["wkv_b"].T).view(seqlen, H, dn + dv)
            k_nope, v = kvb[..., :dn], kvb[..., dn:]
            k = torch.cat([k_nope, k_pe.unsqueeze(1).expand(-1, H, -1)], -1)
            self.k_cache[start_pos:end_pos] = k
            self.v_cache[start_pos:end_pos] = v
            scores = torch.einsum("shd,thd->sht", qf, self.k_cache[:end_pos]) * self.scale
        else:
            q_abs = torch.einsum("shd,hdc->shc", q_nope, wkv_b[:, :dn])
            self.kv_cache[start_pos:end_pos] = rms_norm(kv, w["kv_norm"])
            self.pe_cache[start_pos:end_pos] = k_pe
            scores = (torch.einsum("shc,tc->sht", q_abs, self.kv_cache[:end_pos]) +
                      torch.einsum("shr,tr->sht", q_pe, self.pe_cache[:end_pos])) * self.scale
        if seqlen > 1:  # the reference's causal mask (its prefill starts at 0)
            scores = scores + torch.full((seqlen, seqlen), float("-inf"), dtype=torch.float64).triu(1).unsqueeze(1)
        scores = scores.softmax(dim=-1)
        if self.impl == "naive":
            o = torch.einsum("sht,thd->shd", scores, self.v_cache[:end_pos])
        else:
            o = torch.einsum("sht,tc->shc", scores, self.kv_cache[:end_pos])
            o = torch.einsum("shc,hdc->shd", o, wkv_b[:, -dv:])
        return o.flatten(1) @ w["wo"].T


def mla_fixture(name, seed, D, H, ql, dc, dn, dr, dv, theta, yarn):
    gen = torch.Generator().manual_seed(seed)
    T = PREFILL + DECODE
    p = dict(H=H, ql=ql, dc=dc, dn=dn, dr=dr, dv=dv, theta=theta, orig=256, factor=40.0, mscale=0.707,
             beta_fast=32, beta_slow=1)
    max_seq_len = 512 if yarn else 256
    w = {}
    if ql == 0:
        w["wq"] = randw(gen, H * (dn + dr), D)
    else:
        w["wq_a"] = randw(gen, ql, D)
        w["q_norm"] = 1 + 0.1 * torch.randn(ql, generator=gen, dtype=torch.float64)
        w["wq_b"] = randw(gen, H * (dn + dr), ql)
    w["wkv_a"] = randw(gen, dc + dr, D)
    w["kv_norm"] = 1 + 0.1 * torch.randn(dc, generator=gen, dtype=torch.float64)
    w["wkv_b"] = randw(gen, H * (dn + dv), dc)
    w["wo"] = randw(gen, D, H * dv)
    x = torch.randn(T, D, generator=gen, dtype=torch.float64)

    outs = {}
    for impl in ("naive", "absorb"):
        m = ReferenceMLA(p, w, max_seq_len, impl)
        steps = [m.forward(x[:PREFILL], 0)]
        for t in range(PREFILL, T):
            steps.append(m.forward(x[t:t + 1], t))
        outs[impl] = torch.cat(steps, 0)
    diff = (outs["naive"] - outs["absorb"]).abs().max() / outs["naive"].abs().max()
    assert diff < 1e-12, f"{name}: the reference's own paths disagree by {diff}"

    arrays = {"kind": scalar(1), "d_model": scalar(D), "n_heads": scalar(H), "q_lora_rank": scalar(ql),
              "kv_lora_rank": scalar(dc), "qk_nope_head_dim": scalar(dn), "qk_rope_head_dim": scalar(dr),
              "v_head_dim": scalar(dv), "theta": scalar(theta), "prefill": scalar(PREFILL),
              "yarn_factor": scalar(p["factor"] if yarn else 0), "yarn_orig_ctx": scalar(p["orig"]),
              "yarn_beta_fast": scalar(p["beta_fast"]), "yarn_beta_slow": scalar(p["beta_slow"]),
              "yarn_mscale": scalar(p["mscale"])}
    arrays.update(w)
    arrays.update({"x": x, "out_naive": outs["naive"], "out_absorb": outs["absorb"]})
    write_fixture(os.path.join(OUT, name + ".bin"), arrays)




# ---------------------------------------------------------------- whole DeepSeek models (model.py's Transformer)

def silu_mlp(x, w1, w2, w3):
    return (torch.nn.functional.silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def route(x, p, gate_w, bias):
    """DeepSeek-V3 model.py's Gate: scores, optional bias for the choice, group-limited top-k."""
    scores = x @ gate_w.T
    scores = scores.softmax(-1) if p["score"] == "softmax" else scores.sigmoid()
    original = scores
    if bias is not None:
        scores = scores + bias
    if p["groups"] > 1:
        s = scores.view(x.size(0), p["groups"], -1)
        gs = s.amax(-1) if bias is None else s.topk(2, dim=-1)[0].sum(-1)
        keep = gs.topk(p["topk_groups"], dim=-1)[1]
        mask = s.new_ones(x.size(0), p["groups"], dtype=torch.bool).scatter_(1, keep, False)
        scores = s.masked_fill(mask.unsqueeze(-1), float("-inf")).flatten(1)
    idx = torch.topk(scores, p["topk"], dim=-1)[1]
    w = original.gather(1, idx)
    if p["score"] == "sigmoid":
        w = w / w.sum(-1, keepdim=True)
    return w * p["route_scale"], idx


def moe(x, p, lw):
    w, idx = route(x, p, lw["ffn_gate_inp.weight"], lw.get("exp_probs_b.bias"))
    y = torch.zeros_like(x)
    for e in range(p["experts"]):
        rows, which = torch.where(idx == e)
        if len(rows):
            y[rows] += silu_mlp(x[rows], lw["ffn_gate_exps.weight"][e], lw["ffn_down_exps.weight"][e],
                                lw["ffn_up_exps.weight"][e]) * w[rows, which, None]
    if p["shared"]:
        y = y + silu_mlp(x, lw["ffn_gate_shexp.weight"], lw["ffn_down_shexp.weight"], lw["ffn_up_shexp.weight"])
    return y


def deepseek_model_fixture(name, seed, p):
    """A whole tiny DeepSeek model: weights named as GGUF names them (row-major [out][in]; experts
    stacked [E][out][in]), token ids, and the logits of a prefill then one-token decode steps,
    computed with model.py's math in float64 for both attention paths."""
    gen = torch.Generator().manual_seed(seed)
    D, H, V, L = p["D"], p["H"], p["V"], p["L"]
    dn, dr, dv, dc, ql = p["dn"], p["dr"], p["dv"], p["dc"], p["ql"]
    E, Fm, S, F = p["experts"], p["Fm"], p["shared"], p["F"]

    def norm_w(n):
        return 1 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)

    W = {"token_embd.weight": torch.randn(V, D, generator=gen, dtype=torch.float64),
         "output_norm.weight": norm_w(D), "output.weight": randw(gen, V, D)}
    layers = []
    for l in range(L):
        lw = {"attn_norm.weight": norm_w(D), "ffn_norm.weight": norm_w(D)}
        a = {}
        if ql == 0:
            a["wq"] = randw(gen, H * (dn + dr), D)
        else:
            a["wq_a"], a["q_norm"], a["wq_b"] = randw(gen, ql, D), norm_w(ql), randw(gen, H * (dn + dr), ql)
        a["wkv_a"], a["kv_norm"], a["wkv_b"] = randw(gen, dc + dr, D), norm_w(dc), randw(gen, H * (dn + dv), dc)
        a["wo"] = randw(gen, D, H * dv)
        names = {"wq": "attn_q.weight", "wq_a": "attn_q_a.weight", "q_norm": "attn_q_a_norm.weight",
                 "wq_b": "attn_q_b.weight", "wkv_a": "attn_kv_a_mqa.weight", "kv_norm": "attn_kv_a_norm.weight",
                 "wkv_b": "attn_kv_b.weight", "wo": "attn_output.weight"}
        for k, v in a.items():
            lw[names[k]] = v
        if E == 0 or l < p["dense"]:
            lw["ffn_gate.weight"], lw["ffn_up.weight"], lw["ffn_down.weight"] = randw(gen, F, D), randw(gen, F, D), randw(gen, D, F)
        else:
            lw["ffn_gate_inp.weight"] = randw(gen, E, D) * 4  # sharper routing: fewer near-ties
            if p["bias"]:
                lw["exp_probs_b.bias"] = 0.1 * torch.randn(E, generator=gen, dtype=torch.float64)
            lw["ffn_gate_exps.weight"] = torch.stack([randw(gen, Fm, D) for _ in range(E)])
            lw["ffn_up_exps.weight"] = torch.stack([randw(gen, Fm, D) for _ in range(E)])
            lw["ffn_down_exps.weight"] = torch.stack([randw(gen, D, Fm) for _ in range(E)])
            if S:
                lw["ffn_gate_shexp.weight"], lw["ffn_up_shexp.weight"] = randw(gen, S * Fm, D), randw(gen, S * Fm, D)
                lw["ffn_down_shexp.weight"] = randw(gen, D, S * Fm)
        layers.append((lw, a))
    T = 12
    tokens = torch.randint(0, V, (T,), generator=gen)
    mp = dict(H=H, ql=ql, dc=dc, dn=dn, dr=dr, dv=dv, theta=10000.0, orig=p["orig"], factor=40.0, mscale=0.707,
              beta_fast=32, beta_slow=1)
    out = {}
    for impl in ("naive", "absorb"):
        attn = [ReferenceMLA(mp, a, p["max_seq"], impl) for _, a in layers]

        def forward(ids, start):
            h = W["token_embd.weight"][ids]
            for (lw, _), at in zip(layers, attn):
                h = h + at.forward(rms_norm(h, lw["attn_norm.weight"]), start)
                x = rms_norm(h, lw["ffn_norm.weight"])
                h = h + (moe(x, p, lw) if "ffn_gate_inp.weight" in lw else
                         silu_mlp(x, lw["ffn_gate.weight"], lw["ffn_down.weight"], lw["ffn_up.weight"]))
            return rms_norm(h, W["output_norm.weight"])[-1] @ W["output.weight"].T

        steps = [forward(tokens[:PREFILL], 0)]
        for t in range(PREFILL, T):
            steps.append(forward(tokens[t:t + 1], t))
        out[impl] = torch.stack(steps)
    diff = (out["naive"] - out["absorb"]).abs().max() / out["naive"].abs().max()
    assert diff < 1e-12, f"{name}: the reference's paths disagree by {diff}"
    arrays = {k: scalar(v) for k, v in p.items() if not isinstance(v, str)}
    arrays["sigmoid"] = scalar(p["score"] == "sigmoid")
    arrays["prefill"] = scalar(PREFILL)
    arrays["tokens"] = tokens.double()
    arrays.update(W)
    for l, (lw, _) in enumerate(layers):
        arrays.update({"blk.%d.%s" % (l, k): v for k, v in lw.items()})
    arrays["logits"] = out["absorb"]
    write_fixture(os.path.join(OUT, name + ".bin"), arrays)


def llama3_inv_freq(inv_freq, factor, low, high, orig):
    """transformers' _compute_llama3_parameters (Llama 3.1's rope_scaling "llama3"), float32."""
    wavelen = 2 * math.pi / inv_freq
    low_wavelen, high_wavelen = orig / low, orig / high
    new = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * new / factor + smooth * new
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, new)


def gqa_model_fixture(name, seed, arch, D, H, n_kv, hd, V, L, F, experts=0, topk=2, eps=1e-5, theta=10000.0,
                      tied=False, rope_llama3=None):
    """A whole tiny GQA-family model as llama.cpp's graphs and Hugging Face's modeling code compute it:
    arch "llama" (RoPE on adjacent pairs, the GGUF layout; with experts, Mixtral's sparse MoE block:
    softmax over all experts, top-k, weights renormalised), "qwen2" (Q/K/V biases) or "qwen3"
    (RMSNorm of each head's q and k before RoPE), both rotate_half. Weights named as GGUF names them,
    logits of a prefill then one-token decode steps in float64 (RoPE angles float32)."""
    gen = torch.Generator().manual_seed(seed)

    def norm_w(n):
        return 1 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)

    W = {"token_embd.weight": torch.randn(V, D, generator=gen, dtype=torch.float64),
         "output_norm.weight": norm_w(D)}
    if not tied:
        W["output.weight"] = randw(gen, V, D)
    layers = []
    for l in range(L):
        lw = {"attn_norm.weight": norm_w(D), "ffn_norm.weight": norm_w(D),
              "attn_q.weight": randw(gen, H * hd, D), "attn_k.weight": randw(gen, n_kv * hd, D),
              "attn_v.weight": randw(gen, n_kv * hd, D), "attn_output.weight": randw(gen, D, H * hd)}
        if arch == "qwen2":
            for k, n in (("attn_q.bias", H * hd), ("attn_k.bias", n_kv * hd), ("attn_v.bias", n_kv * hd)):
                lw[k] = 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
        if arch == "qwen3":
            lw["attn_q_norm.weight"], lw["attn_k_norm.weight"] = norm_w(hd) + 0.2, norm_w(hd) - 0.2
        if experts:
            lw["ffn_gate_inp.weight"] = randw(gen, experts, D) * 4  # sharper routing: fewer near-ties
            lw["ffn_gate_exps.weight"] = torch.stack([randw(gen, F, D) for _ in range(experts)])
            lw["ffn_up_exps.weight"] = torch.stack([randw(gen, F, D) for _ in range(experts)])
            lw["ffn_down_exps.weight"] = torch.stack([randw(gen, D, F) for _ in range(experts)])
        else:
            lw["ffn_gate.weight"], lw["ffn_up.weight"], lw["ffn_down.weight"] = randw(gen, F, D), randw(gen, F, D), randw(gen, D, F)
        layers.append(lw)
    T = 12
    tokens = torch.randint(0, V, (T,), generator=gen)
    rope = rope_adjacent if arch == "llama" else rope_half
    freqs = base_freqs(hd, theta)
    if rope_llama3:  # GGUF keeps the divisors as rope_freqs.weight, as llama.cpp's converter writes them
        scaled = llama3_inv_freq(freqs, *rope_llama3)
        W["rope_freqs.weight"] = (freqs / scaled).double()
        freqs = scaled

    def attention(lw, x, cache, start):
        n = x.shape[0]
        q = x @ lw["attn_q.weight"].T + lw.get("attn_q.bias", 0)
        k = x @ lw["attn_k.weight"].T + lw.get("attn_k.bias", 0)
        v = x @ lw["attn_v.weight"].T + lw.get("attn_v.bias", 0)
        q, k, v = q.view(n, H, hd), k.view(n, n_kv, hd), v.view(n, n_kv, hd)
        if "attn_q_norm.weight" in lw:
            q, k = rms_norm(q, lw["attn_q_norm.weight"], eps), rms_norm(k, lw["attn_k_norm.weight"], eps)
        cos, sin = cos_sin(freqs, list(range(start, start + n)))
        q = rope(q.transpose(0, 1), cos, sin)                   # [H, n, hd]
        k = rope(k.transpose(0, 1), cos, sin)                   # [n_kv, n, hd]
        cache["k"] = torch.cat([cache["k"], k], 1) if "k" in cache else k
        cache["v"] = torch.cat([cache["v"], v.transpose(0, 1)], 1) if "v" in cache else v.transpose(0, 1)
        K = cache["k"].repeat_interleave(H // n_kv, dim=0)
        Vv = cache["v"].repeat_interleave(H // n_kv, dim=0)
        s = torch.einsum("hqd,hkd->hqk", q, K) / math.sqrt(hd)
        total = K.shape[1]
        mask = torch.arange(total)[None, :] > (torch.arange(n)[:, None] + start)
        s = s.masked_fill(mask, float("-inf"))
        o = torch.einsum("hqk,hkd->hqd", torch.softmax(s, -1), Vv)
        return o.transpose(0, 1).reshape(n, H * hd) @ lw["attn_output.weight"].T

    def mixtral_moe(lw, x):
        probs = torch.softmax(x @ lw["ffn_gate_inp.weight"].T, -1)
        w, idx = torch.topk(probs, topk, -1)
        w = w / w.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        for e in range(experts):
            rows, which = torch.where(idx == e)
            if len(rows):
                y[rows] += silu_mlp(x[rows], lw["ffn_gate_exps.weight"][e], lw["ffn_down_exps.weight"][e],
                                    lw["ffn_up_exps.weight"][e]) * w[rows, which, None]
        return y

    caches = [dict() for _ in range(L)]

    def forward(ids, start):
        h = W["token_embd.weight"][ids]
        for lw, cache in zip(layers, caches):
            h = h + attention(lw, rms_norm(h, lw["attn_norm.weight"], eps), cache, start)
            x = rms_norm(h, lw["ffn_norm.weight"], eps)
            h = h + (mixtral_moe(lw, x) if experts else
                     silu_mlp(x, lw["ffn_gate.weight"], lw["ffn_down.weight"], lw["ffn_up.weight"]))
        head = W["token_embd.weight"] if tied else W["output.weight"]
        return rms_norm(h, W["output_norm.weight"], eps)[-1] @ head.T

    steps = [forward(tokens[:PREFILL], 0)]
    for t in range(PREFILL, T):
        steps.append(forward(tokens[t:t + 1], t))
    arrays = {"arch": scalar(("llama", "qwen2", "qwen3").index(arch)), "D": scalar(D), "H": scalar(H),
              "n_kv": scalar(n_kv), "hd": scalar(hd), "V": scalar(V), "L": scalar(L), "F": scalar(F),
              "experts": scalar(experts), "topk": scalar(topk), "eps": scalar(eps), "theta": scalar(theta),
              "prefill": scalar(PREFILL), "tokens": tokens.double()}
    if rope_llama3:
        arrays.update({k: scalar(v) for k, v in zip(("rope_factor", "rope_low", "rope_high", "rope_orig"), rope_llama3)})
    arrays.update(W)
    for l, lw in enumerate(layers):
        arrays.update({"blk.%d.%s" % (l, k): v for k, v in lw.items()})
    arrays["logits"] = torch.stack(steps)
    write_fixture(os.path.join(OUT, name + ".bin"), arrays)


def gqa_models():
    gqa_model_fixture("model_qwen2", 21, "qwen2", D=32, H=4, n_kv=2, hd=8, V=97, L=2, F=48, eps=1e-6,
                      theta=1000000.0, tied=True)
    gqa_model_fixture("model_qwen3", 22, "qwen3", D=24, H=4, n_kv=1, hd=12, V=89, L=2, F=40, eps=1e-6,
                      theta=1000000.0)
    # Llama 3.1's RoPE scaling; original context 64 puts pairs in all three bands at head_dim 16
    gqa_model_fixture("model_llama31", 24, "llama", D=32, H=2, n_kv=1, hd=16, V=83, L=2, F=40, theta=10000.0,
                      rope_llama3=(8.0, 1.0, 4.0, 64))
    gqa_model_fixture("model_mixtral", 23, "llama", D=32, H=4, n_kv=2, hd=8, V=101, L=2, F=24, experts=6, topk=2)


DS_BASE = dict(D=48, H=4, V=97, L=3, dn=16, dr=8, dv=16, dc=32, ql=0, F=80, experts=0, Fm=32, shared=0, topk=2,
               dense=1, groups=1, topk_groups=1, score="softmax", route_scale=1.0, bias=0, orig=16, max_seq=64)


def deepseek_models():
    # V2-Lite-like: q without compression, softmax routing, 2 shared experts, YaRN on
    deepseek_model_fixture("ds_v2lite_like", 11, dict(DS_BASE, experts=8, shared=2, topk=2, F=96))
    # V3-like: q_lora, sigmoid routing with the score-correction bias, groups, normalised and scaled, YaRN off
    deepseek_model_fixture("ds_v3_like", 12, dict(DS_BASE, ql=24, experts=8, shared=1, topk=3, groups=4, topk_groups=2,
                                                  score="sigmoid", route_scale=2.5, bias=1, dense=1, max_seq=16))
    # dense only
    deepseek_model_fixture("ds_dense", 13, dict(DS_BASE, L=2, ql=16))


if __name__ == "__main__":
    torch.manual_seed(0)
    gqa_fixture("gqa_adjacent", 1, D=40, H=6, n_kv=2, hd=10, n_rot=10, pairing="adjacent", theta=10000.0)
    gqa_fixture("mha_half_partial", 2, D=36, H=4, n_kv=4, hd=12, n_rot=8, pairing="half", theta=500000.0)
    gqa_fixture("mqa_adjacent", 3, D=24, H=5, n_kv=1, hd=8, n_rot=8, pairing="adjacent", theta=10000.0)
    gqa_fixture("qwen2_bias", 4, D=32, H=4, n_kv=2, hd=12, n_rot=12, pairing="half", theta=1000000.0, bias=True)
    gqa_fixture("qwen3_qk_norm", 5, D=24, H=6, n_kv=2, hd=16, n_rot=16, pairing="half", theta=1000000.0,
                qk_norm=True, eps=1e-5)
    mla_fixture("mla_qlora_yarn", 4, D=48, H=4, ql=24, dc=32, dn=16, dr=8, dv=12, theta=10000.0, yarn=True)
    mla_fixture("mla_noqlora", 5, D=40, H=3, ql=0, dc=20, dn=10, dr=16, dv=6, theta=10000.0, yarn=False)
    deepseek_models()
    gqa_models()
    print("wrote fixtures to", OUT)
