/* test_tsne.c - t-SNE maps (runtime/cmd/embed.c): Gaussian clusters in 20-d come out apart in
 * 2-d, by the exact method (up to 1000 points) and by Barnes-Hut (above); the layout
 * depends on the seed only, not on the number of threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

enum { D = 20, CLUSTERS = 5 };

/* n points in CLUSTERS Gaussian clusters (unit variance, centres about 17 apart); point i
 * is in cluster i % CLUSTERS. */
static float *clusters(long n) {
  float *x = malloc(sizeof(float) * n * D);
  cr_assert(x);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < D; k++)
      x[i * D + k] = 4 * aert_normal(11, (uint64_t)(i % CLUSTERS * D + k)) +
                     aert_normal(12, (uint64_t)(i * D + k));
  return x;
}

/* The share of points whose 10 nearest neighbours in the map vote for their own cluster. */
static double knn_accuracy(const float *y, long n) {
  long right = 0;
  for (long i = 0; i < n; i++) {
    double best[10];
    long who[10];
    int m = 0, votes[CLUSTERS] = {0}, top = 0;
    for (long j = 0; j < n; j++) {
      double a = y[2 * i] - y[2 * j], b = y[2 * i + 1] - y[2 * j + 1], s = a * a + b * b;
      int far = 0;
      if (j == i)
        continue;
      if (m < 10) {
        best[m] = s, who[m++] = j;
        continue;
      }
      for (int u = 1; u < 10; u++)
        far = best[u] > best[far] ? u : far;
      if (s < best[far])
        best[far] = s, who[far] = j;
    }
    for (int u = 0; u < m; u++)
      votes[who[u] % CLUSTERS]++;
    for (int c = 1; c < CLUSTERS; c++)
      top = votes[c] > votes[top] ? c : top;
    right += top == i % CLUSTERS;
  }
  return (double)right / n;
}

/* Mean distance of a point to its cluster's centre over the least distance between two
 * centres. */
static double spread_over_gap(const float *y, long n) {
  double c[CLUSTERS][2] = {{0}}, spread = 0, gap = INFINITY;
  for (long i = 0; i < n; i++)
    for (int a = 0; a < 2; a++)
      c[i % CLUSTERS][a] += y[i * 2 + a] / (n / CLUSTERS);
  for (long i = 0; i < n; i++)
    spread += hypot(y[i * 2] - c[i % CLUSTERS][0], y[i * 2 + 1] - c[i % CLUSTERS][1]) / n;
  for (int a = 0; a < CLUSTERS; a++)
    for (int b = a + 1; b < CLUSTERS; b++)
      gap = fmin(gap, hypot(c[a][0] - c[b][0], c[a][1] - c[b][1]));
  return spread / gap;
}

static void separates(long n, int iters) {
  float *x = clusters(n), *y = malloc(sizeof(float) * n * 2);
  cr_assert_eq(aert_tsne(x, n, D, y, 30, iters, 1), 0);
  double acc = knn_accuracy(y, n), ratio = spread_over_gap(y, n);
  cr_log_info("t-SNE of %ld points: 10-NN accuracy %.4f, spread / gap %.3f", n, acc, ratio);
  cr_assert(acc > 0.95, "10-NN accuracy %.4f", acc);
  cr_assert(ratio < 0.25, "mean spread over least gap %.3f", ratio);
  free(x), free(y);
}

Test(tsne, exact_separates_clusters) {
  separates(5 * 150, 500);
}

Test(tsne, barnes_hut_separates_clusters) {
  separates(5 * 400, 500);
}

/* The layout of n points (iters iterations, seed) with the given number of threads. */
static float *layout(long n, int iters, uint64_t seed, int threads) {
  float *x = clusters(n), *y = malloc(sizeof(float) * n * 2);
  omp_set_num_threads(threads);
  cr_assert_eq(aert_tsne(x, n, D, y, 30, iters, seed), 0);
  free(x);
  return y;
}

/* Past the early exaggeration and the momentum switch, the layout spread out. */
static void deterministic(long n) {
  float *a = layout(n, 260, 7, 2), *b = layout(n, 260, 7, 1), *c = layout(n, 260, 7, 3);
  float *d = layout(n, 260, 8, 2);
  size_t size = sizeof(float) * n * 2;
  cr_assert(!memcmp(a, b, size), "1 thread and 2 threads disagree");
  cr_assert(!memcmp(a, c, size), "3 threads and 2 threads disagree");
  cr_assert(memcmp(a, d, size), "another seed, the same layout");
  free(a), free(b), free(c), free(d);
}

Test(tsne, exact_depends_on_the_seed_only) {
  deterministic(300);
}

Test(tsne, barnes_hut_depends_on_the_seed_only) {
  deterministic(1100);
}

/* Repeated points (zero distances to every neighbour) and the smallest inputs. */
Test(tsne, degenerate_inputs_give_finite_maps) {
  enum { N = 1100 };
  static float x[N * D], y[N * 2];
  for (long i = 0; i < N * D; i++)
    x[i] = (float)(i / D % 3);
  cr_assert_eq(aert_tsne(x, N, D, y, 30, 100, 1), 0);
  for (long i = 0; i < N * 2; i++)
    cr_assert(isfinite(y[i]), "y[%ld] = %g", i, y[i]);
  for (long n = 1; n <= 3; n++) {
    cr_assert_eq(aert_tsne(x, n, D, y, 30, 50, 1), 0);
    for (long i = 0; i < n * 2; i++)
      cr_assert(isfinite(y[i]), "n %ld: y[%ld] = %g", n, i, y[i]);
  }
}
