/* Decoding llama.cpp's block-quantized weights, one block at a time, as the
 * GGUF format defines them (ggml-quants' dequantize_row_* are the reference
 * for the layouts; tests/golden/quants.bin holds gguf-py's decoding of random
 * blocks), their writing, and the scalar twins of the integer products with
 * Q8_K activations (quants_isa.h has the products each level runs). */
#include "quants.h"

#include "convert.h"
#include "vec.h"

#include <math.h>
#include <string.h>

_Static_assert(sizeof(kv_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(kv_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(kv_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(kv_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(kv_block_q2_k) == 84, "q2_K block");
_Static_assert(sizeof(kv_block_q3_k) == 110, "q3_K block");
_Static_assert(sizeof(kv_block_q4_k) == 144, "q4_K block");
_Static_assert(sizeof(kv_block_q5_k) == 176, "q5_K block");
_Static_assert(sizeof(kv_block_q6_k) == 210, "q6_K block");

int kv_is_block_quant(kvattn_type t) { return kv_quant_block_bytes(t) != 0; }

int kv_quant_block_elems(kvattn_type t) {
    switch (t) {
    case KVATTN_TYPE_Q4_0:
    case KVATTN_TYPE_Q4_1:
    case KVATTN_TYPE_Q5_0:
    case KVATTN_TYPE_Q5_1: return KV_QK;
    case KVATTN_TYPE_Q2_K:
    case KVATTN_TYPE_Q3_K:
    case KVATTN_TYPE_Q4_K:
    case KVATTN_TYPE_Q5_K:
    case KVATTN_TYPE_Q6_K: return KV_QK_K;
    default: return 1;
    }
}

size_t kv_quant_block_bytes(kvattn_type t) {
    switch (t) {
    case KVATTN_TYPE_Q4_0: return sizeof(kv_block_q4_0);
    case KVATTN_TYPE_Q4_1: return sizeof(kv_block_q4_1);
    case KVATTN_TYPE_Q5_0: return sizeof(kv_block_q5_0);
    case KVATTN_TYPE_Q5_1: return sizeof(kv_block_q5_1);
    case KVATTN_TYPE_Q2_K: return sizeof(kv_block_q2_k);
    case KVATTN_TYPE_Q3_K: return sizeof(kv_block_q3_k);
    case KVATTN_TYPE_Q4_K: return sizeof(kv_block_q4_k);
    case KVATTN_TYPE_Q5_K: return sizeof(kv_block_q5_k);
    case KVATTN_TYPE_Q6_K: return sizeof(kv_block_q6_k);
    default: return 0;
    }
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- blocks of 32: the low nibbles are elements 0..15, the high 16..31 ---- */

static void dequant_q4_0(const kv_block_q4_0 *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = ((b->qs[j] & 0xF) - 8) * d;
        y[j + 16] = ((b->qs[j] >> 4) - 8) * d;
    }
}

static void dequant_q4_1(const kv_block_q4_1 *b, float *y) {
    const float d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = (b->qs[j] & 0xF) * d + m;
        y[j + 16] = (b->qs[j] >> 4) * d + m;
    }
}

/* Element j's fifth bit is bit j of qh; element j + 16's is bit j + 16. */
static void dequant_q5_0(const kv_block_q5_0 *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    const uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        const int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1)
                                                                                                << 4;
        y[j] = (lo - 16) * d;
        y[j + 16] = (hi - 16) * d;
    }
}

static void dequant_q5_1(const kv_block_q5_1 *b, float *y) {
    const float d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m);
    const uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        const int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1)
                                                                                                << 4;
        y[j] = lo * d + m;
        y[j + 16] = hi * d + m;
    }
}

/* ---- super-blocks of 256 --------------------------------------------------- */

/* Q2_K: per 128 elements, 32 bytes of quants read four times (shifts 0, 2, 4,
 * 6); each 16 elements have a 4-bit scale and a 4-bit min. */
static void dequant_q2_k(const kv_block_q2_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    for (int n = 0; n < KV_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++) {
                const uint8_t sc = b->scales[is++];
                const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
            }
}

/* Q3_K's sixteen 6-bit scales: the low 4 bits in bytes 0..7 (two per byte),
 * the high 2 bits in bytes 8..11 (four per byte); stored as scale + 32. */
void kv_q3_k_scales(const uint8_t *s, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        const int lo = i < 8 ? s[i] & 0xF : s[i - 8] >> 4, hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* Q3_K: as Q2_K's layout, plus a third bit from hmask (set: +0, clear: -4). */
static void dequant_q3_k(const kv_block_q3_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    int8_t sc[16];
    kv_q3_k_scales(b->scales, sc);
    const uint8_t *q = b->qs;
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < KV_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int half = 0; half < 2; half++) {
                const float dl = d * sc[is++];
                for (int l = 16 * half; l < 16 * half + 16; l++)
                    *y++ = dl * ((int)((q[l] >> shift) & 3) - ((b->hmask[l] & m) ? 0 : 4));
            }
}

/* Q4_K/Q5_K's eight 6-bit scales and mins (get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: per 64 elements, 32 bytes: low nibbles the first 32, high the next. */
static void dequant_q4_k(const kv_block_q4_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 8; j += 2, q += 32) {
        uint8_t s0, m0, s1, m1;
        scale_min_k4(j, b->scales, &s0, &m0);
        scale_min_k4(j + 1, b->scales, &s1, &m1);
        const float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
        for (int l = 0; l < 32; l++) *y++ = d0 * (q[l] & 0xF) - n0;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] >> 4) - n1;
    }
}

/* Q5_K: Q4_K plus a fifth bit per element from qh (bit 2·(j/2) for the low
 * nibbles of the j-th 64, the next bit for the high). */
static void dequant_q5_k(const kv_block_q5_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, q += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t s0, m0, s1, m1;
        scale_min_k4(j, b->scales, &s0, &m0);
        scale_min_k4(j + 1, b->scales, &s1, &m1);
        const float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
        for (int l = 0; l < 32; l++) *y++ = d0 * ((q[l] & 0xF) + (b->qh[l] & u1 ? 16 : 0)) - n0;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] >> 4) + (b->qh[l] & u2 ? 16 : 0)) - n1;
    }
}

/* Q6_K: per 128 elements, 64 bytes of low nibbles and 32 of high 2-bit
 * pairs; a signed 8-bit scale per 16. */
static void dequant_q6_k(const kv_block_q6_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int n = 0; n < KV_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
            const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
}

/* One block of t at p into y (kv_quant_block_elems(t) floats). */
static void dequant_block(kvattn_type t, const void *p, float *y) {
    switch (t) {
    case KVATTN_TYPE_Q4_0: dequant_q4_0(p, y); break;
    case KVATTN_TYPE_Q4_1: dequant_q4_1(p, y); break;
    case KVATTN_TYPE_Q5_0: dequant_q5_0(p, y); break;
    case KVATTN_TYPE_Q5_1: dequant_q5_1(p, y); break;
    case KVATTN_TYPE_Q2_K: dequant_q2_k(p, y); break;
    case KVATTN_TYPE_Q3_K: dequant_q3_k(p, y); break;
    case KVATTN_TYPE_Q4_K: dequant_q4_k(p, y); break;
    case KVATTN_TYPE_Q5_K: dequant_q5_k(p, y); break;
    case KVATTN_TYPE_Q6_K: dequant_q6_k(p, y); break;
    default: memset(y, 0, sizeof(float) * (size_t)kv_quant_block_elems(t)); break;
    }
}

void kv_dequant_row_ref(kvattn_type t, const void *row, float *y, int n) {
    const int qk = kv_quant_block_elems(t);
    const size_t bytes = kv_quant_block_bytes(t);
    for (int i = 0; i + qk <= n; i += qk)
        dequant_block(t, (const unsigned char *)row + (size_t)(i / qk) * bytes, y + i);
}

float kv_quant_get_ref(kvattn_type t, const void *row, int i) {
    float block[KV_QK_K];
    const int qk = kv_quant_block_elems(t);
    dequant_block(t, (const unsigned char *)row + (size_t)(i / qk) * kv_quant_block_bytes(t), block);
    return block[i % qk];
}

/* ---- integer products with Q8_K activations ------------------------------------ */

void kv_quantize_q8_k_ref(const float *x, kv_block_q8_k *y, int n) {
    for (int b = 0; b < n / KV_QK_K; b++, x += KV_QK_K) {
        float amax = 0.0f;
        int j = 0;
        for (; j < KV_QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = amax / 127.0f;
        j = 0;
        for (; j < KV_QK_K; j++) y[b].qs[j] = (int8_t)lrintf(x[j] * id);
        for (int g = 0; g < KV_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sum += y[b].qs[i];
            y[b].bsums[g] = (int16_t)sum;
        }
    }
}

void kv_quantize_q8_k_residual_ref(const float *x, const kv_block_q8_k *xq, kv_block_q8_k *xl, int n) {
    for (int b = 0; b < n / KV_QK_K; b++, x += KV_QK_K) {
        const float d = xq[b].d, dl = ldexpf(d, -KV_Q8_K_RES_SHIFT);
        const float id = dl > 0.0f ? 1.0f / dl : 0.0f;
        xl[b].d = dl;
        for (int j = 0; j < KV_QK_K; j++) {
            const float r = x[j] - d * (float)xq[b].qs[j];
            const long q = lrintf(r * id); /* NaN: LONG_MIN, as the vector conversion's INT_MIN */
            xl[b].qs[j] = (int8_t)(q > 127 ? 127 : q < -128 ? -128 : q);
        }
        for (int g = 0; g < KV_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sum += xl[b].qs[i];
            xl[b].bsums[g] = (int16_t)sum;
        }
    }
}

size_t kv_q4_k_x16_bytes(int rows, int cols) {
    if (rows < 1 || cols < 1 || cols % KV_QK_K) return 0;
    const size_t groups = ((size_t)rows + KV_Q4_K_X16_ROWS - 1) / KV_Q4_K_X16_ROWS, nb = (size_t)cols / KV_QK_K;
    if (groups > SIZE_MAX / sizeof(kv_block_q4_k_x16) / nb) return 0;
    return groups * nb * sizeof(kv_block_q4_k_x16);
}

void kv_pack_q4_k_x16(const void *rows_base, size_t row_bytes, int rows, int cols, kv_block_q4_k_x16 *out) {
    const int nb = cols / KV_QK_K, groups = (rows + KV_Q4_K_X16_ROWS - 1) / KV_Q4_K_X16_ROWS;
#pragma omp parallel for schedule(static) if (groups > 1)
    for (int g = 0; g < groups; g++)
        for (int b = 0; b < nb; b++) {
            kv_block_q4_k_x16 *o = out + (size_t)g * nb + b;
            memset(o, 0, sizeof *o); /* rows past the last: zero scales, zero outputs */
            for (int r = 0; r < KV_Q4_K_X16_ROWS && g * KV_Q4_K_X16_ROWS + r < rows; r++) {
                const kv_block_q4_k *q = (const kv_block_q4_k *)((const unsigned char *)rows_base +
                                                                 (size_t)(g * KV_Q4_K_X16_ROWS + r) * row_bytes) +
                                         b;
                o->d[r] = q->d, o->dmin[r] = q->dmin;
                for (int j = 0; j < 8; j++) scale_min_k4(j, q->scales, &o->scales[j][r], &o->mins[j][r]);
                for (int p = 0; p < 4; p++)
                    for (int c = 0; c < 8; c++) memcpy(&o->qs[p][c][4 * r], q->qs + 32 * p + 4 * c, 4);
            }
        }
}

void kv_q4_k_x16_msums(const kv_block_q8_k *x, const kv_block_q8_k *xl, int nb, int32_t *msums) {
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < 8; j++) {
            const int32_t sx = x[b].bsums[2 * j] + x[b].bsums[2 * j + 1];
            msums[8 * b + j] = xl ? sx * (1 << KV_Q8_K_RES_SHIFT) + xl[b].bsums[2 * j] + xl[b].bsums[2 * j + 1] : sx;
        }
}

void kv_q4_k_x16_dot_ref(const kv_block_q4_k_x16 *g, int nb, const kv_block_q8_k *x, const kv_block_q8_k *xl,
                         const int32_t *msums, float y[KV_Q4_K_X16_ROWS]) {
    float acc[KV_Q4_K_X16_ROWS] = {0}, mins[KV_Q4_K_X16_ROWS] = {0};
    for (int b = 0; b < nb; b++, g++) {
        const kv_block_q8_k *a = xl ? &xl[b] : &x[b];
        for (int r = 0; r < KV_Q4_K_X16_ROWS; r++) {
            const float dd = kv_f16_to_f32(g->d[r]) * a->d, dm = kv_f16_to_f32(g->dmin[r]) * a->d;
            int32_t msum = 0;
            for (int j = 0; j < 8; j++) msum += (int32_t)g->mins[j][r] * msums[8 * b + j];
            for (int p = 0; p < 4; p++) {
                int32_t lo = 0, hi = 0; /* 2^8·Σx + Σxl ≤ 2^8·32·15·127 + 32·15·128 */
                for (int c = 0; c < 8; c++)
                    for (int i = 0; i < 4; i++) {
                        const int q = g->qs[p][c][4 * r + i], e = 64 * p + 4 * c + i;
                        lo += (q & 0xF) * x[b].qs[e], hi += (q >> 4) * x[b].qs[e + 32];
                    }
                if (xl) {
                    lo *= 1 << KV_Q8_K_RES_SHIFT, hi *= 1 << KV_Q8_K_RES_SHIFT;
                    for (int c = 0; c < 8; c++)
                        for (int i = 0; i < 4; i++) {
                            const int q = g->qs[p][c][4 * r + i], e = 64 * p + 4 * c + i;
                            lo += (q & 0xF) * xl[b].qs[e], hi += (q >> 4) * xl[b].qs[e + 32];
                        }
                }
                const int32_t s = lo * g->scales[2 * p][r] + hi * g->scales[2 * p + 1][r];
                acc[r] = fmaf((float)s, dd, acc[r]);
            }
            mins[r] = fmaf((float)msum, dm, mins[r]);
        }
    }
    for (int r = 0; r < KV_Q4_K_X16_ROWS; r++) y[r] = acc[r] - mins[r];
}

int kv_quant_has_q8_k_dot(kvattn_type t) {
    return t == KVATTN_TYPE_Q4_K || t == KVATTN_TYPE_Q5_K || t == KVATTN_TYPE_Q6_K || t == KVATTN_TYPE_Q4_0 ||
           t == KVATTN_TYPE_Q4_1 || t == KVATTN_TYPE_Q5_0 || t == KVATTN_TYPE_Q5_1 || t == KVATTN_TYPE_Q2_K ||
           t == KVATTN_TYPE_Q3_K;
}

/* The 6-bit scales and mins of a Q4_K super-block. */
static void q4_k_scales(const uint8_t *packed, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++) scale_min_k4(j, packed, &sc[j], &mn[j]);
}

/* Q4_K and Q5_K (qh: the fifth bits, or NULL) against one Q8_K block: per
 * 32, the scale times Σ q·a, less the min times Σ a. */
static float q45_k_dot_ref(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                           const kv_block_q8_k *x) {
    uint8_t sc[8], mn[8];
    q4_k_scales(scales, sc, mn);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = qs + 32 * (j / 2);
        int32_t s = 0;
        for (int l = 0; l < 32; l++) {
            const int v = (j % 2 ? q[l] >> 4 : q[l] & 0xF) | (qh ? ((qh[l] >> j) & 1) << 4 : 0);
            s += v * x->qs[32 * j + l];
        }
        isum += sc[j] * s;
        msum += mn[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    return x->d * (kv_f16_to_f32(d) * (float)isum - kv_f16_to_f32(dmin) * (float)msum);
}

void kv_block32_ints(kvattn_type t, const void *block, uint8_t q[KV_QK], float *d, float *off) {
    const uint8_t *qs, *qh = NULL;
    float m = 0.0f;
    switch (t) {
    case KVATTN_TYPE_Q4_0:
        *d = kv_f16_to_f32(((const kv_block_q4_0 *)block)->d), qs = ((const kv_block_q4_0 *)block)->qs;
        break;
    case KVATTN_TYPE_Q4_1: {
        const kv_block_q4_1 *b = block;
        *d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m), qs = b->qs;
        break;
    }
    case KVATTN_TYPE_Q5_0: {
        const kv_block_q5_0 *b = block;
        *d = kv_f16_to_f32(b->d), qs = b->qs, qh = b->qh;
        break;
    }
    default: {
        const kv_block_q5_1 *b = block;
        *d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m), qs = b->qs, qh = b->qh;
        break;
    }
    }
    const uint32_t h = qh ? le32(qh) : 0;
    for (int j = 0; j < 16; j++) {
        q[j] = (uint8_t)((qs[j] & 0xF) | ((h >> j) & 1) << 4);
        q[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
    }
    /* x = q·d + off: Q4_0 centres on 8, Q5_0 on 16, Q4_1 and Q5_1 add their minimum */
    *off = t == KVATTN_TYPE_Q4_0 ? -8.0f * *d : t == KVATTN_TYPE_Q5_0 ? -16.0f * *d : m;
}

/* Q2_K or Q3_K against one Q8_K block: element e (its quant at shift
 * 2·(e % 128 / 32) of byte 32·(e / 128) + e % 32) in group e / 16 of the
 * sixteen scales; Q2_K less its group's min, Q3_K less 4 where hmask's bit
 * 4·(e / 128) + e % 128 / 32 of byte e % 32 is clear. */
static float q23_k_dot_ref(kvattn_type t, const void *block, const kv_block_q8_k *x) {
    const kv_block_q2_k *b2 = block;
    const kv_block_q3_k *b3 = block;
    int8_t sc[16];
    const uint8_t *qs = t == KVATTN_TYPE_Q2_K ? b2->qs : b3->qs;
    if (t == KVATTN_TYPE_Q2_K)
        for (int g = 0; g < 16; g++) sc[g] = (int8_t)(b2->scales[g] & 0xF);
    else kv_q3_k_scales(b3->scales, sc);
    int32_t isum = 0, msum = 0;
    for (int e = 0; e < KV_QK_K; e++) {
        const int n = e / 128, j = e % 128 / 32;
        int q = (qs[32 * n + e % 32] >> (2 * j)) & 3;
        if (t == KVATTN_TYPE_Q3_K) q -= (b3->hmask[e % 32] >> (4 * n + j)) & 1 ? 0 : 4;
        isum += sc[e / 16] * q * x->qs[e];
    }
    if (t == KVATTN_TYPE_Q2_K)
        for (int g = 0; g < 16; g++) msum += (b2->scales[g] >> 4) * x->bsums[g];
    if (t == KVATTN_TYPE_Q3_K) return x->d * kv_f16_to_f32(b3->d) * (float)isum;
    return x->d * (kv_f16_to_f32(b2->d) * (float)isum - kv_f16_to_f32(b2->dmin) * (float)msum);
}

/* Eight blocks of 32 (one super-block's worth) against one Q8_K block: per
 * block d·Σ q·a + off·Σ a, the integer sums exact. */
static float block32_dot_ref(kvattn_type t, const unsigned char *b, const kv_block_q8_k *x) {
    float s = 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t q[KV_QK];
        float d, off;
        kv_block32_ints(t, b + (size_t)j * kv_quant_block_bytes(t), q, &d, &off);
        int32_t isum = 0;
        for (int l = 0; l < KV_QK; l++) isum += q[l] * x->qs[32 * j + l];
        s += d * x->d * (float)isum + off * x->d * (float)(x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    return s;
}

static float q6_k_dot_ref(const kv_block_q6_k *b, const kv_block_q8_k *x) {
    int32_t isum = 0;
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        const int8_t *sc = b->scales + 8 * n, *q8 = x->qs + 128 * n;
        for (int k = 0; k < 4; k++) {
            int32_t s[2] = {0, 0};
            for (int l = 0; l < 32; l++) {
                const int lo = k % 2 ? ql[l + 32] : ql[l], nib = k < 2 ? lo & 0xF : lo >> 4;
                const int q = (nib | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                s[l / 16] += q * q8[32 * k + l];
            }
            isum += sc[2 * k] * s[0] + sc[2 * k + 1] * s[1];
        }
    }
    return x->d * kv_f16_to_f32(b->d) * (float)isum;
}

float kv_quant_row_dot_q8_k_ref(kvattn_type t, const void *row, const kv_block_q8_k *x, int n) {
    float s = 0.0f;
    for (int b = 0; b < n / KV_QK_K; b++) {
        const kv_block_q4_k *q4 = (const kv_block_q4_k *)row + b;
        const kv_block_q5_k *q5 = (const kv_block_q5_k *)row + b;
        switch (t) {
        case KVATTN_TYPE_Q4_K: s += q45_k_dot_ref(q4->d, q4->dmin, q4->scales, q4->qs, NULL, x + b); break;
        case KVATTN_TYPE_Q5_K: s += q45_k_dot_ref(q5->d, q5->dmin, q5->scales, q5->qs, q5->qh, x + b); break;
        case KVATTN_TYPE_Q2_K: s += q23_k_dot_ref(t, (const kv_block_q2_k *)row + b, x + b); break;
        case KVATTN_TYPE_Q3_K: s += q23_k_dot_ref(t, (const kv_block_q3_k *)row + b, x + b); break;
        case KVATTN_TYPE_Q4_0:
        case KVATTN_TYPE_Q4_1:
        case KVATTN_TYPE_Q5_0:
        case KVATTN_TYPE_Q5_1:
            s += block32_dot_ref(t, (const unsigned char *)row + (size_t)8 * b * kv_quant_block_bytes(t), x + b);
            break;
        default: s += q6_k_dot_ref((const kv_block_q6_k *)row + b, x + b); break;
        }
    }
    return s;
}

/* ---- q8_0 weights' integer products ---------------------------------------- */

void kv_quantize_q16_32_ref(const float *x, int16_t *q, float *d, int n) {
    for (int b = 0; b < n / KV_QK; b++, x += KV_QK, q += KV_QK) {
        float amax = 0.0f;
        for (int i = 0; i < KV_QK; i++) amax = fmaxf(amax, fabsf(x[i]));
        const float id = amax > 0.0f ? 32767.0f / amax : 0.0f;
        d[b] = amax / 32767.0f;
        for (int i = 0; i < KV_QK; i++) q[i] = (int16_t)lrintf(x[i] * id);
    }
}

float kv_q8_0_row_dot_q16_ref(const void *row, const int16_t *q, const float *d, int n) {
    const kv_block_q8_0 *w = row;
    float s = 0.0f;
    for (int b = 0; b < n / KV_QK; b++) {
        int32_t isum = 0;
        for (int i = 0; i < KV_QK; i++) isum += w[b].qs[i] * q[KV_QK * b + i];
        s += kv_f16_to_f32(w[b].d) * d[b] * (float)isum;
    }
    return s;
}

/* ---- writing ---------------------------------------------------------------- */

int kv_quant_can_write(kvattn_type t) { return t == KVATTN_TYPE_Q4_0 || t == KVATTN_TYPE_Q4_K; }

static void quantize_q4_0(const float *x, kv_block_q4_0 *b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < KV_QK; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = kv_f32_to_f16(d);
    for (int j = 0; j < 16; j++) {
        const int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
        b->qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
    }
}

static int nearest(float v, int hi) {
    const int q = (int)lrintf(v);
    return q < 0 ? 0 : q > hi ? hi : q;
}

static void quantize_q4_k(const float *x, kv_block_q4_k *b) {
    float scale[8], minus_min[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo = x[32 * j], hi = x[32 * j];
        for (int l = 1; l < 32; l++) lo = fminf(lo, x[32 * j + l]), hi = fmaxf(hi, x[32 * j + l]);
        if (lo > 0.0f) lo = 0.0f; /* the format subtracts a non-negative min */
        scale[j] = (hi - lo) / 15.0f;
        minus_min[j] = -lo;
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, minus_min[j]);
    }
    const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    b->d = kv_f32_to_f16(d);
    b->dmin = kv_f32_to_f16(dmin);
    const float dq = kv_f16_to_f32(b->d), mq = kv_f16_to_f32(b->dmin); /* as the reader will see them */
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)(dq > 0.0f ? nearest(scale[j] / dq, 63) : 0);
        lm[j] = (uint8_t)(mq > 0.0f ? nearest(minus_min[j] / mq, 63) : 0);
    }
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 8; j++) { /* scale_min_k4's packing, inverted */
        if (j < 4) {
            b->scales[j] = ls[j];
            b->scales[j + 4] = lm[j];
        } else {
            b->scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            b->scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            b->scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    for (int j = 0; j < 8; j += 2)
        for (int l = 0; l < 32; l++) {
            int q[2];
            for (int h = 0; h < 2; h++) {
                const float sc = dq * ls[j + h], mn = mq * lm[j + h];
                q[h] = sc > 0.0f ? nearest((x[32 * (j + h) + l] + mn) / sc, 15) : 0;
            }
            b->qs[16 * j + l] = (uint8_t)(q[0] | q[1] << 4);
        }
}

void kv_quantize_row(kvattn_type t, const float *x, void *row, int n) {
    const int qk = kv_quant_block_elems(t);
    for (int i = 0; i + qk <= n; i += qk) {
        if (t == KVATTN_TYPE_Q4_0) quantize_q4_0(x + i, (kv_block_q4_0 *)row + i / qk);
        else if (t == KVATTN_TYPE_Q4_K) quantize_q4_k(x + i, (kv_block_q4_k *)row + i / qk);
    }
}
