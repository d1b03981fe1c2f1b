/* libFuzzer harness: model.safetensors (its JSON header and tensors) in a
 * Hugging Face folder whose config.json and tokenizer.json are valid. */
#include "fuzz_hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t valid[16384];
    static size_t n;
    if (!n) n = fuzz_hf_safetensors(valid, sizeof valid);
    fuzz_hf_with("model.safetensors", (const char *)valid, n, data, size);
    return 0;
}
