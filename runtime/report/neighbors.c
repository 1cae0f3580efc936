/* neighbors.c - distances between latent points and each point's nearest neighbours, for
 * the latent maps: t-SNE's affinities (embed.c) and Isomap's graph (isomap.c). */
#include <math.h>
#include <stdlib.h>
#include "aert_internal.h"

/* Squared distance of two rows, in four lanes that the compiler may vectorise without
 * changing the order of the sums. */
double aert_sqdist(const float *a, const float *b, long d) {
  float s[4] = {0, 0, 0, 0};
  long k = 0;
  for (; k + 4 <= d; k += 4)
    for (int u = 0; u < 4; u++) {
      float t = a[k + u] - b[k + u];
      s[u] += t * t;
    }
  for (; k < d; k++) {
    float t = a[k] - b[k];
    s[0] += t * t;
  }
  return ((double)s[0] + s[1]) + ((double)s[2] + s[3]);
}

/* The k nearest neighbours of every point by brute force, O(n^2 d): nbr and d2 (squared
 * distances) n x k, each row a max-heap on the distance. */
void aert_nearest(const float *x, long n, long d, int k, int *nbr, double *d2) {
#pragma omp parallel for schedule(dynamic, 16)
  for (long i = 0; i < n; i++) {
    int *hj = nbr + i * k, len = 0;
    double *hd = d2 + i * k;
    for (long j = 0; j < n; j++) {
      double s = j == i ? INFINITY : aert_sqdist(x + i * d, x + j * d, d);
      int c;
      if (len < k) {   /* sift up from the end */
        for (c = len++; c > 0 && hd[(c - 1) / 2] < s; c = (c - 1) / 2)
          hd[c] = hd[(c - 1) / 2], hj[c] = hj[(c - 1) / 2];
      } else if (s < hd[0]) {   /* replace the farthest, sift down */
        for (c = 0; 2 * c + 1 < k;) {
          int l = 2 * c + 1, big = l + 1 < k && hd[l + 1] > hd[l] ? l + 1 : l;
          if (hd[big] <= s)
            break;
          hd[c] = hd[big], hj[c] = hj[big], c = big;
        }
      } else
        continue;
      hd[c] = s, hj[c] = (int)j;
    }
  }
}
