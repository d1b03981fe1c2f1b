/* The golden fixtures' models written as GGUF files (tests/golden_gguf.c). */
#ifndef KVATTN_GOLDEN_GGUF_H
#define KVATTN_GOLDEN_GGUF_H

#include "golden_file.h"
#include "kvattn.h"

/* The architecture a GQA-family fixture names: llama, qwen2 or qwen3. */
const char *golden_arch_name(const golden_file *g);

/* A GQA-family fixture (gqa_model_fixture) as a GGUF of its architecture;
 * weights of wtype, the router and the vectors f32 (as llama.cpp's converter
 * keeps them). With extra, one more tensor named so (a copy of the output
 * norm); with linear > 0, RoPE scaling as rope.scaling.type = linear and
 * rope.scaling.factor instead of the fixture's rope_freqs.weight. */
kvattn_status golden_write_gguf(const golden_file *g, const char *path, kvattn_type wtype, const char *extra,
                                float linear);

/* A DeepSeek fixture (deepseek_model_fixture) as a deepseek2 GGUF: attn_kv_b
 * fused, or split into attn_k_b / attn_v_b; with vocab, a byte vocabulary. */
kvattn_status golden_write_deepseek2_gguf(const golden_file *g, const char *path, int split, kvattn_type wtype,
                                          int vocab);

#endif
