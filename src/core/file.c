/* Opening the files a model comes from: regular files only. A FIFO would
 * block open() until a writer came, and a directory opens but cannot be read,
 * so both are refused by name before anything is read. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kv_open_regular(const char *path, kvattn_status *st) {
    /* O_NONBLOCK: opening a FIFO returns at once; it is refused just below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *st = kv_fail(KVATTN_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    const int examined = fstat(fd, &sb) == 0;
    if (!examined || !S_ISREG(sb.st_mode)) {
        const char *what = !examined              ? "cannot be examined"
                           : S_ISDIR(sb.st_mode)  ? "is a directory, not a file"
                           : S_ISFIFO(sb.st_mode) ? "is a FIFO, not a regular file"
                                                  : "is not a regular file";
        close(fd);
        *st = kv_fail(KVATTN_ERR_IO, "%s: %s", path, what);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

FILE *kv_fopen_regular(const char *path, kvattn_status *st) {
    int fd = kv_open_regular(path, st);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        *st = kv_fail(KVATTN_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    }
    return f;
}

char *kv_read_file(const char *path, size_t max, kvattn_status *st) {
    FILE *f = kv_fopen_regular(path, st);
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    const size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    const int err = ferror(f);
    fclose(f);
    if (!buf || err || n > max) {
        free(buf);
        *st = !buf  ? kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, max)
              : err ? kv_fail(KVATTN_ERR_IO, "%s: read error", path)
                    : kv_fail(KVATTN_ERR_FORMAT, "%s: larger than %zu MiB", path, max >> 20);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}
