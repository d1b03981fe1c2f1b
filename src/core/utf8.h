/* UTF-8 as the tokenizers read it: a broken or cut sequence counts as one byte. */
#ifndef KVATTN_UTF8_H
#define KVATTN_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length of the sequence a lead byte starts (1 for a byte that cannot lead one). */
static inline int kv_utf8_len(unsigned char lead) {
    return lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 1;
}

/* The code point at p, of at most len bytes; *n receives its length (1 when
 * the sequence would run past len). */
static inline uint32_t kv_utf8_decode(const char *p, size_t len, int *n) {
    const unsigned char *u = (const unsigned char *)p;
    int l = kv_utf8_len(u[0]);
    if ((size_t)l > len) l = 1;
    *n = l;
    if (l == 1) return u[0];
    uint32_t cp = u[0] & (0x7f >> l);
    for (int i = 1; i < l; i++) cp = (cp << 6) | (u[i] & 0x3f);
    return cp;
}

#endif
