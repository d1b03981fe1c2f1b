/* MHA or GQA → MLA d_c + d_R, a DeepSeek-style layer (TransMLA's route).
 *
 * RoRoPE: per RoPE pair, the K KV heads' complex keys are rotated into the
 * basis of kv_rope_pair_basis (weighted by the energy of the queries that read
 * each head); the first component of every pair becomes the shared decoupled
 * key k_R (d_R = the source's rotary dims, so its frequencies are the source's
 * own), and each query head's pair takes the conjugate of its head's
 * coefficient. The other K−1 components, and any dims the source never
 * rotated, become keys without RoPE: this is the one approximation besides
 * the rank (their rotation is dropped on both sides; RoRoPE put the least
 * energy there).
 *
 * Joint low rank: those no-RoPE keys and all K value heads, each weighted by
 * what reads it (keys by the queries' second moment, values by the output
 * projection's Gram matrix), stacked, each block scaled to the same total
 * energy on the calibration inputs ("balanced"), are compressed by their top
 * d_c principal directions of the calibration activations — an SVD of the
 * weights weighted by the input covariance on the right and by their readers
 * on the left. The latent c = P_dcᵀ [k_nope; v] is c_KV; W_UK and W_UV undo
 * P, the weights and the scales;
 * the query's no-RoPE part is folded into the latent's space when d_c is the
 * smaller (W_UK = I), kept with W_UK = P_k otherwise. The softmax scale
 * changes with the head width, so the queries carry the ratio. */
#include "convert_internal.h"
#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kvattn_status kv_mla_target(const kvattn_layer_config *src, int dc, int dr, kvattn_layer_config *out) {
    if (src->kind != KVATTN_ATTN_GQA)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "convert: the source is already MLA; kvattn converts MHA/GQA/MQA models");
    const int K = src->n_kv_heads, d = src->head_dim, n_rot = src->rope.n_rot ? src->rope.n_rot : d;
    const int cached = 2 * K * d, N = K * d - dr;
    const int folds = dr >= 2 && dr <= n_rot && dr % 2 == 0 && (n_rot / 2) % (dr / 2) == 0;
    const int spreads = dr > n_rot && dr % n_rot == 0 && dr / n_rot <= K;
    if (!folds && !spreads)
        return kv_fail(
            KVATTN_ERR_CONFIG,
            "convert: mla:%d+%d: d_R must be the source's rotary dims per head, %d, that divided by a whole "
            "number of its frequency pairs (FreqFold), or a multiple of it up to %d (one head's worth per KV "
            "head): a deepseek2 file turns rope pair j at θ^(-2j/d_R), which meets the source's frequencies "
            "only then",
            dc, dr, n_rot, K * n_rot);
    if (dc < 1 || dc + dr > cached)
        return kv_fail(
            KVATTN_ERR_CONFIG,
            "convert: mla:%d+%d caches %d elements per token and layer; the source caches %d (2 · %d KV heads "
            "· %d), so d_c must be in [1, %d]",
            dc, dr, dc + dr, cached, K, d, cached - dr);
    *out = (kvattn_layer_config){.kind = KVATTN_ATTN_MLA,
                                 .d_model = src->d_model,
                                 .n_heads = src->n_heads,
                                 .kv_lora_rank = dc,
                                 .qk_nope_head_dim = N == 0   ? 1
                                                     : N < dc ? N
                                                              : dc,
                                 .qk_rope_head_dim = dr,
                                 .v_head_dim = d,
                                 .rms_eps = src->rms_eps,
                                 .rope = src->rope};
    out->rope.n_rot = 0;
    out->rope.pairing = KVATTN_ROPE_ADJACENT;
    return kvattn_config_validate(out);
}

kvattn_status kv_convert_to_mla(const kv_src_layer *s, const kvattn_layer_config *cfg, kv_new_layer *out) {
    const int D = s->D, H = s->H, K = s->K, d = s->d, n_rot = s->n_rot, qpk = H / K;
    const int dc = cfg->kv_lora_rank, dr = cfg->qk_rope_head_dim;
    /* fold source pairs share a target pair (FreqFold), or a source pair's
     * first u components each get a target pair (d_R above the source's) */
    const int fold = dr <= n_rot ? n_rot / dr : 1, u = dr > n_rot ? dr / n_rot : 1, groups = n_rot / 2 / fold;
    const int N = K * d - dr, J = N + K * d, nb = K * fold; /* nb: complex keys sharing a rope pair */
    const int dn = cfg->qk_nope_head_dim, dv = d;
    const size_t Dz = (size_t)D;
    memset(out, 0, sizeof *out);
    const double scale = kvattn_config_softmax_scale(s->cfg) / kvattn_config_softmax_scale(cfg);
    double *Y = calloc((size_t)J * Dz, sizeof(double));                /* [k_nope; v] rows, scaled   */
    double *Qn = calloc((size_t)H * (N ? N : 1) * Dz, sizeof(double)); /* per head: its no-RoPE query */
    double *Qr = calloc((size_t)H * dr * Dz, sizeof(double));          /* per head: its RoPE query   */
    double *Kr = calloc((size_t)dr * Dz, sizeof(double));              /* k_R rows                   */
    double *qe = malloc(sizeof(double) * (size_t)H * d), *e = malloc(sizeof(double) * (size_t)nb);
    double complex *W = malloc(sizeof(double complex) * (size_t)nb * nb);
    double complex *B = malloc(sizeof(double complex) * (size_t)nb * nb);
    const double **a = malloc(sizeof(double *) * (size_t)nb), **b = malloc(sizeof(double *) * (size_t)nb);
    double *P = malloc(sizeof(double) * (size_t)J * J), *ev = malloc(sizeof(double) * (size_t)J);
    double *en = malloc(sizeof(double) * (size_t)J);
    int *ia = malloc(sizeof(int) * (size_t)fold), *ib = malloc(sizeof(int) * (size_t)fold); /* a pair's two rows */
    kvattn_status st = Y && Qn && Qr && Kr && qe && e && W && B && a && b && P && ev && en && ia && ib
                           ? KVATTN_OK
                           : kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    if (st == KVATTN_OK) kv_row_energy(s->xx, D, s->wq, H * d, qe);
    /* RoRoPE, group by group: the source pairs g·fold … g·fold+fold-1 of
     * every KV head as nb complex keys in the basis of kv_rope_pair_basis;
     * components c < u → k_R pair g·u + c, the rest → k_nope. The target
     * pair g·u + c turns at θ^(-2(g·u+c)/d_R): the group's first source
     * frequency for c = 0, between it and the next group's for c > 0. */
    for (int g = 0; st == KVATTN_OK && g < groups; g++) {
        for (int m = 0; m < fold; m++) kv_pair_dims(s->cfg->rope.pairing, n_rot, g * fold + m, &ia[m], &ib[m]);
        for (int t = 0; t < K; t++)
            for (int m = 0; m < fold; m++) {
                const int x = t * fold + m;
                a[x] = s->wk + ((size_t)t * d + ia[m]) * Dz, b[x] = s->wk + ((size_t)t * d + ib[m]) * Dz;
                e[x] = 0.0;
                for (int h = t * qpk; h < (t + 1) * qpk; h++)
                    e[x] += qe[(size_t)h * d + ia[m]] + qe[(size_t)h * d + ib[m]];
            }
        st = kv_rope_pair_basis(s->xx, D, a, b, e, nb, W, B);
        for (int c = 0; st == KVATTN_OK && c < nb; c++) {
            const int rope = c < u;
            const size_t row = rope ? 2 * ((size_t)g * u + c) : 2 * ((size_t)(c - u) * groups + g);
            double *ka = (rope ? Kr : Y) + row * Dz, *kb = ka + Dz;
            for (int x = 0; x < nb; x++) kv_cmul_rows(ka, kb, W[(size_t)x * nb + c], a[x], b[x], D);
            for (int h = 0; h < H; h++) {
                const int t = h / qpk;
                double *qa = rope ? Qr + ((size_t)h * dr + row) * Dz : Qn + ((size_t)h * N + row) * Dz, *qb = qa + Dz;
                for (int m = 0; m < fold; m++)
                    kv_cmul_rows(qa, qb, conj(B[(size_t)(t * fold + m) * nb + c]), s->wq + ((size_t)h * d + ia[m]) * Dz,
                                 s->wq + ((size_t)h * d + ib[m]) * Dz, D);
            }
        }
    }
    /* dims the source never rotated: keys as they are, each query head reading its own KV head's */
    for (int t = 0; st == KVATTN_OK && t < K; t++)
        for (int dim = n_rot; dim < d; dim++) {
            const size_t row = (size_t)K * n_rot - dr + (size_t)t * (d - n_rot) + (size_t)(dim - n_rot);
            memcpy(Y + row * Dz, s->wk + ((size_t)t * d + dim) * Dz, sizeof(double) * Dz);
            for (int h = t * qpk; h < (t + 1) * qpk; h++)
                memcpy(Qn + ((size_t)h * N + row) * Dz, s->wq + ((size_t)h * d + dim) * Dz, sizeof(double) * Dz);
        }
    /* Weight each block by what reads it: a key's error by the queries'
     * second moment (Σ_h E[q_h q_hᵀ]), a value's by the output projection
     * (Σ_h W_O,hᵀ W_O,h over the heads reading it), so the low rank keeps what
     * the scores and the output need; G maps the latent back through the
     * inverse weights. */
    double *Mk = NULL, *Mk_half = NULL, *Mk_inv = NULL, *Mv = NULL, *Mv_half = NULL, *Mv_inv = NULL, *G = NULL;
    if (st == KVATTN_OK) {
        Mk = calloc((size_t)(N ? N : 1) * (N ? N : 1), sizeof(double));
        Mk_half = malloc(sizeof(double) * (size_t)(N ? N : 1) * (N ? N : 1));
        Mk_inv = malloc(sizeof(double) * (size_t)(N ? N : 1) * (N ? N : 1));
        Mv = calloc((size_t)K * d * d, sizeof(double)), Mv_half = malloc(sizeof(double) * (size_t)K * d * d);
        Mv_inv = malloc(sizeof(double) * (size_t)K * d * d);
        G = calloc((size_t)J * dc, sizeof(double));
        double *C = malloc(sizeof(double) * (size_t)(N ? N : 1) * (N ? N : 1));
        if (!Mk || !Mk_half || !Mk_inv || !Mv || !Mv_half || !Mv_inv || !G || !C)
            st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
        for (int h = 0; st == KVATTN_OK && N > 0 && h < H; h++) {
            st = kv_project_cov(s->xx, D, Qn + (size_t)h * N * Dz, N, C);
            for (size_t k = 0; st == KVATTN_OK && k < (size_t)N * N; k++) Mk[k] += C[k];
        }
        free(C);
        for (int t = 0; st == KVATTN_OK && t < K; t++) kv_output_gram(s, t, Mv + (size_t)t * d * d);
        if (st == KVATTN_OK && N > 0) st = kv_sym_sqrt(N, Mk, Mk_half, Mk_inv);
        for (int t = 0; st == KVATTN_OK && t < K; t++)
            st = kv_sym_sqrt(d, Mv + (size_t)t * d * d, Mv_half + (size_t)t * d * d, Mv_inv + (size_t)t * d * d);
    }
    /* balance the two blocks' energy, then the joint principal directions */
    double alpha = 1.0, beta = 1.0;
    if (st == KVATTN_OK) {
        memcpy(Y + (size_t)N * Dz, s->wv, sizeof(double) * (size_t)K * d * Dz);
        st = kv_apply_blocks(Y, N, Mk_half, 1, D);
        if (st == KVATTN_OK) st = kv_apply_blocks(Y + (size_t)N * Dz, d, Mv_half, K, D);
    }
    if (st == KVATTN_OK) {
        kv_row_energy(s->xx, D, Y, J, en);
        double ek = 0.0, evv = 0.0;
        for (int r = 0; r < N; r++) ek += en[r];
        for (int r = N; r < J; r++) evv += en[r];
        if (N > 0 && ek > 0.0) alpha = 1.0 / sqrt(ek);
        if (evv > 0.0) beta = 1.0 / sqrt(evv);
        for (size_t k = 0; k < (size_t)N * Dz; k++) Y[k] *= alpha;
        for (size_t k = (size_t)N * Dz; k < (size_t)J * Dz; k++) Y[k] *= beta;
        st = kv_project_cov(s->xx, D, Y, J, P);
    }
    if (st == KVATTN_OK) st = kv_eigh(J, P, ev);
    if (st == KVATTN_OK) { /* G = blockdiag(Mk^(-1/2), Mv_t^(-1/2)) P[:, :dc] */
        for (int j = 0; j < J; j++) {
            const int key = j < N, n = key ? N : d, base = key ? 0 : N + ((j - N) / d) * d, i = j - base;
            const double *inv = key ? Mk_inv : Mv_inv + (size_t)((j - N) / d) * d * d;
            for (int m = 0; m < n; m++) {
                const double w = inv[(size_t)i * n + m];
                for (int c = 0; c < dc; c++) G[(size_t)j * dc + c] += w * P[(size_t)(base + m) * J + c];
            }
        }
    }
    free(Mk), free(Mk_half), free(Mk_inv), free(Mv), free(Mv_half), free(Mv_inv);
    /* assemble the DeepSeek layout */
    double *wq = NULL, *wkv_a = NULL, *wkv_b = NULL;
    if (st == KVATTN_OK) {
        wq = calloc((size_t)H * (dn + dr) * Dz, sizeof(double));
        wkv_a = calloc((size_t)(dc + dr) * Dz, sizeof(double));
        wkv_b = calloc((size_t)H * (dn + dv) * dc, sizeof(double));
        if (!wq || !wkv_a || !wkv_b) st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    }
    if (st == KVATTN_OK) {
        for (int c = 0; c < dc; c++) { /* W_DKV row c = Σ_j P[j][c] Y_j */
            double *row = wkv_a + (size_t)c * Dz;
            for (int j = 0; j < J; j++) {
                const double p = P[(size_t)j * J + c];
                for (size_t x = 0; x < Dz; x++) row[x] += p * Y[(size_t)j * Dz + x];
            }
        }
        memcpy(wkv_a + (size_t)dc * Dz, Kr, sizeof(double) * (size_t)dr * Dz);
        const int absorb_q = N > dc; /* d_nope = d_c: the query meets the latent directly */
        for (int h = 0; h < H; h++) {
            double *qh = wq + (size_t)h * (dn + dr) * Dz;
            const double *qn = Qn + (size_t)h * N * Dz;
            if (absorb_q)
                for (int c = 0; c < dc; c++)
                    for (int n = 0; n < N; n++) {
                        const double p = G[(size_t)n * dc + c] / alpha;
                        for (size_t x = 0; x < Dz; x++) qh[(size_t)c * Dz + x] += p * qn[(size_t)n * Dz + x];
                    }
            else if (N > 0) memcpy(qh, qn, sizeof(double) * (size_t)N * Dz);
            memcpy(qh + (size_t)dn * Dz, Qr + (size_t)h * dr * Dz, sizeof(double) * (size_t)dr * Dz);
            for (size_t x = 0; x < (size_t)(dn + dr) * Dz; x++) qh[x] *= scale;
            double *uk = wkv_b + (size_t)h * (dn + dv) * dc, *uv = uk + (size_t)dn * dc;
            for (int n = 0; n < dn && N > 0; n++)
                for (int c = 0; c < dc; c++)
                    uk[(size_t)n * dc + c] = absorb_q ? (n == c) : G[(size_t)n * dc + c] / alpha;
            const int t = h / qpk;
            for (int k = 0; k < dv; k++)
                for (int c = 0; c < dc; c++)
                    uv[(size_t)k * dc + c] = G[((size_t)N + (size_t)t * d + k) * dc + c] / beta;
        }
        out->wq = kv_to_float(wq, (size_t)H * (dn + dr) * Dz);
        out->wkv_a = kv_to_float(wkv_a, (size_t)(dc + dr) * Dz);
        out->wkv_b = kv_to_float(wkv_b, (size_t)H * (dn + dv) * dc);
        out->wo = kv_to_float(s->wo, (size_t)D * H * d);
        out->kv_norm = malloc(sizeof(float) * (size_t)dc);
        if (out->kv_norm)
            for (int c = 0; c < dc; c++) out->kv_norm[c] = 1.0f;
        if (!out->wq || !out->wkv_a || !out->wkv_b || !out->wo || !out->kv_norm) {
            free(out->wq), free(out->wkv_a), free(out->wkv_b), free(out->wo), free(out->kv_norm);
            memset(out, 0, sizeof *out);
            st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
        }
    }
    free(Y), free(Qn), free(Qr), free(Kr), free(qe), free(e), free(W), free(B), free((void *)a), free((void *)b);
    free(P), free(G), free(ev), free(en), free(wq), free(wkv_a), free(wkv_b), free(ia), free(ib);
    return st;
}

kvattn_status kv_mla_refit_norm(const kvattn_layer_config *cfg, double *A, double *Bm, kv_new_layer *l) {
    const int dc = cfg->kv_lora_rank, H = cfg->n_heads, rows = H * (cfg->qk_nope_head_dim + cfg->v_head_dim);
    double *X = malloc(sizeof(double) * (size_t)dc * dc), *tmp = malloc(sizeof(double) * (size_t)dc);
    if (!X || !tmp) {
        free(X), free(tmp);
        return kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    }
    for (int i = 0; i < dc; i++) /* A X = Bmᵀ: X = Mᵀ */
        for (int j = 0; j < dc; j++) X[(size_t)i * dc + j] = Bm[(size_t)j * dc + i];
    kvattn_status st = kv_solve_spd(dc, dc, A, X, 1e-9);
    for (int r = 0; st == KVATTN_OK && r < rows; r++) { /* row ← row · M */
        float *row = l->wkv_b + (size_t)r * dc;
        for (int c = 0; c < dc; c++) {
            double acc = 0.0;
            for (int k = 0; k < dc; k++) acc += (double)row[k] * X[(size_t)c * dc + k];
            tmp[c] = acc;
        }
        for (int c = 0; c < dc; c++) row[c] = (float)tmp[c];
    }
    free(X), free(tmp);
    return st;
}
