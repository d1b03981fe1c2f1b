/* kvattn tokenize — the ids a model's vocabulary gives a text, printed as
 * llama.cpp's llama-tokenize prints them. */
#include "commands.h"
#include "model_cli.h"
#include "options.h"

#include "kvattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file's first four bytes are GGUF's magic. */
static int is_gguf(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    const int ok = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return ok;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *prompt = NULL, *file = NULL;
    int ids_only = 0, no_bos = 0, show_count = 0, use_stdin = 0;
    const cli_option opts[] = {
        CLI_OPT_STRING("-m, --model", &model, "MODEL",
                       "a model, a vocabulary-only GGUF (llama.cpp's models/ggml-vocab-*.gguf) or a\n"
                       "tokenizer.json"),
        CLI_OPT_STRING("-z", &tok_path, "TOKENIZER", "llama2.c tokenizer.bin (llama2.c checkpoints)"),
        CLI_OPT_STRING("-p, --prompt", &prompt, "TEXT", "the text"),
        CLI_OPT_STRING("-f, --file", &file, "FILE", "the text: the file's bytes as they are (a final newline too)"),
        CLI_OPT_FLAG("--stdin", &use_stdin, "the text from standard input"),
        CLI_OPT_FLAG("--ids", &ids_only, "only the ids, as [1, 2, 3]"),
        CLI_OPT_FLAG("--no-bos", &no_bos, "no BOS first"),
        CLI_OPT_FLAG("--show-count", &show_count, "the number of tokens at the end"),
    };
    const cli_command cmd = {"tokenize", "-m MODEL [-z TOKENIZER] (-p TEXT | -f FILE | --stdin) [--ids] [--no-bos]",
                             "Tokenizes a text with the model's vocabulary; each token as id -> 'piece', or --ids.",
                             opts, (int)(sizeof opts / sizeof opts[0])};
    const int rc = cli_parse(&cmd, argc, argv);
    if (rc != CLI_PARSED) return rc == CLI_HELP ? 0 : 2;
    if (!model || !!prompt + !!file + use_stdin != 1) {
        fprintf(stderr, "kvattn tokenize: -m MODEL and one of -p TEXT, -f FILE or --stdin are required\n");
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    if (prompt) {
        len = strlen(prompt);
        if ((text = malloc(len + 1))) memcpy(text, prompt, len + 1);
    } else {
        FILE *f = use_stdin ? stdin : fopen(file, "rb");
        text = f ? read_file_bytes(f, &len) : NULL;
        if (f && !use_stdin) fclose(f);
        if (!text) {
            fprintf(stderr, "kvattn tokenize: %s: cannot read\n", use_stdin ? "standard input" : file);
            return 1;
        }
    }
    if (!text) return 1;
    if (strlen(text) != len) {
        fprintf(stderr, "kvattn tokenize: the text holds a NUL byte at offset %zu\n", strlen(text));
        free(text);
        return 1;
    }
    kvattn_tokenizer *own = NULL;
    kvattn_model *m = NULL;
    const kvattn_tokenizer *tok = NULL;
    const size_t ml = strlen(model);
    const int is_json = ml >= 5 && !strcmp(model + ml - 5, ".json");
    if (!tok_path && (is_json || is_gguf(model))) { /* a vocabulary alone: a tokenizer.json or a vocab-only GGUF */
        if ((is_json ? kvattn_tokenizer_load_json(model, &own) : kvattn_tokenizer_load_gguf(model, &own)) !=
            KVATTN_OK) {
            fprintf(stderr, "kvattn tokenize: %s\n", kvattn_last_error());
            free(text);
            return 1;
        }
        tok = own;
    } else {
        model_opts mo;
        model_opts_defaults(&mo);
        mo.model = model, mo.tokenizer = tok_path;
        if (!(m = model_load(&mo, "tokenize", 1))) {
            free(text);
            return 1;
        }
        tok = kvattn_model_tokenizer(m);
    }
    int known = 1;
    const char *pre = kvattn_tokenizer_pre(tok, &known);
    if (!known)
        fprintf(stderr, "kvattn tokenize: warning: pre-tokenizer '%s' is unknown; using llama.cpp's default\n", pre);
    const int max = (int)(len * 4 + 8);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max);
    int n = 0, status = 0;
    if (!ids || kvattn_tokenize(tok, text, !no_bos, ids, max, &n) != KVATTN_OK)
        status = fprintf(stderr, "kvattn tokenize: %s\n", ids ? kvattn_last_error() : "out of memory") > 0;
    if (!status && ids_only) {
        printf("[");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    } else if (!status)
        for (int i = 0; i < n; i++) {
            char piece[512];
            int b = kvattn_token_to_bytes(tok, i ? ids[i - 1] : -1, ids[i], piece, (int)sizeof piece), pl = 0;
            const char *raw = kvattn_tokenizer_piece(tok, ids[i], &pl);
            if (b <= 0 && raw) { /* a control token (BOS, <|im_start|>): its text, as llama-tokenize shows it */
                while (pl > 0 && (*raw == '\n' || *raw == ' ')) raw++, pl--; /* llama2.c's "\n<s>\n" */
                while (pl > 0 && (raw[pl - 1] == '\n' || raw[pl - 1] == ' ')) pl--;
                printf("%6d -> '%.*s'\n", ids[i], pl, raw);
            } else printf("%6d -> '%.*s'\n", ids[i], b > 0 ? b : 0, piece);
        }
    if (!status && show_count) printf("Total number of tokens: %d\n", n);
    free(ids), free(text);
    kvattn_tokenizer_free(own);
    kvattn_model_free(m);
    return status;
}
