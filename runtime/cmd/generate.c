/* generate.c - the decoder on its own: `sample` decodes N(0,1) latent draws into a grid
 * (and, for a 2-d latent, the decoded latent plane), `interpolate` decodes the straight line
 * between the latents of two test images. Both need the model's decode entry point; sample
 * also needs a generative model, one whose latent is drawn (`sample(mu, logvar)`). */
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define COLS 8        /* samples.png columns */
#define GRID AERT_LATENT_GRID         /* latent_grid.png: GRID x GRID points */
#define GRID_SPAN AERT_LATENT_GRID_SPAN /* ... evenly over [-GRID_SPAN, GRID_SPAN] on each axis */

static int need_decode(const aert_model *m) {
  if (m->latent_size > 0 && m->latent && m->decode)
    return 0;
  aert_error("model '%s' has no %s; sample and interpolate need a latent the output is decoded "
             "from", m->name, m->latent_size > 0 ? "decode entry point (regenerate it with this aec)"
                                                 : "latent");
  return -1;
}

int aert_is_generative(const aert_model *m) {
  for (int i = 0; i < m->n_graph; i++)
    if (m->graph[i].op == AERT_L_SAMPLE)
      return 1;
  return 0;
}

/* N(0,1) draws decode to something meaningful only when training pulled the latents toward
 * that prior: a plain autoencoder's latents lie anywhere. */
static int need_generative(const aert_model *m) {
  if (aert_is_generative(m))
    return 0;
  aert_error("model '%s' is not generative: its latent is not drawn from a distribution "
             "(no sample(mu, logvar) layer trained with kl_normal), so decoded N(0,1) draws "
             "would not look like data; interpolate and latent work with any latent", m->name);
  return -1;
}

/* Decodes n latents (n x latent_size) into out (n x out_size), a batch at a time; the last
 * batch is padded with copies of its last latent. */
int aert_decode_all(aert_workspace *w, const float *z, long n, float *out) {
  const aert_model *m = w->m;
  long k = m->latent_size;
  float *zb = aert_alloc(sizeof(float) * m->batch * k, "latent batch");
  if (!zb)
    return -1;
  for (long start = 0; start < n; start += m->batch) {
    long real = n - start < m->batch ? n - start : m->batch;
    for (long b = 0; b < m->batch; b++)
      memcpy(zb + b * k, z + (start + (b < real ? b : real - 1)) * k, sizeof(float) * k);
    aert_device_decode(&w->dev, zb);
    memcpy(out + start * m->out_size, aert_device_output(&w->dev), sizeof(float) * real * m->out_size);
  }
  free(zb);
  return 0;
}

static void out_hwc(const aert_model *m, int *h, int *w, int *c) {
  if (m->out_size == m->in_size)
    aert_image_hwc(m->in_rank, m->in_shape, m->in_size, h, w, c);
  else
    aert_image_hwc(m->target_rank, m->target_shape, m->out_size, h, w, c);
}

/* A rows x cols grid of consecutive outputs (NULL past n), with axes over [-span, span] when
 * span > 0. */
static int write_grid(const aert_model *m, const aert_options *o, const char *name,
                      const float *imgs, long n, int rows, int cols, double span) {
  int h, w, c;
  const float **tiles = aert_alloc(sizeof(float *) * rows * cols, "tiles");
  char *path = aert_join(o->out, name);
  int rc = -1;
  if (tiles && path) {
    out_hwc(m, &h, &w, &c);
    for (long i = 0; i < n && i < (long)rows * cols; i++)
      tiles[i] = imgs + i * m->out_size;
    rc = aert_png_grid(path, rows, cols, tiles, h, w, c, NULL, span);
    if (rc == 0 && !o->quiet)
      printf("wrote %s\n", path);
  }
  free(tiles);
  free(path);
  return rc;
}

/* The decoded plane of a 2-d latent: z1 left to right, z2 bottom to top, on the axes that
 * `latent` plots a generative model's 2-d latent on. */
static int latent_grid(const aert_model *m, const aert_options *o, aert_workspace *w) {
  float *z = aert_alloc(sizeof(float) * GRID * GRID * 2, "latent grid");
  float *out = aert_alloc(sizeof(float) * GRID * GRID * m->out_size, "decoded grid");
  int rc = z && out ? 0 : -1;
  for (int r = 0; rc == 0 && r < GRID; r++)
    for (int col = 0; col < GRID; col++) {
      z[(r * GRID + col) * 2] = (float)(-GRID_SPAN + 2 * GRID_SPAN * col / (GRID - 1));
      z[(r * GRID + col) * 2 + 1] = (float)(GRID_SPAN - 2 * GRID_SPAN * r / (GRID - 1));
    }
  if (rc == 0)
    rc = aert_decode_all(w, z, GRID * GRID, out);
  if (rc == 0)
    rc = write_grid(m, o, "latent_grid.png", out, GRID * GRID, GRID, GRID, AERT_LATENT_PLANE_SPAN);
  free(z);
  free(out);
  return rc;
}

int aert_sample(const aert_model *m, const aert_options *o) {
  if (need_decode(m) != 0 || need_generative(m) != 0)
    return -1;
  aert_session s;
  long n = o->samples, k = m->latent_size;
  float *z = NULL, *out = NULL;
  int rc = aert_session_open(&s, m, o);
  if (rc == 0) {
    z = aert_alloc(sizeof(float) * n * k, "latent draws");
    out = aert_alloc(sizeof(float) * n * m->out_size, "samples");
    rc = z && out ? 0 : -1;
  }
  uint64_t seed = aert_hash64(o->seed ^ 0x73616d706c65ULL);
  for (long i = 0; rc == 0 && i < n * k; i++)
    z[i] = aert_normal(seed, (uint64_t)i);
  if (rc == 0)
    rc = aert_decode_all(&s.w, z, n, out);
  if (rc == 0)
    rc = write_grid(m, o, "samples.png", out, n, (int)((n + COLS - 1) / COLS), n < COLS ? (int)n : COLS, 0);
  if (rc == 0 && k == 2)
    rc = latent_grid(m, o, &s.w);
  free(z);
  free(out);
  aert_session_close(&s);
  return rc;
}

/* Latents of test images i and j: both in one batch, forward without noise. */
static int two_latents(aert_session *s, long i, long j, float *zi, float *zj) {
  const aert_model *m = s->w.m;
  for (long b = 0; b < m->batch; b++)
    memcpy(s->w.x + b * m->in_size, s->test.x + (b == 0 ? i : j) * m->in_size,
           sizeof(float) * m->in_size);
  for (long b = 0; s->w.y && b < m->batch; b++)
    memcpy(s->w.y + b * m->target_size, s->test.y + (b == 0 ? i : j) * m->target_size,
           sizeof(float) * m->target_size);
  aert_workspace_forward(&s->w, NULL);
  const float *z = aert_device_latent(&s->w.dev);
  memcpy(zi, z, sizeof(float) * m->latent_size);
  memcpy(zj, z + m->latent_size, sizeof(float) * m->latent_size);
  return 0;
}

int aert_interpolate(const aert_model *m, const aert_options *o) {
  if (need_decode(m) != 0)
    return -1;
  aert_session s;
  long k = m->latent_size, K = o->steps;
  float *z = NULL, *out = NULL;
  int rc = aert_session_open(&s, m, o);
  if (rc == 0 && (o->from >= s.test.n || o->to >= s.test.n))
    rc = (aert_error("--from %ld / --to %ld: the test set has %ld images (0..%ld)", o->from,
                     o->to, s.test.n, s.test.n - 1), -1);
  if (rc == 0) {
    z = aert_alloc(sizeof(float) * (K + 2) * k, "latent line");
    out = aert_alloc(sizeof(float) * (K + 2) * m->out_size, "decoded line");
    rc = z && out ? two_latents(&s, o->from, o->to, z, z + (K + 1) * k) : -1;
  }
  for (long t = 0; rc == 0 && t < K; t++) {
    float a = (float)t / (float)(K - 1);
    for (long j = 0; j < k; j++)
      z[(t + 1) * k + j] = (1 - a) * z[j] + a * z[(K + 1) * k + j];
  }
  if (rc == 0)
    rc = aert_decode_all(&s.w, z + k, K, out + m->out_size);
  if (rc == 0 && m->out_size == m->in_size) {  /* the two originals at the ends */
    memcpy(out, s.test.x + o->from * m->in_size, sizeof(float) * m->in_size);
    memcpy(out + (K + 1) * m->out_size, s.test.x + o->to * m->in_size, sizeof(float) * m->in_size);
  }
  if (rc == 0)
    rc = write_grid(m, o, "interpolation.png", out, K + 2, 1, (int)K + 2, 0);
  free(z);
  free(out);
  aert_session_close(&s);
  return rc;
}
