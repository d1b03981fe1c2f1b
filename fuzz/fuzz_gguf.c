/* libFuzzer harness: a GGUF file — header, metadata, tensor table, tokenizer —
 * then, when it loads and is small, two decode steps of it. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    kvattn_model *m = NULL;
    if (kvattn_model_load(path, NULL, &m) == KVATTN_OK) fuzz_run_model(m);
    kvattn_model_free(m);
    close(fd);
    return 0;
}
