/* embed.c - 2-d maps of the test latents for the `latent` command: PCA (top-2 eigenvectors
 * of the covariance through LAPACK's dsyev in OpenBLAS) and t-SNE, exact (van der Maaten
 * 2008) for small n, Barnes-Hut above (van der Maaten 2014: affinities over the nearest
 * neighbours, repulsion through a quadtree) or Isomap (isomap.c); a 2-d latent as it is.
 * Written as latent_2d.csv and a scatter plot, coloured by class when there are labels. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define TSNE_MAX 10000    /* the `latent` cap: neighbours are found by brute force */
#define TSNE_DEFAULT 1000 /* points mapped when --points is not given */
#define TSNE_EXACT 1000   /* up to this many points exact t-SNE (n x n P), Barnes-Hut above */
#define TSNE_THETA 0.5    /* Barnes-Hut: a cell is taken whole below side / distance theta */
#define TSNE_EARLY 100    /* iterations of early exaggeration (12) */
#define TSNE_SWITCH 250   /* iterations at momentum 0.5, then 0.8 */
#define TSNE_ITERS 1000
#define ISOMAP_MAX 4000   /* isomap holds n x n geodesic distances in doubles: 128 MB */

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
            double *w, double *work, const int *lwork, int *info);

int aert_pca(const float *x, long n, long d, float *out, double var[2], double *total) {
  double *xc = aert_alloc(sizeof(double) * n * d, "PCA data");
  double *cov = aert_alloc(sizeof(double) * d * d, "covariance");
  double *w = aert_alloc(sizeof(double) * d, "eigenvalues"), *work = NULL;
  int rc = xc && cov && w ? 0 : -1;
  for (long j = 0; rc == 0 && j < d; j++) {
    double mean = 0;
    for (long i = 0; i < n; i++)
      mean += x[i * d + j];
    mean /= n;
    for (long i = 0; i < n; i++)
      xc[i * d + j] = x[i * d + j] - mean;
  }
  if (rc == 0) {
    int dn = (int)d, lwork = -1, info = 0;
    double q;
    /* row-major X^T X is column-major too: the matrix is symmetric */
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, dn, (int)n, 1.0 / (n > 1 ? n - 1 : 1),
                xc, dn, 0.0, cov, dn);
    dsyev_("V", "U", &dn, cov, &dn, w, &q, &lwork, &info);
    lwork = (int)q;
    work = aert_alloc(sizeof(double) * (lwork > 1 ? lwork : 1), "LAPACK workspace");
    if (!work)
      rc = -1;
    else if (dsyev_("V", "U", &dn, cov, &dn, w, work, &lwork, &info), info != 0)
      rc = (aert_error("PCA: LAPACK dsyev failed (info %d)", info), -1);
  }
  for (int c = 0; rc == 0 && c < 2; c++) {
    /* component c is eigenvector d-1-c (ascending order); sign: largest entry positive */
    const double *v = d - 1 - c >= 0 ? cov + (d - 1 - c) * d : NULL;
    double big = 0;
    for (long j = 0; v && j < d; j++)
      if (fabs(v[j]) > fabs(big))
        big = v[j];
    double sign = big < 0 ? -1 : 1;
    for (long i = 0; i < n; i++) {
      double s = 0;
      for (long j = 0; v && j < d; j++)
        s += xc[i * d + j] * v[j];
      out[i * 2 + c] = (float)(sign * s);
    }
    var[c] = v ? w[d - 1 - c] : 0;
  }
  if (rc == 0) {
    *total = 0;
    for (long j = 0; j < d; j++)
      *total += w[j];
  }
  free(xc);
  free(cov);
  free(w);
  free(work);
  return rc;
}

/* ---- t-SNE --------------------------------------------------------------------------- */
/* Both methods share the perplexity calibration and the optimiser; they differ in P (dense
 * over all pairs, or sparse over the 3 * perplexity nearest neighbours) and in how the
 * repulsion sum_j q_ij^2 (y_i - y_j) and Z = sum_ij q_ij are formed (all pairs, or a
 * quadtree). Every per-point sum runs in a fixed order and Z is summed serially from
 * per-point parts, so a layout depends on the seed, not on the number of threads. */

/* The mean squared distance over all n^2 pairs (twice the total variance): distances are
 * divided by it, so that the bisection of beta starts near its answer. */
static double distance_scale(const float *x, long n, long d) {
  double total = 0;
  for (long k = 0; k < d; k++) {
    double mean = 0;
    for (long i = 0; i < n; i++)
      mean += x[i * d + k];
    mean /= n;
    for (long i = 0; i < n; i++)
      total += (x[i * d + k] - mean) * (x[i * d + k] - mean);
  }
  return total > 0 ? 2 * total / n : 1;
}

/* One row of conditional affinities, in place: squared distances to m candidates in (skip:
 * the point itself, or -1), a Gaussian out whose precision beta is bisected until its
 * entropy, log S + beta E[d], is log(perplexity). */
static void affinity_row(double *row, long m, long skip, double perplexity) {
  double beta = 1, lo = 0, hi = INFINITY, target = log(perplexity), dmin = INFINITY, sum = 0;
  for (long j = 0; j < m; j++)
    if (j != skip && row[j] < dmin)
      dmin = row[j];
  for (int it = 0; it < 64; it++) {
    double dot = 0;
    sum = 0;
    for (long j = 0; j < m; j++)
      if (j != skip) {
        double e = exp(-beta * (row[j] - dmin));
        sum += e, dot += e * (row[j] - dmin);
      }
    double h = log(sum) + beta * dot / sum;
    if (fabs(h - target) < 1e-5)
      break;
    if (h > target) {
      lo = beta;
      beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
    } else {
      hi = beta;
      beta = (beta + lo) / 2;
    }
  }
  sum = 0;
  for (long j = 0; j < m; j++)
    sum += row[j] = j == skip ? 0 : exp(-beta * (row[j] - dmin));
  for (long j = 0; j < m; j++)
    row[j] /= sum;
}

/* Exact: P over all pairs, n x n, symmetrised (p_j|i + p_i|j) / 2n. */
static void dense_affinities(const float *x, long n, long d, double perplexity, double *P) {
  double scale = distance_scale(x, n, d);
#pragma omp parallel for schedule(dynamic, 16)
  for (long i = 0; i < n; i++) {
    for (long j = 0; j < n; j++)
      P[i * n + j] = aert_sqdist(x + i * d, x + j * d, d) / scale;
    affinity_row(P + i * n, n, i, perplexity);
  }
  for (long i = 0; i < n; i++)
    for (long j = i + 1; j < n; j++) {
      double v = (P[i * n + j] + P[j * n + i]) / (2.0 * n);
      P[i * n + j] = P[j * n + i] = v > 1e-12 ? v : 1e-12;
    }
}

typedef struct {
  int j;      /* column */
  double p;
} pentry;

static int by_column(const void *a, const void *b) {
  int x = ((const pentry *)a)->j, y = ((const pentry *)b)->j;
  return (x > y) - (x < y);
}

/* Barnes-Hut: conditional affinities over the k = 3 * perplexity nearest neighbours,
 * symmetrised over the union of both neighbour lists into CSR: row i is e[row[i]] ..
 * e[row[i + 1] - 1], columns ascending. */
static int sparse_affinities(const float *x, long n, long d, double perplexity, long **rowp,
                             pentry **ep) {
  int k = (int)fmin(3 * perplexity, n - 1);
  k = k > 1 ? k : 1;
  int *nbr = aert_alloc(sizeof(int) * n * k, "t-SNE neighbours");
  double *d2 = aert_alloc(sizeof(double) * n * k, "t-SNE neighbour distances");
  long *row = aert_alloc(sizeof(long) * (n + 1), "t-SNE affinity rows");
  long *fill = aert_alloc(sizeof(long) * n, "t-SNE affinity rows");
  pentry *e = aert_alloc(sizeof(pentry) * 2 * n * k, "t-SNE affinities");
  if (!nbr || !d2 || !row || !fill || !e) {
    free(nbr), free(d2), free(row), free(fill), free(e);
    return -1;
  }
  aert_nearest(x, n, d, k, nbr, d2);
  double scale = distance_scale(x, n, d);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    for (int a = 0; a < k; a++)
      d2[i * k + a] /= scale;
    affinity_row(d2 + i * k, k, -1, perplexity);
  }
  /* p_j|i goes to row i, column j and to row j, column i */
  for (long a = 0; a < n * k; a++)
    row[a / k + 1]++, row[nbr[a] + 1]++;
  for (long i = 0; i < n; i++)
    row[i + 1] += row[i];
  memcpy(fill, row, sizeof(long) * n);
  for (long a = 0; a < n * k; a++) {
    double p = d2[a] / (2.0 * n);
    e[fill[a / k]++] = (pentry){nbr[a], p};
    e[fill[nbr[a]]++] = (pentry){(int)(a / k), p};
  }
#pragma omp parallel for schedule(dynamic, 64)
  for (long i = 0; i < n; i++)
    qsort(e + row[i], row[i + 1] - row[i], sizeof(pentry), by_column);
  /* a pair that are neighbours both ways appears twice in a row: add the two */
  long m = 0;
  for (long i = 0; i < n; i++) {
    long a = row[i];
    row[i] = m;
    for (; a < row[i + 1]; a++)
      if (m > row[i] && e[m - 1].j == e[a].j)
        e[m - 1].p += e[a].p;
      else
        e[m++] = e[a];
  }
  row[n] = m;
  free(nbr), free(d2), free(fill);
  *rowp = row, *ep = e;
  return 0;
}

/* The quadtree: a node is a square cell (centre cx, cy, half its side); mx, my the sum and
 * then the centre of mass of its count points. A leaf (child < 0) holds one point, or
 * several that coincide (or lie deeper than QT_DEPTH); the 4 children of a node are
 * consecutive, in the order of quadrant(). */
#define QT_DEPTH 48

typedef struct {
  double cx, cy, half, mx, my;
  int count, child, point;
} qnode;

typedef struct {
  qnode *node;
  long len, cap;
} qtree;

static int quadrant(const qnode *c, double x, double y) {
  return (x >= c->cx) + 2 * (y >= c->cy);
}

/* Room for count more nodes: the index of the first, or -1 when memory runs out. */
static long qtree_grow(qtree *t, int count) {
  if (t->len + count > t->cap) {
    long cap = 2 * t->cap + 1024;
    qnode *p = realloc(t->node, sizeof(qnode) * cap);
    if (!p)
      return aert_error("out of memory for the t-SNE quadtree (%ld nodes)", cap), -1;
    t->node = p, t->cap = cap;
  }
  return (t->len += count) - count;
}

static int qtree_insert(qtree *t, const double *Y, int p) {
  double x = Y[2 * p], y = Y[2 * p + 1];
  long k = 0;
  for (int depth = 0;; depth++) {
    qnode *nd = t->node + k;
    if (nd->child < 0 && nd->count > 0 && depth < QT_DEPTH &&
        (Y[2 * nd->point] != x || Y[2 * nd->point + 1] != y)) {
      /* a leaf meets a second place: its points move one level down */
      long c = qtree_grow(t, 4);
      if (c < 0)
        return -1;
      nd = t->node + k;
      for (int q = 0; q < 4; q++) {
        double h = nd->half / 2;
        t->node[c + q] = (qnode){nd->cx + (q & 1 ? h : -h), nd->cy + (q & 2 ? h : -h), h,
                                 0, 0, 0, -1, -1};
      }
      qnode *to = t->node + c + quadrant(nd, Y[2 * nd->point], Y[2 * nd->point + 1]);
      to->mx = nd->mx, to->my = nd->my, to->count = nd->count, to->point = nd->point;
      nd->child = (int)c;
    }
    nd->mx += x, nd->my += y, nd->count++;
    if (nd->child < 0) {
      if (nd->count == 1)
        nd->point = p;
      return 0;
    }
    k = nd->child + quadrant(nd, x, y);
  }
}

/* The tree of the layout Y, points inserted in index order. */
static int qtree_build(qtree *t, const double *Y, long n) {
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (long i = 0; i < n * 2; i++)
    lo[i & 1] = fmin(lo[i & 1], Y[i]), hi[i & 1] = fmax(hi[i & 1], Y[i]);
  t->len = 0;
  if (qtree_grow(t, 1) < 0)
    return -1;
  t->node[0] = (qnode){(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2,
                       fmax(hi[0] - lo[0], hi[1] - lo[1]) / 2, 0, 0, 0, -1, -1};
  for (long i = 0; i < n; i++)
    if (qtree_insert(t, Y, (int)i) != 0)
      return -1;
  for (long k = 0; k < t->len; k++)
    if (t->node[k].count > 0)
      t->node[k].mx /= t->node[k].count, t->node[k].my /= t->node[k].count;
  return 0;
}

/* Repulsion on point i from cell k: f[0..1] += sum q^2 (y_i - y_j), f[2] += sum q, a cell
 * taken whole when its side over its distance is below theta (theta2 = theta^2). */
static void qtree_repel(const qnode *node, long k, const double *Y, long i, double theta2,
                        double f[3]) {
  const qnode *nd = node + k;
  double y0 = Y[2 * i], y1 = Y[2 * i + 1], a = y0 - nd->mx, b = y1 - nd->my;
  double d2 = a * a + b * b, m = nd->count;
  if (nd->child < 0) {   /* the points of a leaf coincide: i may be one of them */
    if (Y[2 * nd->point] == y0 && Y[2 * nd->point + 1] == y1)
      m -= 1;
  } else if (4 * nd->half * nd->half >= theta2 * d2) {
    for (int c = 0; c < 4; c++)
      if (node[nd->child + c].count > 0)
        qtree_repel(node, nd->child + c, Y, i, theta2, f);
    return;
  }
  double q = 1 / (1 + d2);
  f[0] += m * q * q * a, f[1] += m * q * q * b, f[2] += m * q;
}

/* The forces on every point, exact: attraction exag * sum_j p_ij q_ij (y_i - y_j) into
 * attr, repulsion into rep, point i's part of Z into z[i]. */
static void exact_forces(const double *P, const double *Y, long n, double exag, double *attr,
                         double *rep, double *z) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    double f[5] = {0, 0, 0, 0, 0};
    for (long j = 0; j < n; j++) {
      double a = Y[2 * i] - Y[2 * j], b = Y[2 * i + 1] - Y[2 * j + 1];
      double q = j == i ? 0 : 1 / (1 + a * a + b * b), pq = exag * P[i * n + j] * q;
      f[0] += pq * a, f[1] += pq * b, f[2] += q * q * a, f[3] += q * q * b, f[4] += q;
    }
    attr[2 * i] = f[0], attr[2 * i + 1] = f[1], rep[2 * i] = f[2], rep[2 * i + 1] = f[3];
    z[i] = f[4];
  }
}

/* The same by Barnes-Hut: attraction over the sparse P, repulsion through the tree. */
static void bh_forces(const long *row, const pentry *e, const qtree *t, const double *Y,
                      long n, double exag, double *attr, double *rep, double *z) {
#pragma omp parallel for schedule(dynamic, 64)
  for (long i = 0; i < n; i++) {
    double g0 = 0, g1 = 0, f[3] = {0, 0, 0};
    for (long a = row[i]; a < row[i + 1]; a++) {
      long j = e[a].j;
      double u = Y[2 * i] - Y[2 * j], v = Y[2 * i + 1] - Y[2 * j + 1];
      double pq = exag * e[a].p / (1 + u * u + v * v);
      g0 += pq * u, g1 += pq * v;
    }
    qtree_repel(t->node, 0, Y, i, TSNE_THETA * TSNE_THETA, f);
    attr[2 * i] = g0, attr[2 * i + 1] = g1, rep[2 * i] = f[0], rep[2 * i + 1] = f[1];
    z[i] = f[2];
  }
}

/* Gradient descent as in van der Maaten's bhtsne, with tsne.m's schedule: the gradient
 * without its factor 4, gains +0.2 / x0.8 (at least 0.01), early exaggeration 12 for
 * TSNE_EARLY iterations, momentum 0.5 for TSNE_SWITCH, then 0.8; learning rate
 * max(200, n / 12) (Kobak and Berens 2019, FIt-SNE's 'auto'). The layout starts at
 * N(0, 1e-4^2) from the seed. */
int aert_tsne(const float *x, long n, long d, float *out, double perplexity, int iters,
              uint64_t seed) {
  if (n < 2) {
    memset(out, 0, sizeof(float) * 2 * (n > 0 ? n : 0));
    return 0;
  }
  if (perplexity > (n - 1) / 3.0)
    perplexity = (n - 1) / 3.0 > 1 ? (n - 1) / 3.0 : 1;
  int exact = n <= TSNE_EXACT, rc = 0;
  double *P = NULL, *buf = aert_alloc(sizeof(double) * n * 11, "t-SNE state");
  long *row = NULL;
  pentry *e = NULL;
  qtree t = {NULL, 0, 0};
  if (exact)
    rc = (P = aert_alloc(sizeof(double) * n * n, "t-SNE affinities")) ? 0 : -1;
  else
    rc = sparse_affinities(x, n, d, perplexity, &row, &e);
  if (!buf || rc != 0) {
    free(buf), free(P);
    return -1;
  }
  if (exact)
    dense_affinities(x, n, d, perplexity, P);
  double *Y = buf, *attr = buf + 2 * n, *rep = buf + 4 * n, *vel = buf + 6 * n;
  double *gain = buf + 8 * n, *z = buf + 10 * n, lr = fmax(200, n / 12.0);
  uint64_t s = aert_hash64(seed ^ 0x74736e65ULL);
  for (long i = 0; i < n * 2; i++)
    Y[i] = 1e-4 * aert_normal(s, (uint64_t)i), gain[i] = 1;
  for (int it = 0; it < iters; it++) {
    double exag = it < TSNE_EARLY ? 12 : 1, mom = it < TSNE_SWITCH ? 0.5 : 0.8, Z = 0;
    if (exact)
      exact_forces(P, Y, n, exag, attr, rep, z);
    else if ((rc = qtree_build(&t, Y, n)) != 0)
      break;
    else
      bh_forces(row, e, &t, Y, n, exag, attr, rep, z);
    for (long i = 0; i < n; i++)
      Z += z[i];
    double mean[2] = {0, 0};
    for (long i = 0; i < n * 2; i++) {
      double g = attr[i] - rep[i] / Z;
      gain[i] = (g > 0) != (vel[i] > 0) ? gain[i] + 0.2 : gain[i] * 0.8;
      if (gain[i] < 0.01)
        gain[i] = 0.01;
      vel[i] = mom * vel[i] - lr * gain[i] * g;
      Y[i] += vel[i];
      mean[i & 1] += Y[i];
    }
    for (long i = 0; i < n * 2; i++)
      Y[i] -= mean[i & 1] / n;
  }
  for (long i = 0; i < n * 2; i++)
    out[i] = (float)Y[i];
  free(P), free(row), free(e), free(t.node), free(buf);
  return rc;
}

/* ---- the `latent` command --------------------------------------------------------- */
typedef struct {
  float *z;
  long width;
} latents_t;

static void keep_latents(void *ctx, const aert_workspace *w, long start, int real) {
  latents_t *l = ctx;
  memcpy(l->z + start * l->width, aert_device_latent(&w->dev), sizeof(float) * real * l->width);
}

static int write_csv(const char *path, const float *xy, const int *label, long n) {
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  fprintf(a.f, "label,x,y\n");
  for (long i = 0; i < n; i++)
    fprintf(a.f, "%d,%.9g,%.9g\n", label ? label[i] : -1, xy[i * 2], xy[i * 2 + 1]);
  if (ferror(a.f)) {
    aert_error("cannot write '%s': %m", a.tmp);
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}

/* Maps n latents (n x d) to xy by the method asked for; a 2-d latent without --method is
 * plotted as it is. Says what it did unless quiet. */
static int map_latents(const aert_model *m, const aert_options *o, const float *z, long n,
                       float *xy) {
  long d = m->latent_size;
  const char *method = o->method ? o->method : d == 2 ? "raw" : "pca";
  double t0 = aert_now();
  int rc = 0;
  if (!strcmp(method, "raw")) {
    memcpy(xy, z, sizeof(float) * n * 2);
    if (!o->quiet)
      printf("the latent is 2-d: %ld latents plotted as they are (--method for a map)\n", n);
  } else if (!strcmp(method, "tsne")) {
    rc = aert_tsne(z, n, d, xy, 30.0, TSNE_ITERS, o->seed);
    if (rc == 0 && !o->quiet)
      printf("%s t-SNE of %ld latents (%ld-d), perplexity 30, %d iterations: %.1f s\n",
             n <= TSNE_EXACT ? "exact" : "Barnes-Hut", n, d, TSNE_ITERS, aert_now() - t0);
  } else if (!strcmp(method, "isomap")) {
    double ev[2];
    rc = aert_isomap(z, n, d, o->neighbors, xy, ev);
    if (rc == 0 && !o->quiet)
      printf("isomap of %ld latents (%ld-d), %d nearest neighbours: eigenvalues %.4g and %.4g, "
             "%.1f s\n", n, d, o->neighbors, ev[0], ev[1], aert_now() - t0);
  } else {
    double var[2], total;
    rc = aert_pca(z, n, d, xy, var, &total);
    if (rc == 0 && !o->quiet)
      printf("PCA of %ld latents (%ld-d): the two components explain %.1f%% and %.1f%% of the "
             "variance\n", n, d, 100 * var[0] / total, 100 * var[1] / total);
  }
  return rc;
}

/* The plot's title and axes; a raw 2-d latent of a generative model spans the decoded
 * plane of `sample` (latent_grid.png) exactly, so the two pictures line up. */
static void scatter_style(const aert_model *m, const aert_options *o, long n, aert_scatter *sc,
                          char *title, size_t len) {
  const char *method = o->method ? o->method : m->latent_size == 2 ? "raw" : "pca";
  static const char *const axes[][2] = {{"z1", "z2"}, {"component 1", "component 2"},
                                        {"tsne 1", "tsne 2"}, {"isomap 1", "isomap 2"}};
  int a = !strcmp(method, "raw") ? 0 : !strcmp(method, "pca") ? 1 : !strcmp(method, "tsne") ? 2 : 3;
  if (a == 0)
    snprintf(title, len, "%s: %ld test latents as they are", m->name, n);
  else
    snprintf(title, len, "%s: %s of %ld test latents", m->name, method, n);
  *sc = (aert_scatter){.title = title, .xlabel = axes[a][0], .ylabel = axes[a][1]};
  if (a == 0 && aert_is_generative(m)) {
    double span = AERT_LATENT_PLANE_SPAN;
    sc->fixed = 1;
    sc->lo[0] = sc->lo[1] = -span, sc->hi[0] = sc->hi[1] = span;
  }
}

int aert_latent_map(const aert_model *m, const aert_options *o) {
  if (m->latent_size <= 0 || !m->latent)
    return aert_error("model '%s' has no latent to map", m->name), -1;
  int tsne = o->method && !strcmp(o->method, "tsne"), isomap = o->method && !strcmp(o->method, "isomap");
  aert_session s;
  latents_t l = {NULL, m->latent_size};
  float *xy = NULL;
  char *csv = aert_join(o->out, "latent_2d.csv"), *png = aert_join(o->out, "latent_2d.png");
  int rc = csv && png ? aert_session_open(&s, m, o) : -1;
  long n = 0;
  if (rc == 0) {
    n = o->points > 0 ? o->points : tsne || isomap ? TSNE_DEFAULT : s.test.n;
    if (n > s.test.n)
      n = s.test.n;
    int cap = tsne ? TSNE_MAX : ISOMAP_MAX;
    if ((tsne || isomap) && n > cap)
      rc = (aert_error("--points %ld: %s is limited to %d points", n, o->method, cap), -1);
    s.test.n = n;   /* the first n test images */
  }
  if (rc == 0) {
    l.z = aert_alloc(sizeof(float) * n * l.width, "latents");
    xy = aert_alloc(sizeof(float) * n * 2, "2-d map");
    rc = l.z && xy ? aert_eval_set(&s.w, &s.test, &s.mt, keep_latents, &l) : -1;
  }
  if (rc == 0)
    rc = map_latents(m, o, l.z, n, xy);
  if (rc == 0)
    rc = write_csv(csv, xy, s.test.label, n);
  if (rc == 0) {
    aert_scatter sc;
    char title[160];
    scatter_style(m, o, n, &sc, title, sizeof title);
    rc = aert_png_scatter(png, xy, s.test.label, n, &sc);
  }
  if (rc == 0 && !o->quiet)
    printf("wrote %s and %s\n", csv, png);
  free(l.z);
  free(xy);
  free(csv);
  free(png);
  if (csv && png)
    aert_session_close(&s);
  return rc;
}
