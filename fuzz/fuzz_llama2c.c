/* libFuzzer harness: a llama2.c checkpoint (no magic: any file that is not
 * GGUF is read as one), then two decode steps when it loads and is small. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 4 && !memcmp(data, "GGUF", 4)) return 0; /* fuzz_gguf's */
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    kvattn_model *m = NULL;
    if (kvattn_model_load(path, NULL, &m) == KVATTN_OK) fuzz_run_model(m);
    kvattn_model_free(m);
    close(fd);
    return 0;
}
