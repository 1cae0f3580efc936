/* sgemm_ceiling.c - OpenBLAS's own SGEMM rate at one GEMM shape, the ceiling for a
 * convolution computed as im2col + GEMM. Usage: sgemm_ceiling M N K THREADS; prints
 * GFLOP/s of C[M,N] = A[M,K] B[K,N] (row-major), best of several runs. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: sgemm_ceiling M N K THREADS\n"); return 2; }
  long m = atol(argv[1]), n = atol(argv[2]), k = atol(argv[3]);
  openblas_set_num_threads(atoi(argv[4]));
  float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
  float *c = malloc(sizeof(float) * (size_t)(m * n));
  if (!a || !b || !c) return 1;
  for (long i = 0; i < m * k; i++) a[i] = (float)(i % 13) * 0.01f;
  for (long i = 0; i < k * n; i++) b[i] = (float)(i % 7) * 0.01f;
  double best = 1e30, start = now();
  for (int r = 0; r < 50 && (r < 3 || now() - start < 1.0); r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1, a, (int)k, b, (int)n, 0, c, (int)n);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("%.1f\n", 2.0 * m * n * k / best / 1e9);
  return 0;
}
