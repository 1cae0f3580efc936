/* isomap.c - Isomap (Tenenbaum, de Silva and Langford 2000), the third 2-d map of `latent`:
 * the k-nearest-neighbour graph of the points (an edge where either is among the other's k
 * nearest, weighted by their distance), geodesic distances as shortest paths over it
 * (Dijkstra from every point), and classical MDS of those: the top two eigenvectors of
 * B = -1/2 J D^2 J through LAPACK's dsyevr in OpenBLAS. A graph in pieces has no geodesic
 * between them: it is refused with the size of each piece. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
             const int *lda, const double *vl, const double *vu, const int *il, const int *iu,
             const double *abstol, int *m, double *w, double *z, const int *ldz, int *isuppz,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);

/* The symmetric neighbour graph in CSR: the edges of point i are adj[row[i] .. row[i+1]-1]
 * with lengths len[...]. */
typedef struct {
  long *row;
  int *adj;
  double *len;
} graph_t;

static void graph_free(graph_t *g) {
  free(g->row), free(g->adj), free(g->len);
}

static int build_graph(const float *x, long n, long d, int k, graph_t *g) {
  int *nbr = aert_alloc(sizeof(int) * n * k, "isomap neighbours");
  double *d2 = aert_alloc(sizeof(double) * n * k, "isomap neighbour distances");
  long *fill = aert_alloc(sizeof(long) * n, "isomap graph");
  g->row = aert_alloc(sizeof(long) * (n + 1), "isomap graph");
  g->adj = aert_alloc(sizeof(int) * 2 * n * k, "isomap graph");
  g->len = aert_alloc(sizeof(double) * 2 * n * k, "isomap graph");
  int rc = nbr && d2 && fill && g->row && g->adj && g->len ? 0 : -1;
  if (rc == 0) {
    aert_nearest(x, n, d, k, nbr, d2);
    for (long a = 0; a < n * k; a++)   /* each neighbour pair both ways; duplicates are harmless */
      g->row[a / k + 1]++, g->row[nbr[a] + 1]++;
    for (long i = 0; i < n; i++)
      g->row[i + 1] += g->row[i];
    memcpy(fill, g->row, sizeof(long) * n);
    for (long a = 0; a < n * k; a++) {
      double l = sqrt(d2[a]);
      long i = a / k, j = nbr[a];
      g->adj[fill[i]] = (int)j, g->len[fill[i]++] = l;
      g->adj[fill[j]] = (int)i, g->len[fill[j]++] = l;
    }
  }
  free(nbr), free(d2), free(fill);
  return rc;
}

/* Connected components by a depth-first walk: comp[i] for every point; returns the count,
 * the sizes in size[] (room for n). */
static long components(const graph_t *g, long n, long *comp, long *size, long *stack) {
  long count = 0;
  for (long i = 0; i < n; i++)
    comp[i] = -1;
  for (long s = 0; s < n; s++) {
    if (comp[s] >= 0)
      continue;
    long top = 0;
    size[count] = 0;
    comp[s] = count, stack[top++] = s;
    while (top > 0) {
      long i = stack[--top];
      size[count]++;
      for (long e = g->row[i]; e < g->row[i + 1]; e++)
        if (comp[g->adj[e]] < 0)
          comp[g->adj[e]] = count, stack[top++] = g->adj[e];
    }
    count++;
  }
  return count;
}

static int by_size_down(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

static void report_pieces(long n, int k, long count, long *size) {
  char list[256] = "";
  qsort(size, (size_t)count, sizeof(long), by_size_down);
  long shown = count < 8 ? count : 8;
  for (long c = 0; c < shown; c++) {   /* "600, 300 and 100"; past 8, "..., 2, ..." */
    size_t at = strlen(list);
    const char *sep = c == 0 ? "" : c == count - 1 ? " and " : ", ";
    snprintf(list + at, sizeof list - at, "%s%ld", sep, size[c]);
  }
  aert_error("isomap: the %d-nearest-neighbour graph of the %ld points is not connected: %ld "
             "components, of %s%s points; no geodesic joins them: raise --neighbors (or map "
             "with pca or tsne)", k, n, count, list, count > shown ? ", ..." : "");
}

/* Dijkstra from src with a binary heap of (distance, point); dist is row src of D. */
static void shortest_paths(const graph_t *g, long n, long src, double *dist, long *heap,
                           double *key, char *done) {
  long len = 0;
  for (long i = 0; i < n; i++)
    dist[i] = INFINITY, done[i] = 0;
  dist[src] = 0;
  heap[len] = src, key[len++] = 0;
  while (len > 0) {
    long i = heap[0];
    double ki = key[0];
    long last = heap[--len];   /* pop: the last entry sifts down from the root */
    double kl = key[len];
    long c = 0;
    for (;;) {
      long l = 2 * c + 1, m = l + 1 < len && key[l + 1] < key[l] ? l + 1 : l;
      if (l >= len || key[m] >= kl)
        break;
      heap[c] = heap[m], key[c] = key[m], c = m;
    }
    heap[c] = last, key[c] = kl;
    if (done[i] || ki > dist[i])
      continue;   /* a stale entry: i was reached by a shorter path since */
    done[i] = 1;
    for (long e = g->row[i]; e < g->row[i + 1]; e++) {
      long j = g->adj[e];
      double nd = ki + g->len[e];
      if (done[j] || nd >= dist[j])
        continue;
      dist[j] = nd;
      for (c = len++; c > 0 && key[(c - 1) / 2] > nd; c = (c - 1) / 2)   /* push, sift up */
        heap[c] = heap[(c - 1) / 2], key[c] = key[(c - 1) / 2];
      heap[c] = j, key[c] = nd;
    }
  }
}

/* D (n x n) of geodesic distances, squared in place. A heap never holds more entries than
 * edges plus one. */
static int geodesics(const graph_t *g, long n, double *D) {
  int rc = 0;
  long edges = g->row[n] + 1;
#pragma omp parallel reduction(| : rc)
  {
    long *heap = malloc(sizeof(long) * edges);
    double *key = malloc(sizeof(double) * edges);
    char *done = malloc((size_t)n);
    if (heap && key && done) {
#pragma omp for schedule(dynamic, 8)
      for (long s = 0; s < n; s++) {
        shortest_paths(g, n, s, D + s * n, heap, key, done);
        for (long j = 0; j < n; j++)
          D[s * n + j] *= D[s * n + j];
      }
    } else
      rc = 1;
    free(heap), free(key), free(done);
  }
  return rc ? (aert_error("out of memory for isomap's shortest paths"), -1) : 0;
}

/* Classical MDS of the squared distances D (destroyed): B = -1/2 J D J, whose top two
 * eigenvectors scaled by the square roots of their eigenvalues are the coordinates. Each
 * axis's sign makes its largest entry positive, as PCA's does. */
static int classical_mds(double *D, long n, float *out, double ev[2]) {
  double *mean = aert_alloc(sizeof(double) * n, "MDS row means"), grand = 0;
  double *z = aert_alloc(sizeof(double) * n * 2, "MDS eigenvectors"), w[2] = {0, 0}, *work = NULL;
  int *isuppz = aert_alloc(sizeof(int) * 4, "LAPACK workspace"), *iwork = NULL, rc = 0;
  if (!mean || !z || !isuppz)
    rc = -1;
  for (long i = 0; rc == 0 && i < n; i++) {
    for (long j = 0; j < n; j++)
      mean[i] += D[i * n + j];
    mean[i] /= n, grand += mean[i] / n;
  }
  for (long i = 0; rc == 0 && i < n; i++)
    for (long j = 0; j < n; j++)
      D[i * n + j] = -0.5 * (D[i * n + j] - mean[i] - mean[j] + grand);
  int dn = (int)n, il = dn - 1, iu = dn, found = 0, info = 0, lwork = -1, liwork = -1, iq = 0;
  double vl = 0, vu = 0, abstol = 0, q = 0;
  if (rc == 0) {
    dsyevr_("V", "I", "U", &dn, D, &dn, &vl, &vu, &il, &iu, &abstol, &found, w, z, &dn, isuppz,
            &q, &lwork, &iq, &liwork, &info);
    lwork = (int)q, liwork = iq;
    work = aert_alloc(sizeof(double) * (lwork > 1 ? lwork : 1), "LAPACK workspace");
    iwork = aert_alloc(sizeof(int) * (liwork > 1 ? liwork : 1), "LAPACK workspace");
    if (!work || !iwork)
      rc = -1;
    else if (dsyevr_("V", "I", "U", &dn, D, &dn, &vl, &vu, &il, &iu, &abstol, &found, w, z, &dn,
                     isuppz, work, &lwork, iwork, &liwork, &info), info != 0 || found != 2)
      rc = (aert_error("isomap: LAPACK dsyevr failed (info %d)", info), -1);
  }
  for (int c = 0; rc == 0 && c < 2; c++) {   /* ascending: the largest is the second */
    const double *v = z + (1 - c) * n;
    double big = 0, s = sqrt(fmax(w[1 - c], 0));
    for (long i = 0; i < n; i++)
      big = fabs(v[i]) > fabs(big) ? v[i] : big;
    for (long i = 0; i < n; i++)
      out[i * 2 + c] = (float)((big < 0 ? -s : s) * v[i]);
    ev[c] = w[1 - c];
  }
  free(mean), free(z), free(work), free(isuppz), free(iwork);
  return rc;
}

int aert_isomap(const float *x, long n, long d, int k, float *out, double ev[2]) {
  if (n < 3)
    return aert_error("isomap needs at least 3 points, got %ld", n), -1;
  if (k > n - 1)
    k = (int)(n - 1);
  graph_t g = {NULL, NULL, NULL};
  long *comp = aert_alloc(sizeof(long) * n * 3, "isomap components");
  double *D = NULL;
  int rc = comp ? build_graph(x, n, d, k, &g) : -1;
  if (rc == 0) {
    long count = components(&g, n, comp, comp + n, comp + 2 * n);
    if (count > 1)
      rc = (report_pieces(n, k, count, comp + n), -1);
  }
  if (rc == 0)
    rc = (D = aert_alloc(sizeof(double) * n * n, "isomap distances")) ? geodesics(&g, n, D) : -1;
  if (rc == 0)
    rc = classical_mds(D, n, out, ev);
  free(D), free(comp);
  graph_free(&g);
  return rc;
}
