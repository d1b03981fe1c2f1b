/* libFuzzer harness: a llama2.c tokenizer.bin for a vocabulary of 1 to 4096
 * tokens (the first two bytes pick it), then text through it and back. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const int vocab = ((data[0] << 8 | data[1]) & 4095) + 1;
    char path[64];
    int fd = fuzz_file(data + 2, size - 2, path, sizeof path);
    if (fd < 0) return 0;
    kvattn_tokenizer *t = NULL;
    if (kvattn_tokenizer_load_llama2c(path, vocab, &t) == KVATTN_OK)
        fuzz_tokenize_text(t, "Once upon a time \xf0\x9f\x98\x80 <0x41>");
    kvattn_tokenizer_free(t);
    close(fd);
    return 0;
}
