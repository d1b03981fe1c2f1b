/* libFuzzer harness: the CLI's parsers of what a user types — counts (80k,
 * 128K), count lists, escapes, and a whole command line against an option
 * table of every kind (arguments split at NUL bytes). */
#include "fuzz_util.h"

#include "cli_util.h"
#include "model_cli.h"
#include "options.h"

#include <fcntl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 2048) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t v, list[8];
    cli_parse_count(s, &v);
    cli_parse_count_list(s, list, 8);
    char *e = strdup(s);
    if (e) unescape(e), free(e);
    char buf[64];
    cli_bytes((double)size * 1e9, buf, sizeof buf);
    /* a command line: argv split at NUL bytes */
    char *argv[32] = {"fuzz"};
    int argc = 1;
    for (size_t i = 0; i < size && argc < 31; i += strlen(s + i) + 1) argv[argc++] = s + i;
    const char *str = NULL, *lst[4];
    int flag = 0, n_list = 0, n_counts = 0, n_types = 0, choice = -1;
    int64_t count = 0, integer = 0, counts[4];
    double num = 0;
    kvattn_type type = KVATTN_TYPE_F32, types[4];
    static const char *const choices[] = {"absorbed", "naive", NULL};
    const cli_option opts[] = {
        CLI_OPT_FLAG("-f, --flag", &flag, "a flag"),
        CLI_OPT_STRING("-s", &str, "S", "a string"),
        CLI_OPT_LIST("-l, --list", lst, &n_list, 4, "L", "a list"),
        CLI_OPT_COUNT("-c", &count, 1, 1 << 20, "N", "a count"),
        CLI_OPT_INT("-i", &integer, -1, 100, "I", "an integer"),
        CLI_OPT_COUNTS("--counts", counts, &n_counts, 4, 0, 1 << 24, "L", "counts"),
        CLI_OPT_NUMBER("-x", &num, 0.0, 1.0, "X", "a number"),
        CLI_OPT_TYPE("-t", &type, 1, "T", "a type"),
        CLI_OPT_TYPES("--types", types, &n_types, 4, 0, "L", "types"),
        CLI_OPT_CHOICE("--mode", &choice, choices, "M", "a choice"),
    };
    const cli_command cmd = {"fuzz", "[options]", NULL, opts, (int)(sizeof opts / sizeof opts[0])};
    /* the parser's messages and usage go to /dev/null for the call, not to the fuzzer's log */
    fflush(stdout), fflush(stderr);
    const int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1), dup2(null, 2);
    cli_parse(&cmd, argc, argv);
    fflush(stdout), fflush(stderr);
    if (out >= 0) dup2(out, 1), close(out);
    if (err >= 0) dup2(err, 2), close(err);
    if (null >= 0) close(null);
    free(s);
    return 0;
}
