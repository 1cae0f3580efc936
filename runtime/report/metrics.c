/* metrics.c - evaluation sums over real (not padding) examples: loss terms, per-pixel MSE
 * and PSNR for image outputs, accuracy, confusion matrix and IoU for class outputs.
 * Class scores are HWC: the n_classes scores of one item are contiguous. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"
#include "dist.h"

int aert_metrics_init(aert_metrics *mt, int n_classes) {
  memset(mt, 0, sizeof *mt);
  mt->n_classes = n_classes;
  if (n_classes > 0) {
    mt->confusion = aert_alloc(sizeof(long) * n_classes * n_classes, "confusion matrix");
    if (!mt->confusion)
      return -1;
  }
  return 0;
}

void aert_metrics_free(aert_metrics *mt) {
  free(mt->confusion);
  mt->confusion = NULL;
}

void aert_metrics_add_loss(aert_metrics *mt, const aert_losses *l, long count) {
  mt->examples += count;
  mt->loss += (double)l->total * count;
  for (int i = 0; i < AERT_MAX_LOSS_TERMS; i++)
    mt->term[i] += (double)l->term[i] * count;
}

/* Every sum as a double (counts below 2^53 are exact), added up over the ranks. */
int aert_metrics_sum_ranks(aert_metrics *mt) {
  int nc = mt->confusion ? mt->n_classes : 0, n = 6 + AERT_MAX_LOSS_TERMS + nc * nc;
  double *v = aert_alloc(sizeof(double) * (size_t)n, "metric sums");
  if (!v)
    return -1;
  double head[6] = {(double)mt->examples, mt->loss, mt->sq_err, (double)mt->values, (double)mt->correct,
                    (double)mt->counted};
  memcpy(v, head, sizeof head);
  memcpy(v + 6, mt->term, sizeof mt->term);
  for (int i = 0; i < nc * nc; i++)
    v[6 + AERT_MAX_LOSS_TERMS + i] = (double)mt->confusion[i];
  aert_dist_sum_doubles(v, n);
  mt->examples = (long)v[0], mt->loss = v[1], mt->sq_err = v[2], mt->values = (long)v[3];
  mt->correct = (long)v[4], mt->counted = (long)v[5];
  memcpy(mt->term, v + 6, sizeof mt->term);
  for (int i = 0; i < nc * nc; i++)
    mt->confusion[i] = (long)v[6 + AERT_MAX_LOSS_TERMS + i];
  free(v);
  return 0;
}

void aert_metrics_add_images(aert_metrics *mt, const float *out, const float *target, long n) {
  for (long i = 0; i < n; i++) {
    double d = (double)out[i] - target[i];
    mt->sq_err += d * d;
  }
  mt->values += n;
}

void aert_metrics_add_classes(aert_metrics *mt, const float *scores, const float *target,
                              long items) {
  int nc = mt->n_classes;
  for (long i = 0; i < items; i++) {
    int truth = (int)target[i];
    if (truth < 0 || truth >= nc)
      continue;
    const float *s = scores + i * nc;
    int best = 0;
    for (int c = 1; c < nc; c++)
      if (s[c] > s[best])
        best = c;
    mt->correct += best == truth;
    mt->counted++;
    mt->confusion[truth * nc + best]++;
  }
}

double aert_mse(const aert_metrics *mt) {
  return mt->values ? mt->sq_err / mt->values : NAN;
}

/* Data range 1: images are compared in [0,1]. */
double aert_psnr(double mse) {
  return mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY;
}

double aert_accuracy(const aert_metrics *mt) {
  return mt->counted ? (double)mt->correct / mt->counted : NAN;
}

/* NaN for a class that appears neither in the truth nor in the predictions. */
double aert_iou(const aert_metrics *mt, int c) {
  int nc = mt->n_classes;
  long inter = mt->confusion[c * nc + c], uni = -inter;
  for (int k = 0; k < nc; k++)
    uni += mt->confusion[c * nc + k] + mt->confusion[k * nc + c];
  return uni ? (double)inter / uni : NAN;
}

/* Rows are the true classes, columns the predicted ones, in pixels (or examples). */
void aert_print_confusion(const aert_metrics *mt, const char *const *names) {
  int nc = mt->n_classes;
  printf("confusion      (rows: truth, columns: prediction)\n%12s", "");
  for (int c = 0; c < nc; c++)
    printf(" %10.10s", names[c] ? names[c] : "?");
  printf("\n");
  for (int r = 0; r < nc; r++) {
    printf("  %-10.10s", names[r] ? names[r] : "?");
    for (int c = 0; c < nc; c++)
      printf(" %10ld", mt->confusion[r * nc + c]);
    printf("\n");
  }
}

double aert_mean_iou(const aert_metrics *mt) {
  double sum = 0;
  int n = 0;
  for (int c = 0; c < mt->n_classes; c++) {
    double iou = aert_iou(mt, c);
    if (!isnan(iou))
      sum += iou, n++;
  }
  return n ? sum / n : NAN;
}

/* ---- latent statistics ------------------------------------------------------------ */
int aert_latent_stats_init(aert_latent_stats *ls, long units) {
  memset(ls, 0, sizeof *ls);
  ls->units = units;
  ls->max_abs = aert_alloc(sizeof(float) * units, "latent statistics");
  return ls->max_abs ? 0 : -1;
}

void aert_latent_stats_free(aert_latent_stats *ls) {
  free(ls->max_abs);
  memset(ls, 0, sizeof *ls);
}

void aert_latent_stats_add(aert_latent_stats *ls, const float *z, long examples) {
  for (long e = 0; e < examples; e++)
    for (long j = 0; j < ls->units; j++) {
      float v = z[e * ls->units + j], a = fabsf(v);
      ls->sum += v;
      ls->sum_abs += a;
      ls->near_zero += a < AERT_NEAR_ZERO;
      if (a > ls->max_abs[j])
        ls->max_abs[j] = a;
    }
  ls->examples += examples;
}

double aert_latent_mean(const aert_latent_stats *ls) {
  return ls->examples ? ls->sum / ((double)ls->examples * ls->units) : 0.0;
}
double aert_latent_mean_abs(const aert_latent_stats *ls) {
  return ls->examples ? ls->sum_abs / ((double)ls->examples * ls->units) : 0.0;
}
double aert_latent_near_zero(const aert_latent_stats *ls) {
  return ls->examples ? (double)ls->near_zero / ((double)ls->examples * ls->units) : 0.0;
}
long aert_latent_dead(const aert_latent_stats *ls) {
  long dead = 0;
  for (long j = 0; j < ls->units; j++)
    dead += ls->max_abs[j] < AERT_NEAR_ZERO;
  return dead;
}
