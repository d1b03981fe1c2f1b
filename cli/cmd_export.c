/* kvattn export — a model written as GGUF (llama), weights in a chosen type. */
#include "cli_util.h"
#include "commands.h"

#include "kvattn.h"

#include <stdio.h>
#include <string.h>

static void export_usage(FILE *f) {
    fprintf(f, "usage: kvattn export -m MODEL [-z TOKENIZER] -o OUT.gguf [--type f32|f16|bf16|q8_0]\n\n"
               "Writes any model kvattn runs (llama2.c, GGUF, Hugging Face folder) as a GGUF v3 file with\n"
               "architecture llama and llama.cpp's names; 2-D weights in TYPE (default f16), norms in f32.\n");
}

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *tok = NULL, *out = NULL;
    kvattn_type type = KVATTN_TYPE_F16;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            export_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "kvattn export: unknown option or missing value: '%s'\n\n", a);
            export_usage(stderr);
            return 2;
        }
        if (!strcmp(a, "-m")) in = v;
        else if (!strcmp(a, "-z")) tok = v;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--type")) {
            if (kvattn_type_from_name(v, &type) != KVATTN_OK || !kvattn_type_is_cache_type(type)) {
                fprintf(stderr, "kvattn export: --type '%s': expected f32, f16, bf16 or q8_0\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "kvattn export: unknown option '%s'\n\n", a);
            export_usage(stderr);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "kvattn export: -m MODEL and -o OUT.gguf are required\n");
        return 2;
    }
    kvattn_model *m = NULL;
    double t0 = cli_now();
    if (kvattn_model_load(in, tok, &m) != KVATTN_OK || kvattn_model_save_gguf(m, out, type) != KVATTN_OK) {
        fprintf(stderr, "kvattn export: %s\n", kvattn_last_error());
        kvattn_model_free(m);
        return 1;
    }
    fprintf(stderr, "wrote %s (%s weights) in %.2f s\n", out, kvattn_type_name(type), cli_now() - t0);
    kvattn_model_free(m);
    return 0;
}
