/* The dense linear algebra convert needs, from LAPACK (LAPACKE): symmetric
 * and Hermitian eigendecompositions and a symmetric positive definite solve.
 * Matrices are row-major doubles. */
#ifndef KVATTN_LINALG_H
#define KVATTN_LINALG_H

#include "internal.h"

#include <complex.h>

/* Eigenvalues of the symmetric n×n matrix a in descending order into w[n];
 * a is overwritten by the eigenvectors, one per column (a[i·n + j] is entry
 * i of vector j), in the same order. */
kvattn_status kv_eigh(int n, double *a, double *w);

/* The same for a Hermitian matrix (its upper triangle is read). */
kvattn_status kv_eigh_complex(int n, double complex *a, double *w);

/* Solves a x = b for the symmetric positive definite n×n matrix a and n×nrhs
 * right-hand sides b (overwritten by x). A ridge of `ridge` times the mean of
 * a's diagonal is added first, so a rank-deficient a still gives an answer. */
kvattn_status kv_solve_spd(int n, int nrhs, double *a, double *b, double ridge);

#endif
