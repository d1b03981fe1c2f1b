/* The option-table parser and usage printer (options.h). */
#include "options.h"

#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether `arg` is one of the ", "-separated spellings in `names`. */
static int spelled(const char *names, const char *arg) {
    const size_t n = strlen(arg);
    for (const char *p = names; *p;) {
        const char *end = strstr(p, ", ");
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !memcmp(p, arg, n)) return 1;
        if (!end) break;
        p = end + 2;
    }
    return 0;
}

static int bad(const cli_command *c, const char *arg, const char *val, const char *why) {
    fprintf(stderr, "kvattn %s: %s '%s': %s\n", c->cmd, arg, val, why);
    return CLI_BAD;
}

static int count_in(const cli_option *o, const char *s, int64_t *out) {
    return cli_parse_count(s, out) == 0 && *out >= o->min && *out <= o->max;
}

static int type_ok(const cli_option *o, const char *s, kvattn_type *out) {
    return kvattn_type_from_name(s, out) == KVATTN_OK && (!o->cache || kvattn_type_is_cache_type(*out));
}

/* One option's value into its destination. */
static int take_value(const cli_command *c, const cli_option *o, const char *arg, const char *val) {
    char why[160];
    switch (o->kind) {
    case CLI_FLAG: break;
    case CLI_STRING: *(const char **)o->dest = val; break;
    case CLI_LIST:
        if (*o->count >= o->max_entries) {
            snprintf(why, sizeof why, "at most %d of these", o->max_entries);
            return bad(c, arg, val, why);
        }
        ((const char **)o->dest)[(*o->count)++] = val;
        break;
    case CLI_COUNT:
        if (!count_in(o, val, (int64_t *)o->dest)) {
            snprintf(why, sizeof why, "expected a count in [%lld, %lld]", (long long)o->min, (long long)o->max);
            return bad(c, arg, val, why);
        }
        break;
    case CLI_INT: {
        char *end;
        errno = 0;
        const long long v = strtoll(val, &end, 10);
        if (end == val || *end || errno || v < o->min || v > o->max) {
            snprintf(why, sizeof why, "expected an integer in [%lld, %lld]", (long long)o->min, (long long)o->max);
            return bad(c, arg, val, why);
        }
        *(int64_t *)o->dest = v;
        break;
    }
    case CLI_COUNTS: {
        int64_t tmp[64];
        const int n = cli_parse_count_list(val, tmp, o->max_entries < 64 ? o->max_entries : 64);
        int ok = n > 0;
        for (int i = 0; ok && i < n; i++) ok = tmp[i] >= o->min && tmp[i] <= o->max;
        if (!ok) {
            snprintf(why, sizeof why, "expected at most %d comma-separated counts in [%lld, %lld]", o->max_entries,
                     (long long)o->min, (long long)o->max);
            return bad(c, arg, val, why);
        }
        memcpy(o->dest, tmp, sizeof(int64_t) * (size_t)n);
        *o->count = n;
        break;
    }
    case CLI_NUMBER: {
        char *end;
        const double d = strtod(val, &end);
        if (end == val || *end || !isfinite(d) || d < o->fmin || d > o->fmax) {
            snprintf(why, sizeof why, "expected a number in [%g, %g]", o->fmin, o->fmax);
            return bad(c, arg, val, why);
        }
        *(double *)o->dest = d;
        break;
    }
    case CLI_TYPE:
    case CLI_TYPES: {
        const char *types = o->cache ? "f32, f16, bf16 or q8_0" : "f32, f16, bf16, q8_0, q4_0 or fp8";
        snprintf(why, sizeof why, "expected %s%s", o->kind == CLI_TYPES ? "a comma-separated list of " : "", types);
        if (o->kind == CLI_TYPE) {
            if (!type_ok(o, val, (kvattn_type *)o->dest)) return bad(c, arg, val, why);
            break;
        }
        int n = 0;
        for (const char *p = val; *p; n++) {
            const char *comma = strchr(p, ',');
            const size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char name[16];
            if (n == o->max_entries || len == 0 || len >= sizeof name) return bad(c, arg, val, why);
            memcpy(name, p, len), name[len] = '\0';
            if (!type_ok(o, name, (kvattn_type *)o->dest + n)) return bad(c, arg, val, why);
            p += len + (comma != NULL);
        }
        if (n == 0) return bad(c, arg, val, why);
        *o->count = n;
        break;
    }
    case CLI_CHOICE: {
        int i = 0;
        while (o->choices[i] && strcmp(o->choices[i], val)) i++;
        if (!o->choices[i]) {
            size_t len = (size_t)snprintf(why, sizeof why, "expected one of");
            for (int k = 0; o->choices[k] && len < sizeof why; k++)
                len += (size_t)snprintf(why + len, sizeof why - len, " %s", o->choices[k]);
            return bad(c, arg, val, why);
        }
        *(int *)o->dest = i;
        break;
    }
    }
    return CLI_PARSED;
}

int cli_parse(const cli_command *c, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            cli_usage(c, stdout);
            return CLI_HELP;
        }
        const cli_option *o = NULL;
        for (int k = 0; !o && k < c->n_opts; k++)
            if (spelled(c->opts[k].names, arg)) o = &c->opts[k];
        if (!o) {
            if (arg[0] == '-')
                fprintf(stderr, "kvattn %s: unknown option '%s' (kvattn %s --help lists them)\n", c->cmd, arg, c->cmd);
            else
                fprintf(stderr, "kvattn %s: unexpected argument '%s' (kvattn %s --help lists the options)\n", c->cmd,
                        arg, c->cmd);
            return CLI_BAD;
        }
        if (o->kind == CLI_FLAG) {
            *(int *)o->dest = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kvattn %s: %s needs a value (%s)\n", c->cmd, arg, o->arg ? o->arg : "a value");
            return CLI_BAD;
        }
        if (take_value(c, o, arg, argv[++i]) != CLI_PARSED) return CLI_BAD;
    }
    return CLI_PARSED;
}

int cli_given(const cli_command *c, int argc, char **argv, const char *names) {
    for (int i = 1; i < argc; i++) {
        for (int k = 0; k < c->n_opts; k++) {
            const cli_option *o = &c->opts[k];
            if (!spelled(o->names, argv[i])) continue;
            if (!strcmp(o->names, names)) return 1;
            if (o->kind != CLI_FLAG) i++; /* skip its value */
            break;
        }
    }
    return 0;
}

void cli_usage(const cli_command *c, FILE *f) {
    fprintf(f, "usage: kvattn %s %s\n\n", c->cmd, c->synopsis);
    if (c->about) fprintf(f, "%s\n\n", c->about);
    for (int k = 0; k < c->n_opts; k++) {
        const cli_option *o = &c->opts[k];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->names, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-22s", left);
        if (strlen(left) > 22) fprintf(f, "\n  %-22s", "");
        for (const char *p = o->help; *p;) { /* continuation lines keep the column */
            const char *nl = strchr(p, '\n');
            const int len = nl ? (int)(nl - p) : (int)strlen(p);
            fprintf(f, " %.*s\n", len, p);
            if (!nl) break;
            p = nl + 1;
            fprintf(f, "  %-22s", "");
        }
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "this text");
}
