/* Mixture-of-experts routing, as DeepSeek-V2/V3 define it (their reference
 * inference/model.py Gate and the Hugging Face configs' keys):
 *   probs  = softmax(logits) or sigmoid(logits)
 *   choice = probs + bias (V3's score correction; selection only)
 *   groups: keep the n_expert_groups_used best groups, scored by their max
 *           (no bias) or the sum of their two best (with bias); the other
 *           groups' experts are out (-inf, as the reference and llama.cpp;
 *           Hugging Face's modeling code fills 0 instead)
 *   top-k experts by choice (lowest index on ties); weight = probs, then
 *   normalised to sum 1 when expert_weights_norm, times expert_weights_scale. */
#include "moe.h"

#include <math.h>
#include <string.h>

static int better(float a, int ia, float b, int ib) { return a > b || (a == b && ia < ib); }

void kv_moe_route(const kvattn_model_desc *d, const float *logits, const float *bias, int *idx, float *weight,
                  float *scratch) {
    const int E = d->n_routed_experts, k = d->n_active_experts;
    float *probs = scratch, *choice = scratch + E;
    if (d->expert_gating == 1) {
        for (int e = 0; e < E; e++) probs[e] = 1.0f / (1.0f + expf(-logits[e]));
    } else {
        float mx = logits[0];
        for (int e = 1; e < E; e++) mx = fmaxf(mx, logits[e]);
        double sum = 0.0;
        for (int e = 0; e < E; e++) sum += probs[e] = expf(logits[e] - mx);
        for (int e = 0; e < E; e++) probs[e] = (float)(probs[e] / sum);
    }
    for (int e = 0; e < E; e++) choice[e] = probs[e] + (bias ? bias[e] : 0.0f);
    const int G = d->n_expert_groups > 1 ? d->n_expert_groups : 1, per = E / G;
    if (G > 1 && d->n_expert_groups_used < G) {
        float gscore[256];
        int keep[256] = {0};
        for (int g = 0; g < G && g < 256; g++) {
            float a = -INFINITY, b = -INFINITY; /* the best two in the group */
            for (int e = g * per; e < (g + 1) * per; e++) {
                if (choice[e] > a) b = a, a = choice[e];
                else if (choice[e] > b) b = choice[e];
            }
            gscore[g] = bias ? a + (per > 1 ? b : 0.0f) : a;
        }
        for (int r = 0; r < d->n_expert_groups_used; r++) {
            int best = -1;
            for (int g = 0; g < G && g < 256; g++)
                if (!keep[g] && (best < 0 || better(gscore[g], g, gscore[best], best))) best = g;
            keep[best] = 1;
        }
        for (int g = 0; g < G && g < 256; g++)
            if (!keep[g])
                for (int e = g * per; e < (g + 1) * per; e++) choice[e] = -INFINITY;
    }
    for (int r = 0; r < k; r++) { /* k is small: selection by repeated scans */
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int q = 0; q < r && !taken; q++) taken = idx[q] == e;
            if (!taken && (best < 0 || better(choice[e], e, choice[best], best))) best = e;
        }
        idx[r] = best;
        weight[r] = probs[best];
    }
    if (d->expert_weights_norm) {
        double sum = 1e-20;
        for (int r = 0; r < k; r++) sum += weight[r];
        for (int r = 0; r < k; r++) weight[r] = (float)(weight[r] / sum);
    }
    float scale = d->expert_weights_scale > 0.0f ? d->expert_weights_scale : 1.0f;
    for (int r = 0; r < k; r++) weight[r] *= scale;
}
