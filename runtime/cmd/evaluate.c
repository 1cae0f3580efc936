/* evaluate.c - running a trained model over a whole set: the shared evaluation loop (the
 * last partial batch is padded and only real examples count), and the `eval`, `encode` and
 * `predict` commands, which open a session (session.c) and go over the test set. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"
#include "dist.h"

#define SHOWN 8 /* examples in reconstructions.png */

static void add_outputs(aert_workspace *w, aert_metrics *mt, int real) {
  const aert_model *m = w->m;
  const float *out = aert_device_output(&w->dev);
  if (m->target_kind == AERT_TARGET_CLASSES && m->out_size == m->target_size * m->n_classes)
    aert_metrics_add_classes(mt, out, w->y, real * m->target_size);
  else if (m->out_size == (m->target_kind == AERT_TARGET_INPUT ? m->in_size : m->target_size))
    aert_metrics_add_images(mt, out, m->target_kind == AERT_TARGET_INPUT ? w->x : w->y,
                            real * m->out_size);
}

/* A batch of B with r real examples padded by copies of the last one has mean loss
 * (S + (B-r) l)/B; a second batch of B copies gives l, hence the real sum S. */
static void real_losses(aert_workspace *w, const aert_losses *padded, int real,
                        aert_metrics *mt) {
  const aert_model *m = w->m;
  int B = m->batch;
  aert_losses copy = {0}, mean = {0};
  for (int b = 0; b < B; b++) {
    memcpy(w->x + (long)b * m->in_size, w->x + (long)(real - 1) * m->in_size,
           sizeof(float) * m->in_size);
    if (w->y)
      memcpy(w->y + (long)b * m->target_size, w->y + (long)(real - 1) * m->target_size,
             sizeof(float) * m->target_size);
  }
  copy.total = aert_workspace_forward(w, &copy);
  mean.total = ((double)B * padded->total - (double)(B - real) * copy.total) / real;
  for (int i = 0; i < AERT_MAX_LOSS_TERMS; i++)
    mean.term[i] = ((double)B * padded->term[i] - (double)(B - real) * copy.term[i]) / real;
  aert_metrics_add_loss(mt, &mean, real);
}

int aert_eval_set(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt, aert_batch_fn fn,
                  void *ctx) {
  return aert_eval_part(w, ds, mt, fn, ctx, 0, 1);
}

int aert_eval_part(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt, aert_batch_fn fn,
                   void *ctx, long first, long every) {
  const aert_model *m = w->m;
  for (long start = first * m->batch; start < ds->n; start += every * m->batch) {
    aert_losses l = {0};
    int real = aert_batch_fill(m, ds, NULL, start, w->x, w->y);
    if (real < 0)
      return -1;
    l.total = aert_workspace_forward(w, &l);
    add_outputs(w, mt, real);
    if (fn)
      fn(ctx, w, start, real);
    if (real == m->batch)
      aert_metrics_add_loss(mt, &l, real);
    else
      real_losses(w, &l, real, mt);
  }
  return 0;
}

int aert_eval_shared(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt) {
  int ranks = aert_dist_size();
  if (aert_eval_part(w, ds, mt, NULL, NULL, aert_dist_rank(), ranks) != 0)
    return -1;
  return ranks > 1 ? aert_metrics_sum_ranks(mt) : 0;
}

/* ---- eval -------------------------------------------------------------------------- */
typedef struct {
  const aert_model *m;
  float *rows;   /* SHOWN inputs, SHOWN outputs, SHOWN targets */
  long shown;
  aert_latent_stats *ls;   /* NULL when the model has no latent */
} shown_t;

static void keep_shown(void *ctx, const aert_workspace *w, long start, int real) {
  shown_t *s = ctx;
  const aert_model *m = s->m;
  if (s->ls)
    aert_latent_stats_add(s->ls, aert_device_latent(&w->dev), real);
  if (!s->rows)
    return;
  const float *out = aert_device_output(&w->dev);
  for (int b = 0; b < real && s->shown < SHOWN; b++, s->shown++) {
    memcpy(s->rows + s->shown * m->in_size, w->x + (long)b * m->in_size,
           sizeof(float) * m->in_size);
    memcpy(s->rows + (SHOWN + s->shown) * m->in_size, out + (long)b * m->out_size,
           sizeof(float) * m->out_size);
    if (w->y)
      memcpy(s->rows + (2 * SHOWN + s->shown) * m->in_size, w->y + (long)b * m->target_size,
             sizeof(float) * m->target_size);
  }
}

static int write_rows(const aert_model *m, const aert_options *o, const char *name,
                      const float *rows, int n_rows, long shown, const char *const *labels) {
  int h, w, c;
  const float *tiles[3 * SHOWN] = {0};
  aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &h, &w, &c);
  for (int r = 0; r < n_rows; r++)
    for (long k = 0; k < shown; k++)
      tiles[r * SHOWN + k] = rows + (r * SHOWN + k) * m->in_size;
  char *path = aert_join(o->out, name);
  int rc = path ? aert_png_grid(path, n_rows, SHOWN, tiles, h, w, c, labels, 0) : -1;
  if (rc == 0 && !o->quiet)
    printf("wrote %s\n", path);
  free(path);
  return rc;
}

/* Denoising: the test images with the model's input noise (seed fixed), passed through the
 * model; PSNR of the noisy images against the clean ones and of the outputs against the
 * targets (the clean images themselves, or an image target such as image pairs give), and
 * SHOWN examples kept as noisy / output / target rows. */
int aert_denoise_eval(aert_workspace *w, const aert_dataset *ds, aert_denoise *d) {
  const aert_model *m = w->m;
  long n = (long)m->batch * m->in_size;
  float *noisy = aert_alloc(sizeof(float) * n, "noisy batch");
  if (!noisy)
    return -1;
  memset(d, 0, offsetof(aert_denoise, rows));
  for (long start = 0; start < ds->n; start += m->batch) {
    int real = aert_batch_fill(m, ds, NULL, start, w->x, w->y);
    uint64_t seed = aert_hash64(0x6e6f697365ULL ^ (uint64_t)start);
    for (long i = 0; i < n; i++) {
      float v = w->x[i] + m->input_noise_stddev * aert_normal(seed, (uint64_t)i);
      noisy[i] = v < m->input_noise_lo ? m->input_noise_lo : v > m->input_noise_hi ? m->input_noise_hi : v;
    }
    aert_device_batch(&w->dev, noisy, w->y ? w->y : noisy);
    aert_device_forward(&w->dev, 0, 0, NULL);
    const float *out = aert_device_output(&w->dev), *want = m->target_kind == AERT_TARGET_IMAGE ? w->y : w->x;
    long values = real * m->in_size;
    for (long i = 0; i < values; i++) {
      double a = (double)noisy[i] - w->x[i], b = (double)out[i] - want[i];
      d->noisy_sq += a * a;
      d->recon_sq += b * b;
    }
    d->values += values;
    for (int b = 0; d->rows && b < real && d->shown < SHOWN; b++, d->shown++) {
      size_t one = sizeof(float) * m->in_size;
      memcpy(d->rows + d->shown * m->in_size, noisy + (long)b * m->in_size, one);
      memcpy(d->rows + (SHOWN + d->shown) * m->in_size, out + (long)b * m->out_size, one);
      memcpy(d->rows + (2 * SHOWN + d->shown) * m->in_size, want + (long)b * m->in_size, one);
    }
  }
  free(noisy);
  return 0;
}

static void print_eval(const aert_model *m, const aert_session *s) {
  const aert_metrics *mt = &s->mt;
  printf("test examples  %ld (checkpoint %s)\n", mt->examples, s->ckpt);
  printf("test loss      %.6f\n", mt->loss / mt->examples);
  for (int i = 0; i < m->n_loss_terms; i++)
    printf("  %-12s %.6f\n", m->loss_term_names[i], mt->term[i] / mt->examples);
  if (mt->values) {
    double mse = aert_mse(mt);
    printf("pixel MSE      %.6f\nPSNR           %.2f dB\n", mse, aert_psnr(mse));
  }
  if (m->target_kind == AERT_TARGET_CLASSES) {
    printf("%s %.4f\n", m->target_rank ? "pixel accuracy" : "accuracy      ", aert_accuracy(mt));
    if (m->target_rank) {
      for (int c = 0; c < m->n_classes; c++)
        printf("  IoU %-10s %.4f\n", m->class_names[c] ? m->class_names[c] : "?", aert_iou(mt, c));
      printf("mean IoU       %.4f\n", aert_mean_iou(mt));
      aert_print_confusion(mt, m->class_names);
    }
  }
}

static void print_latent_stats(const aert_latent_stats *ls) {
  printf("latent         %ld units: mean %.4f, mean |z| %.4f, near zero (|z| < %g) %.2f%%, "
         "dead units (near zero on every test image) %ld\n",
         ls->units, aert_latent_mean(ls), aert_latent_mean_abs(ls), AERT_NEAR_ZERO,
         100.0 * aert_latent_near_zero(ls), aert_latent_dead(ls));
}

/* eval of a class-map model on data-parallel ranks: each scores its share of the test
 * grid; rank 0 prints the sums. */
static int eval_split(const aert_model *m, const aert_options *o) {
  aert_session s;
  int rc = aert_session_open(&s, m, o);
  if (rc == 0)
    rc = aert_eval_shared(&s.w, &s.test, &s.mt);
  if (rc == 0 && aert_dist_rank() == 0)
    print_eval(m, &s);
  aert_session_close(&s);
  return rc;
}

int aert_eval(const aert_model *m, const aert_options *o) {
  aert_session s;
  int images = m->target_kind != AERT_TARGET_CLASSES &&
               m->out_size == (m->target_kind == AERT_TARGET_INPUT ? m->in_size : m->target_size) &&
               m->target_size <= m->in_size;
  /* any source: the input is its own target, or an image target of the input's size */
  int denoise = images && m->input_noise_stddev > 0 &&
                (m->target_kind == AERT_TARGET_INPUT || m->target_size == m->in_size);
  /* data-parallel ranks split the test grid of a model scored by sums alone (class maps:
   * loss, accuracy, IoU, the confusion matrix); pictures and latent statistics: rank 0 */
  int split = aert_dist_size() > 1 && !images && !(m->latent && m->latent_size > 0);
  if (aert_dist_rank() > 0 && !split)
    return 0;
  if (split)
    return eval_split(m, o);
  aert_latent_stats ls = {0};
  aert_denoise dn = {0};
  shown_t sh = {.m = m};
  int rc = aert_session_open(&s, m, o);
  if (rc == 0 && images && !(sh.rows = aert_alloc(sizeof(float) * 3 * SHOWN * m->in_size, "images")))
    rc = -1;
  if (rc == 0 && m->latent && m->latent_size > 0) {
    rc = aert_latent_stats_init(&ls, m->latent_size);
    sh.ls = rc == 0 ? &ls : NULL;
  }
  if (rc == 0)
    rc = aert_eval_set(&s.w, &s.test, &s.mt, images || sh.ls ? keep_shown : NULL, &sh);
  if (rc == 0) {
    print_eval(m, &s);
    if (sh.ls)
      print_latent_stats(&ls);
    if (images) {
      static const char *const labels[3] = {"input", "output", "target"};
      rc = write_rows(m, o, "reconstructions.png", sh.rows, m->target_kind == AERT_TARGET_IMAGE ? 3 : 2,
                      sh.shown, labels);
    }
  }
  if (rc == 0 && denoise) {
    dn.rows = sh.rows;   /* reused: the reconstructions are written */
    rc = aert_denoise_eval(&s.w, &s.test, &dn);
    if (rc == 0) {
      printf("denoising      noise stddev %g: noisy input PSNR %.2f dB, reconstruction PSNR %.2f dB\n",
             m->input_noise_stddev, aert_psnr(dn.noisy_sq / dn.values),
             aert_psnr(dn.recon_sq / dn.values));
      static const char *const labels[3] = {"noisy", "output", "clean"};
      rc = write_rows(m, o, "denoising.png", dn.rows, 3, dn.shown, labels);
    }
  }
  free(sh.rows);
  aert_latent_stats_free(&ls);
  aert_session_close(&s);
  return rc;
}

/* ---- encode and predict -------------------------------------------------------------- */
typedef struct {
  int latent;    /* 1: the latents, 0: the outputs */
  long width;
  float *all;
} gather_t;

static void gather(void *ctx, const aert_workspace *w, long start, int real) {
  gather_t *g = ctx;
  const float *v = g->latent ? aert_device_latent(&w->dev) : aert_device_output(&w->dev);
  memcpy(g->all + start * g->width, v, sizeof(float) * real * g->width);
}

static int run_gather(const aert_model *m, const aert_options *o, aert_session *s, gather_t *g) {
  if (aert_session_open(s, m, o) != 0)
    return -1;
  g->all = aert_alloc(sizeof(float) * s->test.n * g->width, "outputs");
  return g->all ? aert_eval_set(&s->w, &s->test, &s->mt, gather, g) : -1;
}

static int write_latent_csv(const char *path, const aert_dataset *ds, const float *z, long k) {
  aert_atomic a;
  if (aert_atomic_open(&a, path) != 0)
    return -1;
  for (long i = 0; i < ds->n; i++) {
    fprintf(a.f, "%d", ds->label ? ds->label[i] : -1);
    for (long j = 0; j < k; j++)
      fprintf(a.f, ",%.9g", z[i * k + j]);
    fputc('\n', a.f);
  }
  if (ferror(a.f)) {
    aert_error("cannot write '%s': %m", a.tmp);
    aert_atomic_abort(&a);
    return -1;
  }
  return aert_atomic_commit(&a);
}

int aert_encode(const aert_model *m, const aert_options *o) {
  if (m->latent_size <= 0 || !m->latent)
    return aert_error("model '%s' has no latent to encode", m->name), -1;
  if (o->input)
    return aert_predict_input(m, o, 1);
  aert_session s;
  gather_t g = {1, m->latent_size, NULL};
  char *npy = aert_join(o->out, "latent.npy"), *csv = aert_join(o->out, "latent.csv");
  int rc = npy && csv ? run_gather(m, o, &s, &g) : -1;
  if (rc == 0)
    rc = aert_npy_write(npy, g.all, s.test.n, m->latent_size);
  if (rc == 0)
    rc = write_latent_csv(csv, &s.test, g.all, m->latent_size);
  if (rc == 0 && !o->quiet)
    printf("wrote %s and %s (%ld x %ld)\n", npy, csv, s.test.n, m->latent_size);
  free(g.all);
  free(npy);
  free(csv);
  aert_session_close(&s);
  return rc;
}

int aert_predict(const aert_model *m, const aert_options *o) {
  if (o->input)
    return aert_predict_input(m, o, 0);
  if (m->data.kind == AERT_DATA_GEOTIFF || m->data.kind == AERT_DATA_SYNTHETIC_LANDCOVER)
    return aert_predict_tiles(m, o);
  aert_session s;
  gather_t g = {0, m->out_size, NULL};
  char *npy = aert_join(o->out, "predictions.npy");
  int rc = npy ? run_gather(m, o, &s, &g) : -1;
  if (rc == 0)
    rc = aert_npy_write(npy, g.all, s.test.n, m->out_size);
  if (rc == 0 && !o->quiet)
    printf("wrote %s (%ld x %ld)\n", npy, s.test.n, m->out_size);
  free(g.all);
  free(npy);
  aert_session_close(&s);
  return rc;
}
