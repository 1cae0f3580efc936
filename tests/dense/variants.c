/* variants.c - the dense kernels' variants against each other and against a reference.
 * `variants check`: for odd and round shapes, each call kind (forward with every activation,
 * dw, dx) and every register-tile variant gives the bits of the first variant, on 1, 2 and
 * 3 threads; the first variant agrees with a double-precision reference. `variants pick`:
 * chooses variants through the autotune (core/tune.c, its wisdom file) and prints them. */
#include "aert_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void fill(aert_real *p, long n, int seed) {
  for (long i = 0; i < n; i++) p[i] = (aert_real)(((i * 7919 + seed * 104729) % 2001) - 1000) / 700;
}

/* One call of kind 0 (forward), 1 (dw) or 2 (dx) at variant v into c. */
static void run(int kind, int v, int m, int n, int k, const aert_real *a, const aert_real *b, const aert_real *bias,
                aert_act act, aert_real *c) {
  aert_dense_job g = aert_dense_shape_job(kind, m, n, k, a, b, c);
  g.bias = kind == 0 ? bias : NULL;
  g.act = act, g.alpha = (aert_real)0.1;
  for (long i = 0; i < (long)m * n; i++) c[i] = kind ? (aert_real)0.25 : 0;   /* dw and dx add to what is there */
  aert_dense_run(&g, m, n, v);
}

static double reference(int kind, int m, int n, int k, const aert_real *a, const aert_real *b, const aert_real *bias,
                        aert_act act, int i, int j) {
  double s = 0;
  for (int p = 0; p < k; p++) s += (double)(kind == 1 ? a[(long)p * m + i] : a[(long)i * k + p]) * b[(long)p * n + j];
  if (kind) return s + 0.25;
  return aert_act_apply(act, (aert_real)0.1, (aert_real)(s + bias[j]));
}

static void check_shape(int kind, int m, int n, int k, aert_act act) {
  long nc = (long)m * n;
  aert_real *a = malloc(sizeof(aert_real) * m * k), *b = malloc(sizeof(aert_real) * k * n), *bias = malloc(sizeof(aert_real) * n);
  aert_real *ref = malloc(sizeof(aert_real) * nc), *c = malloc(sizeof(aert_real) * nc);
  fill(a, (long)m * k, 1), fill(b, (long)k * n, 2), fill(bias, n, 3);
  omp_set_num_threads(1);
  run(kind, 0, m, n, k, a, b, bias, act, ref);
  double worst = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double r = reference(kind, m, n, k, a, b, bias, act, i, j), e = fabs(ref[(long)i * n + j] - r) / (1 + fabs(r));
      worst = e > worst ? e : worst;
    }
  if (worst > 2e-5) printf("FAIL %s %d x %d x %d act %d: %g from the double reference\n", aert_dense_ops[kind], m, n, k, act, worst), failures++;
  for (int t = 1; t <= 3; t++) {
    omp_set_num_threads(t);
    for (int v = 0; v < AERT_DENSE_VARIANTS; v++) {
      run(kind, v, m, n, k, a, b, bias, act, c);
      if (memcmp(c, ref, sizeof(aert_real) * nc) != 0)
        printf("FAIL %s %d x %d x %d act %d: variant %s on %d threads differs from %s\n", aert_dense_ops[kind], m, n, k, act,
               aert_dense_variants[v].name, t, aert_dense_variants[0].name), failures++;
    }
  }
  free(a), free(b), free(bias), free(ref), free(c);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "pick") == 0) {
    printf("%s %s\n", aert_dense_variants[aert_dense_pick(0, 64, 96, 48)].name, aert_dense_variants[aert_dense_pick(2, 37, 70, 45)].name);
    return 0;
  }
  const int shapes[][3] = {{64, 96, 48}, {37, 70, 45}, {5, 3, 8}, {29, 16, 33}, {256, 128, 40}};
  const aert_act acts[] = {AERT_ACT_LINEAR, AERT_ACT_RELU, AERT_ACT_LEAKY_RELU, AERT_ACT_ELU, AERT_ACT_SIGMOID, AERT_ACT_TANH};
  for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
    for (int a = 0; a < 6; a++) check_shape(0, shapes[s][0], shapes[s][1], shapes[s][2], acts[a]);
    check_shape(1, shapes[s][0], shapes[s][1], shapes[s][2], AERT_ACT_LINEAR);
    check_shape(2, shapes[s][0], shapes[s][1], shapes[s][2], AERT_ACT_LINEAR);
  }
  printf("dense variants (%s, %d of them): %s\n", AERT_BUILD, AERT_DENSE_VARIANTS, failures ? "FAILED" : "identical bits, reference agrees");
  return failures != 0;
}
