/* Rotary position embedding, optionally YaRN-extended. */
#ifndef KVATTN_ROPE_H
#define KVATTN_ROPE_H

#include "kvattn.h"

/* Inverse frequencies of the n_rot/2 rotating pairs:
 *   f_i = 1 / theta^(2i / n_rot), divided by freq_factors[i] when given
 * YaRN (factor > 1, as DeepSeek-V3's precompute_freqs_cis): pairs below the
 * correction band keep f_i, pairs above it become f_i / factor, a linear ramp
 * in between. Band edges: floor/ceil of n_rot·ln(orig/(β·2π)) / (2 ln θ). */
void kv_rope_freqs(const kvattn_rope_config *r, int n_rot, float *freqs);

/* Rotates the first n_rot elements of x for position pos. Angles are
 * pos·f_i in f32, as llama2.c and PyTorch references compute them. */
void kv_rope_apply(float *x, int n_rot, const float *freqs, int pos, kvattn_rope_pairing pairing);

#endif
