/* Small helpers shared by the CLI commands. */
#ifndef KVATTN_CLI_UTIL_H
#define KVATTN_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Monotonic seconds. */
double cli_now(void);

/* Parses a count such as 80000, 80k, 128K, 1M. Lower-case suffixes are
 * decimal (k = 1,000, m = 1,000,000), upper-case binary (K = 1,024,
 * M = 1,048,576), so "128K" is the 131,072 of model cards and "80k" is
 * 80,000. Returns 0 and writes *out; -1 on malformed input, a negative
 * number or overflow. */
int cli_parse_count(const char *s, int64_t *out);

/* Parses a comma-separated list of counts into out[max]; returns the number
 * parsed or -1. */
int cli_parse_count_list(const char *s, int64_t *out, int max);

/* "16.00 GiB", "512.0 MiB", "31,104 B" style human sizes. */
const char *cli_bytes(double bytes, char *buf, size_t size);

/* Integer with thousands separators. */
const char *cli_commas(uint64_t v, char *buf, size_t size);

/* Writes s (n bytes) to f as a JSON string literal: quotes, escapes, and
 * U+FFFD for bytes that are not valid UTF-8. */
void cli_json_string(FILE *f, const char *s, size_t n);

/* Whether stderr is a terminal (progress lines go there only then). */
int cli_stderr_is_tty(void);

#endif
