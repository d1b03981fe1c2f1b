/* libFuzzer harness: a llama2.c checkpoint (no magic: any file that is not
 * GGUF is read as one), then two decode steps when it loads and is small. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 4 && !memcmp(data, "GGUF", 4)) return 0; /* fuzz_gguf's */
    fuzz_load_and_run(data, size);
    return 0;
}
