/* kvattn export — a model written as GGUF (llama), weights in a chosen type. */
#include "cli_util.h"
#include "commands.h"
#include "options.h"

#include "kvattn.h"

#include <stdio.h>
#include <string.h>

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *tok = NULL, *out = NULL;
    kvattn_type type = KVATTN_TYPE_F16;
    const cli_option opts[] = {
        CLI_OPT_STRING("-m", &in, "MODEL", "the model: GGUF, llama2.c checkpoint or Hugging Face folder"),
        CLI_OPT_STRING("-z", &tok, "TOKENIZER", "llama2.c tokenizer.bin (llama2.c checkpoints)"),
        CLI_OPT_STRING("-o", &out, "OUT.gguf", "the GGUF file to write"),
        CLI_OPT_TYPE("--type", &type, 0, "TYPE",
                     "2-D weights as f32, f16, bf16, q8_0, q4_0 or q4_k (default f16; a row that is not whole "
                     "blocks falls back: q4_k to q4_0, block types to f16)"),
    };
    const cli_command cmd = {"export", "-m MODEL [-z TOKENIZER] -o OUT.gguf [--type TYPE]",
                             "Writes any model kvattn runs as a GGUF v3 file with llama.cpp's names (architecture\n"
                             "llama, or deepseek2 for MLA); 2-D weights in TYPE, norms in f32.",
                             opts, (int)(sizeof opts / sizeof opts[0])};
    const int rc = cli_parse(&cmd, argc, argv);
    if (rc != CLI_PARSED) return rc == CLI_HELP ? 0 : 2;
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
