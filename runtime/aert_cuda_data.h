/* aert_cuda_data.h - how batches reach a CUDA model's device (model.cu's host glue, the
 * device layer's batch and keep / batch_kept of runtime/device.h). Two ways:
 *   - host batches (GeoTIFF patches, PNGs, evaluation): the host's batch is copied into one
 *     of two pinned buffers and from there to one of two device batch buffers by
 *     cudaMemcpyAsync on a copy stream of its own, while the compute stream may still run
 *     the previous step; the compute stream waits on the copy's event, a pinned buffer is
 *     refilled only once its last copy has finished, and a device buffer only once the steps
 *     that read it have;
 *   - a kept set (IDX): the set's bytes are uploaded once, and each step sends only its
 *     example indices; aecd_gather gathers, normalises and augments on the device with the
 *     arithmetic of aert_internal.h that the host's loader uses (its own sine and cosine,
 *     each product and sum rounded apart, which no compiler or GPU fuses), so the batch is
 *     the host's bit for bit.
 * The feed counts what it sends, and prints it at close when AEC_CUDA_FEED is set (the
 * tests check that a kept set's steps send indices alone). */
#ifndef AERT_CUDA_DATA_H
#define AERT_CUDA_DATA_H

#include "aert_cuda_kernels.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  long batch, in, tg;               /* examples; floats per batch of inputs and of targets */
  float *x[2], *t[2];               /* the device's batch buffers; x[cur] is the current one */
  float *hx[2], *ht[2];             /* pinned host buffers of host batches */
  int *index[2], *hindex[2];        /* a kept set's batch indices, on the device and pinned */
  cudaStream_t compute;             /* the stream the model's kernels run on (0: the default) */
  cudaStream_t copy;                /* host batches' copies */
  cudaEvent_t copied[2];            /* the last copy out of pinned slot s has finished */
  cudaEvent_t used[2];              /* the steps that read device slot s have finished */
  int cur;
  /* the kept set */
  unsigned char *bytes;             /* n x in_size bytes */
  float *y;                         /* n x target_size floats, or NULL */
  aert_device_set set;              /* its description (host pointers: the runtime's) */
  aert_ranges augment;              /* the spec's ranges, when set.augment */
  float fill;                       /* augment.c's value outside the image: m->data.offset */
  int h, w, c;                      /* an input image's shape */
  /* the data thread's batch slots, in pinned memory the feed gave it (aecd_feed_host_alloc) */
  struct { const void *p; size_t n; } slots[8];
  /* what crossed to the device */
  unsigned long long kept_bytes, kept_batches, index_bytes, host_batches, host_bytes, direct_batches;
} aecd_feed;

/* n bytes of device memory in *p, zeroed; -1 with a message when there is not enough. */
static inline int aecd_feed_alloc(void **p, size_t n, const char *what) {
  if (cudaMalloc(p, n ? n : 1) != cudaSuccess) {
    *p = NULL;
    cudaGetLastError();
    return aert_error("out of device memory for %s (%zu bytes)", what, n), -1;
  }
  AEC_CHECK(cudaMemset(*p, 0, n ? n : 1));
  return 0;
}

static inline int aecd_feed_pinned(void **p, size_t n, const char *what) {
  if (cudaMallocHost(p, n ? n : 1) != cudaSuccess) {
    *p = NULL;
    cudaGetLastError();
    return aert_error("out of pinned host memory for %s (%zu bytes)", what, n), -1;
  }
  return 0;
}

/* The buffers of a model's batch: batch examples of in floats of inputs and tg of targets
 * each (tg 0: the inputs are the targets). The model's kernels are taken to run on the
 * default stream; a glue that runs them on a stream of its own sets f->compute to it. -1 with a message; aecd_feed_close frees what was made. */
static inline int aecd_feed_open(aecd_feed *f, long batch, long in, long tg) {
  memset(f, 0, sizeof *f);
  f->batch = batch, f->in = in, f->tg = tg;
  for (int s = 0; s < 2; s++) {
    if (aecd_feed_alloc((void **)&f->x[s], sizeof(float) * in * batch, "the inputs") ||
        aecd_feed_alloc((void **)&f->t[s], sizeof(float) * tg * batch, "the targets") ||
        aecd_feed_alloc((void **)&f->index[s], sizeof(int) * batch, "the batch indices") ||
        aecd_feed_pinned((void **)&f->hx[s], sizeof(float) * in * batch, "the inputs") ||
        aecd_feed_pinned((void **)&f->ht[s], sizeof(float) * tg * batch, "the targets") ||
        aecd_feed_pinned((void **)&f->hindex[s], sizeof(int) * batch, "the batch indices"))
      return -1;
    AEC_CHECK(cudaEventCreateWithFlags(&f->copied[s], cudaEventDisableTiming));
    AEC_CHECK(cudaEventCreateWithFlags(&f->used[s], cudaEventDisableTiming));
  }
  /* non-blocking: the legacy default stream, which computes, does not wait for it */
  AEC_CHECK(cudaStreamCreateWithFlags(&f->copy, cudaStreamNonBlocking));
  return 0;
}

static inline void aecd_feed_report(const aecd_feed *f) {
  if (!getenv("AEC_CUDA_FEED"))
    return;
  fprintf(stderr, "aec cuda feed: kept set %llu bytes once; %llu kept batches, %llu bytes of indices;"
          " %llu host batches, %llu bytes through the pinned buffers; %llu straight from the data thread's\n",
          f->kept_bytes, f->kept_batches, f->index_bytes, f->host_batches, f->host_bytes, f->direct_batches);
}

static inline void aecd_feed_drop_set(aecd_feed *f) {
  if (f->bytes) AEC_CHECK(cudaFree(f->bytes));
  if (f->y) AEC_CHECK(cudaFree(f->y));
  f->bytes = NULL, f->y = NULL;
  memset(&f->set, 0, sizeof f->set);
}

static inline void aecd_feed_close(aecd_feed *f) {
  if (f->copy) {
    AEC_CHECK(cudaStreamSynchronize(f->copy));
    aecd_feed_report(f);
    AEC_CHECK(cudaStreamDestroy(f->copy));
  }
  aecd_feed_drop_set(f);
  for (int s = 0; s < 2; s++) {
    void *dev[] = {f->x[s], f->t[s], f->index[s]}, *host[] = {f->hx[s], f->ht[s], f->hindex[s]};
    for (void *q : dev) if (q) AEC_CHECK(cudaFree(q));
    for (void *q : host) if (q) AEC_CHECK(cudaFreeHost(q));
    if (f->copied[s]) AEC_CHECK(cudaEventDestroy(f->copied[s]));
    if (f->used[s]) AEC_CHECK(cudaEventDestroy(f->used[s]));
  }
  memset(f, 0, sizeof *f);
}

/* The current batch: its device buffers, and which of the two they are (a step captured as
 * a CUDA graph reads fixed pointers: one graph a slot). */
static inline int aecd_feed_slot(const aecd_feed *f) { return f->cur; }
static inline float *aecd_feed_x(const aecd_feed *f) { return f->x[f->cur]; }
static inline float *aecd_feed_t(const aecd_feed *f) { return f->t[f->cur]; }

/* The slot the next batch goes to. Everything queued on the compute stream so far may read
 * the current slot: its `used` event marks their end. */
static inline int aecd_feed_next(aecd_feed *f) {
  AEC_CHECK(cudaEventRecord(f->used[f->cur], f->compute));
  return f->cur ^ 1;
}

/* Pinned host memory for the data thread's batch slots (device.h's host_alloc): NULL when
 * there is none, or no room left to remember it. */
static inline void *aecd_feed_host_alloc(aecd_feed *f, size_t n) {
  for (auto &slot : f->slots) {
    if (slot.p) continue;
    void *p = NULL;
    if (cudaMallocHost(&p, n) != cudaSuccess) return cudaGetLastError(), nullptr;
    slot.p = p, slot.n = n;
    return p;
  }
  return NULL;
}

static inline void aecd_feed_host_free(aecd_feed *f, void *p) {
  for (auto &slot : f->slots)
    if (slot.p == p) slot.p = NULL, slot.n = 0;
  AEC_CHECK(cudaFreeHost(p));
}

/* Whether n bytes at p lie in one of the data thread's pinned slots. */
static inline int aecd_feed_pinned_slot(const aecd_feed *f, const void *p, size_t n) {
  for (const auto &slot : f->slots)
    if (slot.p && (const char *)p >= (const char *)slot.p && (const char *)p + n <= (const char *)slot.p + slot.n)
      return 1;
  return n == 0;
}

/* A host batch (batch x in floats, and tg floats of targets): copied from where it is when
 * the data thread made it in pinned memory, else through the feed's pinned buffers. */
static inline void aecd_feed_host(aecd_feed *f, const float *x, const float *y) {
  int s = aecd_feed_next(f);
  size_t nx = sizeof(float) * f->in * f->batch, nt = sizeof(float) * f->tg * f->batch;
  int direct = aecd_feed_pinned_slot(f, x, nx) && aecd_feed_pinned_slot(f, y, nt);
  if (!direct) {
    AEC_CHECK(cudaEventSynchronize(f->copied[s]));   /* the pinned buffer's last copy is done */
    memcpy(f->hx[s], x, nx);
    if (nt) memcpy(f->ht[s], y, nt);
    x = f->hx[s], y = f->ht[s];
  }
  AEC_CHECK(cudaStreamWaitEvent(f->copy, f->used[s], 0));   /* no step reads the device slot */
  AEC_CHECK(cudaMemcpyAsync(f->x[s], x, nx, cudaMemcpyHostToDevice, f->copy));
  if (nt) AEC_CHECK(cudaMemcpyAsync(f->t[s], y, nt, cudaMemcpyHostToDevice, f->copy));
  AEC_CHECK(cudaEventRecord(f->copied[s], f->copy));
  AEC_CHECK(cudaStreamWaitEvent(f->compute, f->copied[s], 0));   /* the next step computes on it */
  /* the data thread refills its slot once backward has run, which may be before the copy
   * would end by itself: wait for the copy alone (the compute stream's kernels run on) */
  if (direct) AEC_CHECK(cudaEventSynchronize(f->copied[s]));
  f->cur = s;
  f->host_batches++;
  f->direct_batches += direct;
  f->host_bytes += nx + nt;
}

/* Uploads a set for aecd_feed_kept: once, the bytes (and the targets). -1 with a note when
 * it does not fit (the trainer then sends host batches); the feed then holds no set. */
static inline int aecd_feed_keep(aecd_feed *f, const aert_model *m, const aert_device_set *set) {
  aecd_feed_drop_set(f);
  if (set->in_size != f->in || set->n > 0x7fffffffL || (set->y && set->target_size != f->tg)) {
    fprintf(stderr, "note: the CUDA device does not keep a set of %ld examples of %ld values (its batches take %ld); "
            "batches come from the host\n", set->n, set->in_size, f->in);
    return -1;
  }
  size_t nb = (size_t)set->n * set->in_size, ny = set->y ? sizeof(float) * set->n * set->target_size : 0;
  void *bytes = NULL, *y = NULL;
  if (cudaMalloc(&bytes, nb) != cudaSuccess)
    bytes = NULL;
  else if (ny && cudaMalloc(&y, ny) != cudaSuccess)
    y = NULL;
  f->bytes = (unsigned char *)bytes, f->y = (float *)y;
  if (!bytes || (ny && !y)) {
    cudaGetLastError();
    fprintf(stderr, "note: the training set (%zu bytes) does not fit in device memory; batches come from the host\n", nb + ny);
    return aecd_feed_drop_set(f), -1;
  }
  AEC_CHECK(cudaMemcpy(f->bytes, set->bytes, nb, cudaMemcpyHostToDevice));
  if (ny) AEC_CHECK(cudaMemcpy(f->y, set->y, ny, cudaMemcpyHostToDevice));
  f->set = *set;
  aert_ranges r = {m->data.shift, m->data.rotate, m->data.zoom, m->data.flip_h, m->data.flip_v};
  f->augment = r;
  f->fill = m->data.offset;
  aert_image_hwc(m->in_rank, m->in_shape, m->in_size, &f->h, &f->w, &f->c);
  f->kept_bytes += nb + ny;
  return 0;
}

/* One input value of a kept example: its byte, normalised as data_idx.c normalises it. */
static __device__ __forceinline__ float aecd_norm(unsigned char v, float scale, float offset) {
  return aert_add_rn(aert_mul_rn((float)v, scale), offset);
}

/* Value j (HWC) of example e's input, through its augmentation: augment.c's bilinear
 * resampling of the normalised image, the same taps in the same order. */
static __device__ float aecd_augmented(const unsigned char *img, long j, aert_ranges a, float fill, uint64_t seed,
                                       long epoch, long e, int h, int w, int c, float scale, float offset) {
  aert_transform t;
  aert_augment_transform(a, seed, epoch, e, &t);
  float cs, sn, sx, sy;
  aert_sincos(t.angle, &sn, &cs);
  cs /= t.scale, sn /= t.scale;
  int k = (int)(j % c), px = (int)(j / c % w), py = (int)(j / c / w);
  aert_augment_source(&t, cs, sn, px, py, h, w, &sx, &sy);
  int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
  float fx = sx - x0, fy = sy - y0, v = 0;
  for (int q = 0; q < 4; q++) {
    int xx = x0 + (q & 1), yy = y0 + (q >> 1);
    float wt = aert_bilinear_weight(q, fx, fy);
    if (wt != 0)
      v = aert_add_rn(v, aert_mul_rn(wt, xx >= 0 && yy >= 0 && xx < w && yy < h
                                             ? aecd_norm(img[((long)yy * w + xx) * c + k], scale, offset)
                                             : fill));
  }
  return v;
}

/* The batch of examples index[0..batch-1]: inputs (normalised, augmented when augment) and
 * the targets of their own, if any. One thread a value. */
__global__ void AECD_BOUNDS aecd_gather(float *__restrict__ x, float *__restrict__ t, const unsigned char *__restrict__ bytes,
                                        const float *__restrict__ y, const int *__restrict__ index, long batch, long in,
                                        long tsize, float scale, float offset, int augment, aert_ranges a, float fill, uint64_t seed,
                                        long epoch, int h, int w, int c) {
  AECD_FOR(i, batch * in) {
    long e = index[i / in], j = i % in;
    const unsigned char *img = bytes + e * in;
    x[i] = augment ? aecd_augmented(img, j, a, fill, seed, epoch, e, h, w, c, scale, offset) : aecd_norm(img[j], scale, offset);
  }
  AECD_FOR(i, batch * tsize) t[i] = y[(long)index[i / tsize] * tsize + i % tsize];
}

/* The batch of the kept set's examples index[0..batch-1] for epoch: only the indices cross. */
static inline void aecd_feed_kept(aecd_feed *f, const long *index, long epoch) {
  int s = aecd_feed_next(f);
  size_t ni = sizeof(int) * f->batch;
  AEC_CHECK(cudaEventSynchronize(f->copied[s]));
  for (long b = 0; b < f->batch; b++)
    f->hindex[s][b] = (int)index[b];
  AEC_CHECK(cudaMemcpyAsync(f->index[s], f->hindex[s], ni, cudaMemcpyHostToDevice, f->compute));
  AEC_CHECK(cudaEventRecord(f->copied[s], f->compute));
  const aert_device_set *set = &f->set;
  long tsize = set->y ? set->target_size : 0, n = f->batch * (f->in > tsize ? f->in : tsize);
  AEC_LAUNCH(aecd_gather, dim3((unsigned)((n + 1023) / 1024)), AECD_THREADS, 0, f->compute, f->x[s], f->t[s],
             (const unsigned char *)f->bytes, (const float *)f->y, (const int *)f->index[s], f->batch, f->in,
             tsize, set->scale, set->offset, set->augment, f->augment, f->fill, set->seed, epoch, f->h, f->w, f->c);
  f->cur = s;
  f->kept_batches++;
  f->index_bytes += ni;
}

#endif
