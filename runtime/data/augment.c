/* augment.c - training batches made on a background thread, one batch ahead of the step
 * that uses them (a queue of two slots), with the spec's augmentations applied on the fly:
 * a random shift (pixels), rotation (degrees), zoom (fraction) and flips, drawn per example
 * from (seed, epoch, example index) and applied identically to the input and an image
 * target. Images are resampled bilinearly (nearest for class maps), outside is 0 after
 * normalisation's offset (the data's black) for images and the ignore class for maps. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
/* Nothing in this file is contracted into FMAs: aert_mul_rn and aert_add_rn round each
 * operation on its own without going through memory. */
#define AERT_NO_CONTRACTION
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

int aert_augment_active(const aert_data *d) {
  return d->shift > 0 || d->rotate > 0 || d->zoom > 0 || d->flip_h || d->flip_v;
}

/* The inverse map of one example's transform: source (sx, sy) of output pixel (x, y). */
void aert_augment_draw(const aert_data *d, uint64_t seed, long epoch, long index,
                       aert_transform *t) {
  aert_ranges r = {d->shift, d->rotate, d->zoom, d->flip_h, d->flip_v};
  aert_augment_transform(r, seed, epoch, index, t);
}

/* Where each output pixel of row y takes its value: the top-left source pixel (ix, iy) and
 * the fractions (fx, fy) of its bilinear weights, or for nearest the rounded source pixel
 * (rintf rounds as lrintf did, to nearest, ties to even, without a call). Also compiled
 * for AVX2 and AVX-512 (AERT_CLONES), where floorf and rintf are one instruction each: the
 * same bits on any clone. t is copied so that its flips are known not to change. */
AERT_CLONES static void source_row(const aert_transform *tp, float cs, float sn, int y, int h, int w,
                                   int nearest, int *restrict ix, int *restrict iy, float *restrict fx,
                                   float *restrict fy) {
  const aert_transform t = *tp;
  if (nearest) {
    for (int x = 0; x < w; x++) {
      float sx, sy;
      aert_augment_source(&t, cs, sn, x, y, h, w, &sx, &sy);
      ix[x] = (int)rintf(sx), iy[x] = (int)rintf(sy);
    }
    return;
  }
  for (int x = 0; x < w; x++) {
    float sx, sy;
    aert_augment_source(&t, cs, sn, x, y, h, w, &sx, &sy);
    float fx0 = floorf(sx), fy0 = floorf(sy);
    fx[x] = sx - fx0, fy[x] = sy - fy0;
    ix[x] = (int)fx0, iy[x] = (int)fy0;
  }
}

/* One output row of the bilinear resampling: each pixel's value per channel is the sum, in
 * tap order, of weight x source value over the taps of nonzero weight (fills outside the
 * image). Channels go four at a time as one vector (NAIP's four bands, a stack of 8 or 12),
 * the rest one at a time: the same operations on each lane, so the same bits as one channel
 * at a time. */
typedef float aert_f4 __attribute__((vector_size(16)));
static void bilinear_row(const float *restrict src, float *restrict o, const int *ix, const int *iy,
                         const float *fx, const float *fy, int h, int w, int c, const float *fills) {
  for (int x = 0; x < w; x++, o += c) {
    const float *tap[4];
    float wt[4];
    long at = ((long)iy[x] * w + ix[x]) * c;
    int inside = ix[x] >= 0 && iy[x] >= 0 && ix[x] + 1 < w && iy[x] + 1 < h;
    for (int j = 0; j < 4; j++) {
      int xx = ix[x] + (j & 1), yy = iy[x] + (j >> 1);
      tap[j] = inside || (xx >= 0 && yy >= 0 && xx < w && yy < h) ? src + at + ((j >> 1) * (long)w + (j & 1)) * c : fills;
      wt[j] = aert_bilinear_weight(j, fx[x], fy[x]);
    }
    int k = 0;
    for (; k + 4 <= c; k += 4) {
      aert_f4 v = {0, 0, 0, 0}, t;
      for (int j = 0; j < 4; j++)
        if (wt[j] != 0)
          memcpy(&t, tap[j] + k, sizeof t), v = v + wt[j] * t;
      memcpy(o + k, &v, sizeof v);
    }
    for (; k < c; k++) {
      float v = 0;
      for (int j = 0; j < 4; j++)
        if (wt[j] != 0)
          v = aert_add_rn(v, aert_mul_rn(wt[j], tap[j][k]));
      o[k] = v;
    }
  }
}

/* Resamples one HWC image through t, about the image centre. nearest: class maps. The
 * arithmetic is aert_internal.h's, which a device's augmentation shares. */
void aert_augment_image(const aert_transform *t, const float *src, float *dst, int h, int w,
                        int c, float fill, int nearest) {
  float cs, sn, fills[c], fx[w], fy[w];
  int ix[w], iy[w];
  for (int k = 0; k < c; k++)
    fills[k] = fill;
  aert_sincos(t->angle, &sn, &cs);
  cs /= t->scale, sn /= t->scale;
  for (int y = 0; y < h; y++) {
    source_row(t, cs, sn, y, h, w, nearest, ix, iy, fx, fy);
    float *o = dst + (long)y * w * c;
    if (nearest) {
      for (int x = 0; x < w; x++, o += c) {
        int in = ix[x] >= 0 && iy[x] >= 0 && ix[x] < w && iy[x] < h;
        for (int k = 0; k < c; k++)
          o[k] = in ? src[((long)iy[x] * w + ix[x]) * c + k] : fill;
      }
      continue;
    }
    bilinear_row(src, o, ix, iy, fx, fy, h, w, c, fills);
  }
}

/* Augments the batch in place; order[start + b] is example b's index in the dataset. */
static void augment_batch(const aert_model *m, const long *order, long start, long epoch,
                          uint64_t seed, float *x, float *y, float *tmp) {
  int h, w, c;
  aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &h, &w, &c);
  /* an image target is [H, W, C]; a class map is [H, W] (one class per pixel) */
  int map2 = m->target_kind == AERT_TARGET_CLASSES && m->target_rank == 2;
  int th = m->target_rank == 3 || map2 ? m->target_shape[0] : 0;
  int tw = m->target_rank == 3 || map2 ? m->target_shape[1] : 0, tc = map2 ? 1 : m->target_shape[2];
  int same = y && th == h && tw == w && m->target_kind != AERT_TARGET_INPUT;
  int map = m->target_kind == AERT_TARGET_CLASSES;
  for (int b = 0; b < m->batch; b++) {
    aert_transform t;
    aert_augment_draw(&m->data, seed, epoch, order ? order[start + b] : start + b, &t);
    float *xb = x + (long)b * m->in_size;
    memcpy(tmp, xb, sizeof(float) * m->in_size);
    aert_augment_image(&t, tmp, xb, h, w, c, m->data.offset, 0);
    if (same) {
      float *yb = y + (long)b * m->target_size;
      memcpy(tmp, yb, sizeof(float) * m->target_size);
      aert_augment_image(&t, tmp, yb, th, tw, tc, map ? -1.0f : m->data.offset, map);
    }
  }
}

/* ---- the loader thread -------------------------------------------------------------- */
static void *produce(void *arg) {
  aert_loader *l = arg;
  const aert_model *m = l->m;
  for (long b = l->first; b < l->nb; b++) {
    int s = (int)(b & 1);
    pthread_mutex_lock(&l->mu);
    while (l->full[s] && !l->stop)
      pthread_cond_wait(&l->cv, &l->mu);
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (stop)
      break;
    /* random patches of streamed tiles are drawn anew each epoch */
    uint64_t draw = aert_hash64(l->seed ^ aert_hash64(0x7061746368ULL + (uint64_t)l->epoch)) | 1;
    long start = b * l->stride + l->offset;
    l->failed[s] = aert_batch_fill_drawn(m, l->ds, l->order, start, draw, l->x[s], l->y[s]) < 0;
    if (l->augment && !l->failed[s])
      augment_batch(m, l->order, start, l->epoch, l->seed, l->x[s], l->y[s], l->tmp);
    pthread_mutex_lock(&l->mu);
    l->full[s] = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->failed[s])
      break;   /* the trainer stops at this batch */
  }
  return NULL;
}

/* One slot's floats: the device's pinned memory when it has some, else malloc's. */
static float *slot_alloc(aert_loader *l, long floats, int *pinned) {
  float *p = aert_device_host_alloc(l->dev, sizeof(float) * floats, pinned);
  if (!p)
    aert_error("out of memory for the loader's batch (%ld bytes)", (long)sizeof(float) * floats);
  return p;
}

int aert_loader_init(aert_loader *l, const aert_model *m, const aert_dataset *ds) {
  return aert_loader_init_on(l, m, ds, NULL);
}

int aert_loader_init_on(aert_loader *l, const aert_model *m, const aert_dataset *ds, aert_device *dev) {
  memset(l, 0, sizeof *l);
  l->m = m;
  l->ds = ds;
  l->dev = dev;
  l->augment = aert_augment_active(&m->data);
  l->stride = m->batch;
  long tsize = m->target_kind != AERT_TARGET_INPUT ? m->target_size : 0;
  long big = m->in_size > tsize ? m->in_size : tsize;
  for (int s = 0; s < 2; s++) {
    l->x[s] = slot_alloc(l, m->batch * m->in_size, &l->pinned[s][0]);
    l->y[s] = tsize ? slot_alloc(l, m->batch * tsize, &l->pinned[s][1]) : NULL;
    if (!l->x[s] || (tsize && !l->y[s]))
      return aert_loader_free(l), -1;
  }
  l->tmp = aert_alloc(sizeof(float) * big, "augmentation scratch");
  if (!l->tmp)
    return aert_loader_free(l), -1;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->sync = 1;
  return 0;
}

int aert_loader_start(aert_loader *l, const long *order, long first, long nb, uint64_t seed,
                      long epoch) {
  l->order = order;
  l->first = first;
  l->nb = nb;
  l->seed = seed;
  l->epoch = epoch;
  l->full[0] = l->full[1] = 0;
  l->stop = 0;
  l->waited = 0;
  if (pthread_create(&l->thread, NULL, produce, l) != 0)
    return aert_error("cannot start the data thread"), -1;
  l->running = 1;
  return 0;
}

/* Waits for batch b (counting the time waited); its slot stays ours until release. */
int aert_loader_take(aert_loader *l, long b, float **x, float **y) {
  int s = (int)(b & 1);
  double t0 = aert_now();
  pthread_mutex_lock(&l->mu);
  while (!l->full[s])
    pthread_cond_wait(&l->cv, &l->mu);
  pthread_mutex_unlock(&l->mu);
  l->waited += aert_now() - t0;
  *x = l->x[s];
  *y = l->y[s];
  return l->failed[s] ? -1 : 0;
}

void aert_loader_release(aert_loader *l, long b) {
  pthread_mutex_lock(&l->mu);
  l->full[b & 1] = 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

/* Stops the thread (also mid-epoch, after a failed step) and joins it. */
void aert_loader_stop(aert_loader *l) {
  if (!l->running)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  l->running = 0;
}

void aert_loader_free(aert_loader *l) {
  aert_loader_stop(l);
  for (int s = 0; s < 2; s++) {
    if (l->x[s])
      aert_device_host_free(l->dev, l->x[s], l->pinned[s][0]);
    if (l->y[s])
      aert_device_host_free(l->dev, l->y[s], l->pinned[s][1]);
  }
  free(l->tmp);
  if (l->sync) {
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
  }
  memset(l, 0, sizeof *l);
}
