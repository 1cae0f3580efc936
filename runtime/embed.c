/* embed.c - 2-d maps of the test latents for the `latent` command: PCA (top-2 eigenvectors
 * of the covariance through LAPACK's dsyev in OpenBLAS) and exact t-SNE (van der Maaten
 * 2008: perplexity-calibrated affinities, early exaggeration, momentum and gains), written
 * as latent_2d.csv and a scatter plot coloured by class. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define TSNE_MAX 5000    /* exact t-SNE keeps n x n doubles twice */
#define TSNE_DEFAULT 1000

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

/* Row i of the conditional affinities: a Gaussian whose precision beta is bisected until
 * the row's entropy is log(perplexity). */
static void affinity_row(const double *d2, long n, long i, double perplexity, double *p) {
  double beta = 1, lo = 0, hi = INFINITY, target = log(perplexity);
  for (int it = 0; it < 64; it++) {
    double sum = 0, h = 0, dmin = INFINITY;
    for (long j = 0; j < n; j++)
      if (j != i && d2[j] < dmin)
        dmin = d2[j];
    for (long j = 0; j < n; j++) {
      p[j] = j == i ? 0 : exp(-beta * (d2[j] - dmin));
      sum += p[j];
    }
    for (long j = 0; j < n; j++) {
      p[j] /= sum;
      if (p[j] > 1e-300)
        h -= p[j] * log(p[j]);
    }
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
}

/* P: symmetric joint affinities from the pairwise squared distances (scaled to mean 1). */
static void joint_affinities(const float *x, long n, long d, double perplexity, double *P) {
  double mean = 0;
#pragma omp parallel for reduction(+ : mean) schedule(static)
  for (long i = 0; i < n; i++)
    for (long j = 0; j < n; j++) {
      double s = 0;
      for (long k = 0; k < d; k++) {
        double t = (double)x[i * d + k] - x[j * d + k];
        s += t * t;
      }
      P[i * n + j] = s;
      mean += s;
    }
  mean /= (double)n * n;
#pragma omp parallel
  {
    double *row = malloc(sizeof(double) * n);
#pragma omp for schedule(dynamic, 16)
    for (long i = 0; i < n; i++) {
      if (!row)
        continue;
      for (long j = 0; j < n; j++)
        row[j] = P[i * n + j] / (mean > 0 ? mean : 1);
      affinity_row(row, n, i, perplexity, P + i * n);
    }
    free(row);
  }
  for (long i = 0; i < n; i++)
    for (long j = i + 1; j < n; j++) {
      double v = (P[i * n + j] + P[j * n + i]) / (2.0 * n);
      P[i * n + j] = P[j * n + i] = v > 1e-12 ? v : 1e-12;
    }
}

int aert_tsne(const float *x, long n, long d, float *out, double perplexity, int iters,
              uint64_t seed) {
  if (perplexity > (n - 1) / 3.0)
    perplexity = (n - 1) / 3.0 > 1 ? (n - 1) / 3.0 : 1;
  double *P = aert_alloc(sizeof(double) * n * n, "t-SNE affinities");
  double *Q = aert_alloc(sizeof(double) * n * n, "t-SNE kernel");
  double *Y = aert_alloc(sizeof(double) * n * 2, "t-SNE layout");
  double *dY = aert_alloc(sizeof(double) * n * 2, "t-SNE gradient");
  double *vel = aert_alloc(sizeof(double) * n * 2, "t-SNE velocity");
  double *gain = aert_alloc(sizeof(double) * n * 2, "t-SNE gains");
  if (!P || !Q || !Y || !dY || !vel || !gain) {
    free(P), free(Q), free(Y), free(dY), free(vel), free(gain);
    return -1;
  }
  joint_affinities(x, n, d, perplexity, P);
  uint64_t s = aert_hash64(seed ^ 0x74736e65ULL);
  for (long i = 0; i < n * 2; i++)
    Y[i] = 1e-4 * aert_normal(s, (uint64_t)i), gain[i] = 1;
  for (int it = 0; it < iters; it++) {
    double exag = it < 100 ? 12 : 1, mom = it < 250 ? 0.5 : 0.8, Z = 0;
#pragma omp parallel for reduction(+ : Z) schedule(static)
    for (long i = 0; i < n; i++)
      for (long j = 0; j < n; j++) {
        double a = Y[i * 2] - Y[j * 2], b = Y[i * 2 + 1] - Y[j * 2 + 1];
        Q[i * n + j] = i == j ? 0 : 1 / (1 + a * a + b * b);
        Z += Q[i * n + j];
      }
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
      double g0 = 0, g1 = 0;
      for (long j = 0; j < n; j++) {
        double q = Q[i * n + j], f = (exag * P[i * n + j] - q / Z) * q;
        g0 += f * (Y[i * 2] - Y[j * 2]);
        g1 += f * (Y[i * 2 + 1] - Y[j * 2 + 1]);
      }
      dY[i * 2] = 4 * g0, dY[i * 2 + 1] = 4 * g1;
    }
    double mean[2] = {0, 0};
    for (long i = 0; i < n * 2; i++) {
      gain[i] = (dY[i] > 0) != (vel[i] > 0) ? gain[i] + 0.2 : gain[i] * 0.8;
      if (gain[i] < 0.01)
        gain[i] = 0.01;
      vel[i] = mom * vel[i] - 200.0 * gain[i] * dY[i];
      Y[i] += vel[i];
      mean[i & 1] += Y[i];
    }
    for (long i = 0; i < n * 2; i++)
      Y[i] -= mean[i & 1] / n;
  }
  for (long i = 0; i < n * 2; i++)
    out[i] = (float)Y[i];
  free(P), free(Q), free(Y), free(dY), free(vel), free(gain);
  return 0;
}

/* ---- the `latent` command --------------------------------------------------------- */
typedef struct {
  float *z;
  long width;
} latents_t;

static void keep_latents(void *ctx, const aert_workspace *w, long start, int real) {
  latents_t *l = ctx;
  memcpy(l->z + start * l->width, w->m->latent(w->arena), sizeof(float) * real * l->width);
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

int aert_latent_map(const aert_model *m, const aert_options *o) {
  if (m->latent_size <= 0 || !m->latent)
    return aert_error("model '%s' has no latent to map", m->name), -1;
  int tsne = o->method && !strcmp(o->method, "tsne");
  aert_session s;
  latents_t l = {NULL, m->latent_size};
  float *xy = NULL;
  char *csv = aert_join(o->out, "latent_2d.csv"), *png = aert_join(o->out, "latent_2d.png");
  int rc = csv && png ? aert_session_open(&s, m, o) : -1;
  long n = 0;
  if (rc == 0) {
    n = o->points > 0 ? o->points : tsne ? TSNE_DEFAULT : s.test.n;
    if (n > s.test.n)
      n = s.test.n;
    if (tsne && n > TSNE_MAX)
      rc = (aert_error("--points %ld: exact t-SNE is limited to %d points", n, TSNE_MAX), -1);
    s.test.n = n;   /* the first n test images */
  }
  if (rc == 0) {
    l.z = aert_alloc(sizeof(float) * n * l.width, "latents");
    xy = aert_alloc(sizeof(float) * n * 2, "2-d map");
    rc = l.z && xy ? aert_eval_set(&s.w, &s.test, &s.mt, keep_latents, &l) : -1;
  }
  double t0 = aert_now();
  if (rc == 0 && tsne) {
    rc = aert_tsne(l.z, n, l.width, xy, 30.0, 500, o->seed);
    if (rc == 0 && !o->quiet)
      printf("t-SNE of %ld latents (%ld-d), perplexity 30, 500 iterations: %.1f s\n", n, l.width,
             aert_now() - t0);
  } else if (rc == 0) {
    double var[2], total;
    rc = aert_pca(l.z, n, l.width, xy, var, &total);
    if (rc == 0 && !o->quiet)
      printf("PCA of %ld latents (%ld-d): the two components explain %.1f%% and %.1f%% of the "
             "variance\n", n, l.width, 100 * var[0] / total, 100 * var[1] / total);
  }
  if (rc == 0)
    rc = write_csv(csv, xy, s.test.label, n);
  if (rc == 0)
    rc = aert_png_scatter(png, xy, s.test.label, n);
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
