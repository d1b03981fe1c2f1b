#include "rope.h"

#include <math.h>

static double yarn_correction_dim(double rotations, int n_rot, double theta, int orig_ctx) {
    return n_rot * log(orig_ctx / (rotations * 2.0 * 3.14159265358979323846)) / (2.0 * log(theta));
}

void kv_rope_freqs(const kvattn_rope_config *r, int n_rot, float *freqs) {
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) freqs[i] = 1.0f / powf(r->theta, (float)(2 * i) / (float)n_rot);
    for (int i = 0; r->freq_factors && i < half; i++) freqs[i] /= r->freq_factors[i];
    if (!(r->yarn_factor > 1.0f)) return;
    double beta_fast = r->yarn_beta_fast > 0.0f ? r->yarn_beta_fast : 32.0;
    double beta_slow = r->yarn_beta_slow > 0.0f ? r->yarn_beta_slow : 1.0;
    double low = floor(yarn_correction_dim(beta_fast, n_rot, r->theta, r->yarn_orig_ctx));
    double high = ceil(yarn_correction_dim(beta_slow, n_rot, r->theta, r->yarn_orig_ctx));
    if (low < 0) low = 0;
    if (high > n_rot - 1) high = n_rot - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < half; i++) {
        float ramp = (float)(((float)i - low) / (high - low));
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        float smooth = 1.0f - ramp; /* 1: keep the frequency; 0: interpolate by the factor */
        freqs[i] = freqs[i] / r->yarn_factor * (1.0f - smooth) + freqs[i] * smooth;
    }
}

void kv_rope_apply(float *x, int n_rot, const float *freqs, int pos, kvattn_rope_pairing pairing) {
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * freqs[i];
        float c = cosf(angle), s = sinf(angle);
        int ia = pairing == KVATTN_ROPE_ADJACENT ? 2 * i : i;
        int ib = pairing == KVATTN_ROPE_ADJACENT ? 2 * i + 1 : i + half;
        float a = x[ia], b = x[ib];
        x[ia] = a * c - b * s;
        x[ib] = a * s + b * c;
    }
}
