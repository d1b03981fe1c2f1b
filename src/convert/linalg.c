/* LAPACK through LAPACKE (Debian liblapacke-dev, reference LAPACK or OpenBLAS). */
#include "linalg.h"

#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK returns ascending order: reverse the values and the columns. */
static void descending(int n, double *w, void *vectors, size_t elem) {
    char tmp[sizeof(double complex)];
    for (int j = 0; j < n / 2; j++) {
        double t = w[j];
        w[j] = w[n - 1 - j], w[n - 1 - j] = t;
        for (int i = 0; i < n; i++) {
            char *a = (char *)vectors + ((size_t)i * n + j) * elem,
                 *b = (char *)vectors + ((size_t)i * n + n - 1 - j) * elem;
            memcpy(tmp, a, elem), memcpy(a, b, elem), memcpy(b, tmp, elem);
        }
    }
}

kvattn_status kv_eigh(int n, double *a, double *w) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, a, n, w);
    if (info != 0)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "LAPACK dsyevd failed (info %d) on a %d×%d matrix", (int)info, n, n);
    descending(n, w, a, sizeof(double));
    return KVATTN_OK;
}

kvattn_status kv_eigh_complex(int n, double complex *a, double *w) {
    lapack_int info = LAPACKE_zheevd(LAPACK_ROW_MAJOR, 'V', 'U', n, (lapack_complex_double *)a, n, w);
    if (info != 0)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "LAPACK zheevd failed (info %d) on a %d×%d matrix", (int)info, n, n);
    descending(n, w, a, sizeof(double complex));
    return KVATTN_OK;
}

kvattn_status kv_solve_spd(int n, int nrhs, double *a, double *b, double ridge) {
    double mean = 0.0;
    for (int i = 0; i < n; i++) mean += a[(size_t)i * n + i];
    mean = mean > 0.0 ? mean / n : 1.0;
    for (int i = 0; i < n; i++) a[(size_t)i * n + i] += ridge * mean;
    lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, nrhs, a, n, b, nrhs);
    if (info != 0)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "LAPACK dposv failed (info %d) on a %d×%d system", (int)info, n, n);
    return KVATTN_OK;
}
