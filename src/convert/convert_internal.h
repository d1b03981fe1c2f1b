/* What the conversions share: the source layer in double precision, the
 * calibration statistics, and the small matrix helpers. */
#ifndef KVATTN_CONVERT_INTERNAL_H
#define KVATTN_CONVERT_INTERNAL_H

#include "model/model.h"

#include <complex.h>

/* One source attention layer (GQA family) as doubles, and the second moment
 * of its input over the calibration tokens (NULL for methods that need none). */
typedef struct {
    const kvattn_layer_config *cfg;
    int D, H, K, d, n_rot; /* d_model, query heads, KV heads, head width, rotating dims per head */
    double *wq;            /* [H·d][D]  */
    double *wk;            /* [K·d][D]  */
    double *wv;            /* [K·d][D]  */
    double *wo;            /* [D][H·d]  */
    const double *xx;      /* [D][D] E[x xᵀ] of the layer's input, or NULL */
} kv_src_layer;

/* The converted layer's weights, f32, owned by the caller once returned. */
typedef struct {
    float *wq, *wk, *wv, *wo; /* GQA family                         */
    float *wkv_a, *wkv_b;     /* MLA (no q_lora): wq, wkv_a, wkv_b, wo */
    float *kv_norm;           /* MLA: [d_c]                          */
} kv_new_layer;

/* Rows (ia, ib) of pair i within a head's first n_rot dims. */
static inline void kv_pair_dims(kvattn_rope_pairing p, int n_rot, int i, int *ia, int *ib) {
    *ia = p == KVATTN_ROPE_ADJACENT ? 2 * i : i;
    *ib = p == KVATTN_ROPE_ADJACENT ? 2 * i + 1 : i + n_rot / 2;
}

/* An f32 copy of x [n] (malloc), NULL when out of memory. */
float *kv_to_float(const double *x, size_t n);

/* e[i] = E[(W_i·x)²] = W_i S W_iᵀ for every row of W [n][D]. */
void kv_row_energy(const double *S, int D, const double *W, int n, double *e);

/* C [n][n] = R S Rᵀ for rows R [n][D] and the symmetric S [D][D]. */
kvattn_status kv_project_cov(const double *S, int D, const double *R, int n, double *C);

/* out_a += Re(w)·a − Im(w)·b, out_b += Im(w)·a + Re(w)·b over D columns: the
 * rows of the pair (a + i·b) multiplied by the complex w. */
void kv_cmul_rows(double *out_a, double *out_b, double complex w, const double *a, const double *b, int D);

/* Per RoPE pair, a change of basis across n heads' keys that commutes with
 * RoPE: complex keys z_t = a_t + i·b_t (rows a[t], b[t] of D columns) become
 * components z'_c = Σ_t W[t][c] z_t, ordered by the energy they carry, with
 * z_t = Σ_c B[t][c] z'_c exactly. With weights e[t] (the queries' energy
 * on head t; NULL for none) the order is by e-weighted energy, so the first
 * components keep what the scores need most. W, B [n][n]. */
kvattn_status kv_rope_pair_basis(const double *S, int D, const double *const *a, const double *const *b,
                                 const double *e, int n, double complex *W, double complex *B);

/* M^(1/2) and M^(-1/2) of the symmetric positive semi-definite M [n][n],
 * eigenvalues floored at 1e-8 of the largest so both exist. */
kvattn_status kv_sym_sqrt(int n, const double *M, double *half, double *inv_half);

/* Rows y [nb·n][D] ← blockdiag(M_0 … M_{nb-1}) y, M_b [n][n] each. */
kvattn_status kv_apply_blocks(double *y, int n, const double *M, int nb, int D);

/* M [d][d] = Σ W_O,hᵀ W_O,h over the query heads h that read KV head t: how
 * much an error in that head's values moves the layer's output. */
void kv_output_gram(const kv_src_layer *s, int t, double *M);

/* Converts to a GQA family layer with G KV heads (G divides K). */
kvattn_status kv_convert_to_gqa(const kv_src_layer *s, int G, int aware, kv_new_layer *out);

/* Converts to an MLA layer: cfg is the target (d_c, d_R, d_nope, d_v set by
 * kv_mla_target). */
kvattn_status kv_convert_to_mla(const kv_src_layer *s, const kvattn_layer_config *cfg, kv_new_layer *out);

/* The MLA shape of a conversion to d_c + d_R from s's shape. */
kvattn_status kv_mla_target(const kvattn_layer_config *src, int dc, int dr, kvattn_layer_config *out);

/* Refits a norm-keeping MLA layer: c ≈ M·RMSNorm(c) over the calibration
 * latents, given A = Σ ĉ ĉᵀ and Bm = Σ c ĉᵀ ([dc][dc] each); W_UK and W_UV
 * become W·M. */
kvattn_status kv_mla_refit_norm(const kvattn_layer_config *cfg, double *A, double *Bm, kv_new_layer *l);

#endif
