/* Mixture-of-experts routing (DeepSeek-V2/V3 style gates). */
#ifndef KVATTN_MOE_H
#define KVATTN_MOE_H

#include "internal.h"

/* MoE routing of one token: top-k experts and their weights.
 *   logits [n_experts] → idx [k], weight [k] */
void kv_moe_route(const kvattn_model_desc *d, const float *logits, const float *bias, int *idx, float *weight,
                  float *scratch /* [2·n_experts] */);

#endif
