/* Each command's options as a table: the spellings, what the value is and
 * where it goes, and its help line. One parser reads argv against a table,
 * one printer makes the usage text from it, so every option a command takes
 * is checked the same way and explained. */
#ifndef KVATTN_CLI_OPTIONS_H
#define KVATTN_CLI_OPTIONS_H

#include "kvattn.h"

#include <stdint.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG,   /* int: set to 1                                                   */
    CLI_STRING, /* const char *                                                    */
    CLI_LIST,   /* const char *[max], repeatable; *count entries                   */
    CLI_COUNT,  /* int64_t in [min, max]: 80000, 80k (10^3), 128K (2^10), 1M, 1G   */
    CLI_INT,    /* int64_t in [min, max], a plain decimal integer (may be negative) */
    CLI_COUNTS, /* int64_t[max], comma-separated counts each in [min, max]; *count */
    CLI_NUMBER, /* double in [fmin, fmax]                                          */
    CLI_TYPE,   /* kvattn_type; cache types only when `cache` is set               */
    CLI_TYPES,  /* kvattn_type[max], comma-separated; *count                       */
    CLI_CHOICE, /* int: the index of the value in choices (NULL-terminated)         */
} cli_opt_kind;

typedef struct {
    const char *names; /* "-t, --threads": the spellings, ", " between them          */
    cli_opt_kind kind;
    void *dest;
    const char *arg;  /* the value in the usage text ("N", "FILE"); NULL for flags */
    const char *help; /* may hold '\n' for more lines                              */
    int64_t min, max; /* CLI_COUNT(S): each value's range                          */
    int max_entries;  /* CLI_LIST/COUNTS/TYPES: room in dest                       */
    double fmin, fmax;
    int *count;                 /* CLI_LIST/COUNTS/TYPES: entries parsed           */
    const char *const *choices; /* CLI_CHOICE                                      */
    int cache;                  /* CLI_TYPE(S): only the KV cache's types           */
} cli_option;

#define CLI_OPT_FLAG(n, d, h)                                                                                          \
    { .names = (n), .kind = CLI_FLAG, .dest = (d), .help = (h) }
#define CLI_OPT_STRING(n, d, a, h)                                                                                     \
    { .names = (n), .kind = CLI_STRING, .dest = (d), .arg = (a), .help = (h) }
#define CLI_OPT_LIST(n, d, cnt, mx, a, h)                                                                              \
    { .names = (n), .kind = CLI_LIST, .dest = (d), .count = (cnt), .max_entries = (mx), .arg = (a), .help = (h) }
#define CLI_OPT_COUNT(n, d, lo, hi, a, h)                                                                              \
    { .names = (n), .kind = CLI_COUNT, .dest = (d), .min = (lo), .max = (hi), .arg = (a), .help = (h) }
#define CLI_OPT_INT(n, d, lo, hi, a, h)                                                                                \
    { .names = (n), .kind = CLI_INT, .dest = (d), .min = (lo), .max = (hi), .arg = (a), .help = (h) }
#define CLI_OPT_COUNTS(n, d, cnt, mx, lo, hi, a, h)                                                                    \
    {                                                                                                                  \
        .names = (n), .kind = CLI_COUNTS, .dest = (d), .count = (cnt), .max_entries = (mx), .min = (lo), .max = (hi),  \
        .arg = (a), .help = (h)                                                                                        \
    }
#define CLI_OPT_NUMBER(n, d, lo, hi, a, h)                                                                             \
    { .names = (n), .kind = CLI_NUMBER, .dest = (d), .fmin = (lo), .fmax = (hi), .arg = (a), .help = (h) }
#define CLI_OPT_TYPE(n, d, c, a, h)                                                                                    \
    { .names = (n), .kind = CLI_TYPE, .dest = (d), .cache = (c), .arg = (a), .help = (h) }
#define CLI_OPT_TYPES(n, d, cnt, mx, c, a, h)                                                                          \
    {                                                                                                                  \
        .names = (n), .kind = CLI_TYPES, .dest = (d), .count = (cnt), .max_entries = (mx), .cache = (c), .arg = (a),   \
        .help = (h)                                                                                                    \
    }
#define CLI_OPT_CHOICE(n, d, ch, a, h)                                                                                 \
    { .names = (n), .kind = CLI_CHOICE, .dest = (d), .choices = (ch), .arg = (a), .help = (h) }

typedef struct {
    const char *cmd;      /* "plan"                                           */
    const char *synopsis; /* what follows "usage: kvattn plan "               */
    const char *about;    /* a paragraph before the options, or NULL          */
    const cli_option *opts;
    int n_opts;
} cli_command;

enum { CLI_PARSED = 0, CLI_HELP = 1, CLI_BAD = -1 };

/* Reads argv[1..argc) against the command's table. CLI_HELP after printing
 * the usage on stdout (-h, --help); CLI_BAD after an error on stderr that
 * names the command, the option and the value (an unknown option, a missing
 * or malformed value, a value out of range, too many entries). */
int cli_parse(const cli_command *c, int argc, char **argv);

/* The usage text, from the table. */
void cli_usage(const cli_command *c, FILE *f);

/* Whether option `names` (as in the table) was given on the command line. */
int cli_given(const cli_command *c, int argc, char **argv, const char *names);

#endif
