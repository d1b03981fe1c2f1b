/* libFuzzer harness: a GGUF file — header, metadata, tensor table, tokenizer —
 * then, when it loads and is small, two decode steps of it. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_load_and_run(data, size);
    return 0;
}
