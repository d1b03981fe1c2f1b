/* libFuzzer harness: tokenizer.json in a Hugging Face folder whose
 * config.json and model.safetensors are valid. */
#include "fuzz_hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_hf_with("tokenizer.json", fuzz_hf_tokenizer, strlen(fuzz_hf_tokenizer), data, size);
    return 0;
}
