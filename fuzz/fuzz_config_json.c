/* libFuzzer harness: a Hugging Face config.json, and the planner on what it describes. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    kvattn_model_desc m;
    if (kvattn_model_from_hf_config(path, &m) == KVATTN_OK) {
        kvattn_plan_options opt = {4096, 2, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, (uint64_t)80 << 30, 0};
        static const char *const designs[] = {NULL, "mha", "mqa", "gqa:8", "mla:512+64"};
        for (int i = 0; i < 5; i++) {
            kvattn_plan_row row;
            kvattn_plan(&m, designs[i], &opt, &row);
        }
        for (int l = 0; l < m.n_layers && l < 4096; l++) kvattn_model_is_moe_layer(&m, l);
    }
    close(fd);
    return 0;
}
