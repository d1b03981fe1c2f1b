/* The scalar kernels: the fallback on any CPU, and every kernel's twin at the
 * level of whole tables (KVATTN_ISA=scalar). Compiled for the baseline target. */
#define KV_KERNEL_TABLE kv_kernels_scalar
#define KV_KERNEL_ISA   KV_ISA_SCALAR
#include "kernel_table_def.h"

_Static_assert(!KV_HAVE_AVX2, "isa_scalar.c must be compiled for the baseline target");
