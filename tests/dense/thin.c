/* thin.c - aert_gemm's thin products (a 1x1 convolution to or from a few channels: the
 * forward F, the weight gradient W, the input gradient X) on full and half vectors, with
 * beta 0 and 1: each takes its thin path, gives the same bits on 1, 2 and 3 threads, and
 * agrees with a double-precision product; shapes beside them still go to OpenBLAS (whose
 * bits may move with the thread count). */
#include "aert_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void fill(aert_real *p, long n, int seed) {
  for (long i = 0; i < n; i++) p[i] = (aert_real)(((i * 7919 + seed * 104729) % 2001) - 1000) / 700;
}

/* C (m x n) = beta C + op(A) op(B) as aert_gemm is called for a 1x1 convolution: A is m x k
 * (ta: k x m), B is k x n (tb: n x k), all packed. */
static void check(const char *what, int ta, int tb, int m, int n, int k, int want_kind) {
  int half, kind = aert_thin_kind(ta, tb, m, n, k, &half);
  if (kind != want_kind) {
    printf("FAIL thin %s: m %d n %d k %d takes path %d, not %d\n", what, m, n, k, kind, want_kind);
    failures++;
    return;
  }
  int lda = ta ? m : k, ldb = tb ? k : n;
  aert_real *a = malloc(sizeof(aert_real) * m * k), *b = malloc(sizeof(aert_real) * k * n);
  aert_real *c0 = malloc(sizeof(aert_real) * m * n), *c = malloc(sizeof(aert_real) * m * n);
  fill(a, (long)m * k, 1), fill(b, (long)k * n, 2);
  for (int beta = 0; beta <= 1; beta++) {
    for (int threads = 1; threads <= 3; threads++) {
      omp_set_num_threads(threads);
      aert_real *out = threads == 1 ? c0 : c;
      for (long i = 0; i < (long)m * n; i++) out[i] = (aert_real)0.25;
      aert_gemm(ta, tb, m, n, k, a, lda, b, ldb, (aert_real)beta, out, n);
      if (kind && threads > 1 && memcmp(c0, c, sizeof(aert_real) * m * n) != 0) {   /* OpenBLAS: not promised */
        printf("FAIL thin %s beta %d: %d threads give other bits than one\n", what, beta, threads);
        failures++;
      }
    }
    double worst = 0;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double s = beta ? 0.25 : 0, mag = 1;
        for (int p = 0; p < k; p++) {
          double x = ta ? a[(long)p * lda + i] : a[(long)i * lda + p], y = tb ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
          s += x * y, mag += fabs(x * y);
        }
        double e = fabs(c0[(long)i * n + j] - s) / mag;
        worst = e > worst ? e : worst;
      }
    if (worst > 1e-5) {
      printf("FAIL thin %s beta %d: %.2g from the double product (relative to the sum of magnitudes)\n", what, beta, worst);
      failures++;
    }
  }
  free(a), free(b), free(c0), free(c);
}

int main(void) {
  int L = AERT_LANES, H = AERT_HLANES;
  check("forward, 6 classes from a vector", 0, 0, 5003, 6, L, 1);
  check("forward, 3 classes from a half vector", 0, 0, 777, 3, H, 1);
  check("forward, few from many", 0, 0, 300, L - 1, 200, 1);
  check("weight gradient, a vector by 6", 1, 0, L, 6, 9000, 2);
  check("weight gradient, a half vector by 6", 1, 0, H, 6, 4100, 2);
  check("weight gradient, four vectors by 8", 1, 0, 4 * L, 8, 4096, 2);
  check("input gradient, a vector from 6", 0, 1, 5003, L, 6, 3);
  check("input gradient, three half vectors from 2", 0, 1, 999, 3 * H, 2, 3);
  check("input gradient, two vectors from 1", 0, 1, 513, 2 * L, 1, 3);
  check("input gradient, four vectors from 8", 0, 1, 1001, 4 * L, 8, 3);
  check("forward, 5 classes from two vectors", 0, 0, 2049, 5, 2 * L, 1);
  check("one class (OpenBLAS)", 0, 0, 5003, 1, L, 0);
  check("a wide weight gradient (OpenBLAS)", 1, 0, 5 * L, 6, 9000, 0);
  check("few pixels (OpenBLAS)", 1, 0, L, 6, 100, 0);
  check("many classes (OpenBLAS)", 0, 1, 5003, L, 9, 0);
  if (!failures) printf("thin products: %d-float vectors, every path equal on 1-3 threads and to double\n", L);
  return failures != 0;
}
