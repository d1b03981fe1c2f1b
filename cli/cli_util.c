#define _POSIX_C_SOURCE 200809L
#include "cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_parse_count(const char *s, int64_t *out) {
    if (!s || !isdigit((unsigned char)s[0])) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    uint64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': mul = 1000; break;
        case 'K': mul = 1024; break;
        case 'm': mul = 1000000; break;
        case 'M': mul = 1048576; break;
        case 'g': mul = 1000000000; break;
        case 'G': mul = 1073741824; break;
        default: return -1;
        }
        if (end[1]) return -1;
    }
    if (v > (uint64_t)INT64_MAX / mul) return -1;
    *out = (int64_t)(v * mul);
    return 0;
}

int cli_parse_count_list(const char *s, int64_t *out, int max) {
    char buf[512];
    if (!s || strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max || cli_parse_count(tok, &out[n]) != 0) return -1;
        n++;
    }
    return n;
}

const char *cli_bytes(double b, char *buf, size_t size) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024.0 && u < 5) {
        b /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%.0f B", b);
    else snprintf(buf, size, "%.2f %s", b, units[u]);
    return buf;
}

const char *cli_commas(uint64_t v, char *buf, size_t size) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

int cli_stderr_is_tty(void) { return isatty(STDERR_FILENO); }

void cli_json_string(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c), i++;
        else if (c == '\n') fputs("\\n", f), i++;
        else if (c == '\t') fputs("\\t", f), i++;
        else if (c < 0x20) fprintf(f, "\\u%04x", c), i++;
        else if (c < 0x80) fputc(c, f), i++;
        else { /* a whole, valid UTF-8 sequence passes; anything else becomes U+FFFD */
            int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0, ok = len > 0 && i + len <= n;
            for (int k = 1; ok && k < len; k++) ok = (u[i + k] & 0xc0) == 0x80;
            if (ok) fwrite(u + i, 1, (size_t)len, f), i += (size_t)len;
            else fputs("\\ufffd", f), i++;
        }
    }
    fputc('"', f);
}
