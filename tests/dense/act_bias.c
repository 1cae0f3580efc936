/* act_bias.c - aert_act_bias_backward (a conv's gradient through its activation and its bias
 * gradient in one pass) against the two passes it replaces, aert_act_backward_inplace and
 * aert_bias_grad: for every activation, column counts of a segmentation head (6), whole
 * vectors (16, 64) and odd ones (13), rows that end inside a slice; dy bit for bit, the bias
 * gradient within one rounding of the two-pass sum (both sum in double, in other orders),
 * and the same bits on 1, 2 and 3 threads. */
#include "aert_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void fill(aert_real *p, long n, int seed) {
  for (long i = 0; i < n; i++) p[i] = (aert_real)(((i * 7919 + seed * 104729) % 2001) - 1000) / 1000;
}

static void check(aert_act act, long rows, int cols) {
  long n = rows * cols;
  aert_real *y = malloc(sizeof(aert_real) * n), *d0 = malloc(sizeof(aert_real) * n), *d1 = malloc(sizeof(aert_real) * n);
  aert_real *d2 = malloc(sizeof(aert_real) * n), *b0 = malloc(sizeof(aert_real) * cols), *b1 = malloc(sizeof(aert_real) * cols);
  aert_real *b2 = malloc(sizeof(aert_real) * cols), alpha = (aert_real)0.1;
  fill(y, n, 1);
  if (act == AERT_ACT_SIGMOID)   /* outputs of the activation itself: in (0, 1) */
    for (long i = 0; i < n; i++) y[i] = (aert_real)0.5 + y[i] / 4;
  fill(d0, n, 2), fill(b0, cols, 3);
  memcpy(d1, d0, sizeof(aert_real) * n), memcpy(b1, b0, sizeof(aert_real) * cols);
  omp_set_num_threads(2);
  aert_act_backward_inplace(d0, y, n, act, alpha);
  aert_bias_grad(b0, d0, rows, cols);
  for (int threads = 1; threads <= 3; threads++) {
    aert_real *d = threads == 1 ? d1 : d2, *b = threads == 1 ? b1 : b2;
    if (threads > 1) fill(d2, n, 2), fill(b2, cols, 3);
    omp_set_num_threads(threads);
    aert_act_bias_backward(d, y, b, rows, cols, act, alpha);
    if (threads > 1 && (memcmp(d1, d2, sizeof(aert_real) * n) || memcmp(b1, b2, sizeof(aert_real) * cols))) {
      printf("FAIL act_bias act %d %ld x %d: %d threads give other bits than one\n", (int)act, rows, cols, threads);
      failures++;
    }
  }
  if (memcmp(d0, d1, sizeof(aert_real) * n)) {
    printf("FAIL act_bias act %d %ld x %d: dy differs from aert_act_backward_inplace's\n", (int)act, rows, cols);
    failures++;
  }
  for (int c = 0; c < cols; c++) {
    double sum = 0;   /* the scale of the sum's terms: one rounding of it */
    for (long r = 0; r < rows; r++) sum += fabs((double)d0[r * cols + c]);
    double tol = (sizeof(aert_real) == 4 ? 6e-8 : 1.2e-16) * (sum + fabs((double)b0[c]));
    if (!(fabs((double)b1[c] - b0[c]) <= tol)) {
      printf("FAIL act_bias act %d %ld x %d: bias gradient %d is %.9g, the two passes give %.9g\n", (int)act, rows, cols, c,
             (double)b1[c], (double)b0[c]);
      failures++;
      break;
    }
  }
  free(y), free(d0), free(d1), free(d2), free(b0), free(b1), free(b2);
}

int main(void) {
  const aert_act acts[] = {AERT_ACT_LINEAR, AERT_ACT_RELU, AERT_ACT_LEAKY_RELU, AERT_ACT_ELU, AERT_ACT_SIGMOID, AERT_ACT_TANH};
  for (int a = 0; a < 6; a++) {
    check(acts[a], 10000, 6);    /* a segmentation head's six classes, a last slice of 1808 rows */
    check(acts[a], 4096, 16);    /* two whole slices */
    check(acts[a], 3001, 13);
    check(acts[a], 100, 64);     /* one short slice */
    check(acts[a], 1, 300);      /* one row */
  }
  if (failures) return 1;
  printf("act_bias: one pass gives the two passes' dy and bias gradient, the same bits on 1-3 threads\n");
  return 0;
}
