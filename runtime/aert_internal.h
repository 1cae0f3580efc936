/* aert_internal.h - what the runtime's files share with each other and with the tests;
 * not part of the model ABI (that is aert.h). Each banner names the file that defines
 * the declarations below it. Functions that fail print one "aec: ..." line and return -1. */
#ifndef AERT_INTERNAL_H
#define AERT_INTERNAL_H

#include <pthread.h>
#include <stdio.h>
#include "aert.h"
#include "device.h"

/* ---- io.c: checked I/O, atomic writes, folders ---------------------------------- */
void aert_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *aert_alloc(size_t n, const char *what);           /* zeroed; NULL + message */
/* zeroed, 64-byte aligned (what the kernels' vectors read and write: parameters,
 * gradients, the arena, optimizer state; calloc's large blocks sit 16 bytes past a page,
 * so that every AVX-512 vector would straddle two cache lines); NULL + message */
void *aert_alloc_aligned(size_t n, const char *what);
char *aert_join(const char *dir, const char *name);     /* malloc'd "dir/name" */
FILE *aert_open(const char *path, const char *mode);
int aert_read(FILE *f, void *buf, size_t n, const char *path);
int aert_write(FILE *f, const void *buf, size_t n, const char *path);
int aert_close(FILE *f, const char *path);
/* A whole file in a fresh buffer of *n bytes, plus a NUL after them so text can be read as a string. */
int aert_read_file(const char *path, unsigned char **buf, size_t *n);
int aert_mkdir_p(const char *path);
int aert_is_folder(const char *path);   /* 1: path names a folder */

/* A file written to path.tmp and renamed over path only once complete and synced. */
typedef struct {
  FILE *f;
  char *path, *tmp;
} aert_atomic;
int aert_atomic_open(aert_atomic *a, const char *path);
int aert_atomic_commit(aert_atomic *a);
void aert_atomic_abort(aert_atomic *a);
int aert_write_file_atomic(const char *path, const void *buf, size_t n);

/* ---- profile.c: per-kernel timing of training steps, the machine's roofline -------- */
typedef struct {
  const aert_model *m;
  const char *path, *source;   /* source: "train" or "bench" */
  long steps;
  double t0, t1;               /* this step's start and its optimizer's start, ms */
  double step_ms, optim_ms;    /* totals over the steps */
  double first_step_ms, first_optim_ms, *first;   /* the first step, kept apart */
  double peak_gflops, bandwidth_gbs;               /* probed when the profile began */
} aert_profile;
/* Checks that the model carries timing tables and that path's folder is writable. */
int aert_profile_begin(aert_profile *p, const aert_model *m, const char *path, const char *source);  /* path NULL: not written */
/* Around one step: kernels are timed from step_begin to optim_begin. NULL p: no-ops. */
void aert_profile_step_begin(aert_profile *p);
void aert_profile_optim_begin(aert_profile *p);
void aert_profile_step_end(aert_profile *p);
/* Probes peak FLOP/s and memory bandwidth again (keeping the better of the two probes),
 * writes the JSON atomically. */
int aert_profile_write(aert_profile *p);
void aert_profile_free(aert_profile *p);

/* ---- data.c: datasets from the data sources, shuffling, batches ------------------ */
typedef struct aert_source aert_source;

typedef struct {
  long n;                /* examples */
  long in_size, target_size;
  float *x;              /* n*in_size, normalised */
  unsigned char *bytes;  /* IDX inputs: the n*in_size bytes that x normalises (a device may
                            keep them, device.h), else NULL */
  float *y;              /* n*target_size, NULL when the target is the input */
  int *label;            /* raw label per example, NULL when the data has none */
  int owner;             /* 1: frees its arrays; 0: a view into another dataset */
  const aert_source *source;   /* the source that loaded it (NULL: made by hand, in memory) */
  struct aert_tiles *tiles;  /* streamed GeoTIFF patches (x, y, label NULL), or NULL */
  int t0, t1;            /* tiles: this view's tiles */
  int grid;              /* tiles: 1 a fixed grid of patches, 0 random patches per epoch */
} aert_dataset;

/* One kind of data (m->data.kind): a file of its own defines it, and one row of data.c's
 * table names it. A source that holds the whole set in memory (x, y, label) leaves split,
 * fill and free NULL: data.c then splits it by examples, copies its batches and frees its
 * arrays. A source that streams its examples brings all three. */
struct aert_source {
  /* train: the whole training set (split by aert_data_split), else the test set; only the
   * first limit examples when limit > 0. On failure ds holds nothing. */
  int (*load)(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds);
  /* The last validation part of the set as val, the rest as train: views of all. */
  void (*split)(aert_dataset *all, double validation, aert_dataset *train, aert_dataset *val);
  /* A batch from examples order[start...], as aert_batch_fill_drawn. */
  int (*fill)(const aert_model *m, const aert_dataset *ds, const long *order, long start,
              uint64_t draw, float *x, float *y);
  void (*free)(aert_dataset *ds);   /* what the source holds besides x, y and label */
};

extern const aert_source aert_idx_source;        /* data_idx.c: IDX files, image pairs */
extern const aert_source aert_png_source;        /* data_png.c: a folder of PNG images */
extern const aert_source aert_geotiff_source;    /* data_geo.c: GeoTIFF tiles */
extern const aert_source aert_synthetic_source;  /* data_synth.c: synthetic land-cover tiles */

#define AERT_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

const char *aert_data_dir(const aert_model *m, const char *override);
int aert_data_load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds);
void aert_data_split(aert_dataset *all, double validation, aert_dataset *train, aert_dataset *val);
void aert_data_free(aert_dataset *ds);
void aert_shuffle(long *order, long n, uint64_t seed, long epoch);
/* Fills a batch from examples order[start...] (padding a partial batch with its last
 * example); returns the real examples, or -1 when the data could not be read (message
 * printed). draw: the epoch's random patch positions for streamed tiles (0: fixed). */
int aert_batch_fill(const aert_model *m, const aert_dataset *ds, const long *order, long start,
                    float *x, float *y);
int aert_batch_fill_drawn(const aert_model *m, const aert_dataset *ds, const long *order,
                          long start, uint64_t draw, float *x, float *y);

/* ---- data_idx.c: IDX files (Fashion-MNIST layout), gzip or raw ------------------------ */
typedef struct {
  int ndim;
  int dims[4];
  long count, item;      /* dims[0], product of the other dims */
  unsigned char *data;   /* count*item bytes */
} aert_idx;

int aert_idx_read(const char *path, aert_idx *idx);
/* The scale and offset that take an IDX byte to the model's input: the spec's, else 1/255. */
void aert_idx_norm(const aert_model *m, float *scale, float *offset);
/* ds as a set that a device may keep (device.h), its augmentation drawn from seed: 1, or 0
 * when its batches must be made on the host (not an IDX set of bytes, or a class map that
 * augmentation would transform with its input). */
int aert_device_set_of(const aert_model *m, const aert_dataset *ds, uint64_t seed,
                       aert_device_set *set);

/* ---- data_png.c: PNG images, one folder of them or image pairs from two folders -------- */
/* 1 when either path names a folder: the pair is read as PNG folders, not IDX files. */
int aert_png_pairs(const char *inputs, const char *targets);
/* Every *.png of inputs, sorted by name, with the file of the same name in targets (the
 * first `limit` pairs when limit > 0), converted to the model's input and target shapes. */
int aert_png_pairs_load(const aert_model *m, const char *inputs, const char *targets, long limit,
                        aert_dataset *ds);

/* One PNG, an h x w image, into dst as c channels on the model's scale (what: "input" or
 * "target", for messages); the *.png files of a folder, sorted (malloc'd names). */
int aert_png_read(const aert_model *m, const char *path, int h, int w, int c, const char *what,
                  float *dst);
int aert_png_list(const char *dir, char ***names, long *n);

/* ---- data_geo.c: land-cover patches streamed from GeoTIFF tiles ---------------------- */
#define AERT_MAX_LAYERS 16
typedef struct aert_tiles aert_tiles;
typedef struct aert_train_state aert_train_state;
void aert_tiles_configure(int threads, int skip_bad);   /* --data-threads, --bad-tiles */
/* 1: the ranks of a data-parallel run open tiles together (collectively): rank 0 writes
 * synthetic tiles, lists and checks them, and sends the list to the others. */
void aert_tiles_share(int on);
/* 0 on a data-parallel rank other than 0 while the ranks share tiles: rank 0 alone writes
 * and checks the files. */
int aert_tiles_leader(void);
/* The folder of a split's tiles: dir/train or dir/test, unless the spec names others. */
char *aert_tiles_folder(const aert_model *m, const char *dir, int train);
/* The GeoTIFF source's operations, which the synthetic source shares. */
int aert_tiles_load(const aert_model *m, const char *dir, int train, long limit, aert_dataset *ds);
void aert_tiles_split(aert_dataset *all, double validation, aert_dataset *train, aert_dataset *val);
int aert_tiles_fill(const aert_model *m, const aert_dataset *ds, const long *order, long start,
                    uint64_t draw, float *x, float *y);
void aert_tiles_close(aert_dataset *ds);   /* frees the set's tiles */
void aert_tiles_free(aert_tiles *t);
void aert_tiles_rate(aert_tiles *t, long *patches, double *seconds);   /* since the last call */
void aert_tiles_get_norm(const aert_tiles *t, aert_train_state *st);
void aert_tiles_class_counts(const aert_tiles *t, double *counts);   /* sampled labels */
int aert_tiles_set_norm(aert_tiles *t, const aert_train_state *st, const char *from);
struct aert_options;
int aert_predict_tiles(const aert_model *m, const struct aert_options *o);
/* predict --input of tiles without labels: those of dir (only: just that tile, or NULL), or
 * scene, one file holding every input band (a whole scene of any size), when not NULL. */
int aert_predict_tiles_input(const aert_model *m, const struct aert_options *o, const char *dir,
                             const char *only,
                             const char *scene);
/* The first layer's file name ("naip-new" of "naip-new:1-3"), which names unlabelled tiles. */
void aert_tiles_first_layer(const aert_model *m, char *name, size_t n);

/* ---- augment.c: augmentation on the fly, the background batch loader --------------- */
typedef struct {
  float dx, dy;          /* shift, pixels */
  float angle, scale;    /* rotation (radians), zoom factor */
  int flip_h, flip_v;
} aert_transform;

int aert_augment_active(const aert_data *d);
void aert_augment_draw(const aert_data *d, uint64_t seed, long epoch, long index,
                       aert_transform *t);

/* A function of the library (built for any x86-64) also compiled for AVX2 and AVX-512, the
 * loader picking the clone the CPU runs; without FMA contraction, so that every clone
 * rounds each operation as the baseline build does (optim.c's Adam, augment.c's rows). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AERT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("-ffp-contract=off")))
#else
#define AERT_CLONES
#endif

/* a * b and a + b, each rounded on its own: neither a compiler (-ffp-contract, -march with
 * FMA) nor a GPU fuses them, so that the host's normalisation and augmentation and the
 * device's (aert_cuda_data.h) give the same bits. */
static inline AERT_HD float aert_mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#elif defined(AERT_NO_CONTRACTION)   /* a file compiled without contraction */
  return a * b;
#else
  volatile float r = a * b;
  return r;
#endif
}
static inline AERT_HD float aert_add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#elif defined(AERT_NO_CONTRACTION)
  return a + b;
#else
  volatile float r = a + b;
  return r;
#endif
}

/* The ranges of the spec's augmentation (aert_data's), apart: what a device's kernel takes. */
typedef struct {
  float shift, rotate, zoom;
  int flip_h, flip_v;
} aert_ranges;

/* One example's transform, drawn from (seed, epoch, example index): aert_augment_draw, on the
 * host and on a device. */
static inline AERT_HD void aert_augment_transform(aert_ranges r, uint64_t seed, long epoch,
                                                  long index, aert_transform *t) {
  uint64_t s = aert_hash64(seed ^ aert_hash64(0x617567ULL + (uint64_t)epoch * 0x100000001ULL) ^
                           aert_hash64((uint64_t)index));
  t->dx = r.shift * (2 * aert_uniform(s, 0) - 1);
  t->dy = r.shift * (2 * aert_uniform(s, 1) - 1);
  t->angle = r.rotate * (2 * aert_uniform(s, 2) - 1) * (float)(M_PI / 180.0);
  t->scale = aert_add_rn(1, aert_mul_rn(r.zoom, 2 * aert_uniform(s, 3) - 1));
  t->flip_h = r.flip_h && aert_uniform(s, 4) < 0.5f;
  t->flip_v = r.flip_v && aert_uniform(s, 5) < 0.5f;
}

/* sin and cos of an angle of at most a few turns, for augmentation: the angle less the
 * nearest multiple of pi/2 (in two parts), then the even and odd polynomials of Cephes'
 * sinf and cosf on [-pi/4, pi/4], every operation rounded on its own. The same bits on the
 * host and on a device, where cosf and sinf differ and need a stack frame for huge angles. */
static inline AERT_HD void aert_sincos(float a, float *s, float *c) {
  float j = rintf(aert_mul_rn(a, 0.636619772f));   /* 2 / pi */
  float x = aert_add_rn(aert_add_rn(a, -aert_mul_rn(j, 1.57079637f)), aert_mul_rn(j, 4.37113883e-8f));
  float z = aert_mul_rn(x, x);
  float sp = aert_add_rn(aert_mul_rn(aert_add_rn(aert_mul_rn(-1.9515295891e-4f, z), 8.3321608736e-3f), z), -1.6666654611e-1f);
  float sv = aert_add_rn(aert_mul_rn(aert_mul_rn(sp, z), x), x);
  float cp = aert_add_rn(aert_mul_rn(aert_add_rn(aert_mul_rn(2.443315711809948e-5f, z), -1.388731625493765e-3f), z),
                         4.166664568298827e-2f);
  float cv = aert_add_rn(aert_add_rn(aert_mul_rn(aert_mul_rn(cp, z), z), -aert_mul_rn(0.5f, z)), 1.0f);
  int q = (int)j & 3;
  *s = q == 0 ? sv : q == 1 ? cv : q == 2 ? -sv : -cv;
  *c = q == 0 ? cv : q == 1 ? -sv : q == 2 ? -cv : sv;
}

/* Where output pixel (x, y) of an h x w image takes its value: the inverse map of t about
 * the image centre (undo the shift, then the rotation and zoom, then the flips); cs and sn
 * are the cosine and the sine of t->angle (aert_sincos) over t->scale. */
static inline AERT_HD void aert_augment_source(const aert_transform *t, float cs, float sn, int x,
                                               int y, int h, int w, float *sx, float *sy) {
  float cx = (w - 1) / 2.0f, cy = (h - 1) / 2.0f;
  float ox = x - cx - t->dx, oy = y - cy - t->dy;
  *sx = aert_add_rn(aert_add_rn(aert_mul_rn(cs, ox), aert_mul_rn(sn, oy)), cx);
  *sy = aert_add_rn(aert_add_rn(aert_mul_rn(-sn, ox), aert_mul_rn(cs, oy)), cy);
  if (t->flip_h) *sx = (w - 1) - *sx;
  if (t->flip_v) *sy = (h - 1) - *sy;
}

/* The weight of bilinear tap j (0..3: x0,y0 / x0+1,y0 / x0,y0+1 / x0+1,y0+1) at fractions
 * (fx, fy). */
static inline AERT_HD float aert_bilinear_weight(int j, float fx, float fy) {
  return aert_mul_rn((j & 1) ? fx : 1 - fx, (j >> 1) ? fy : 1 - fy);
}
void aert_augment_image(const aert_transform *t, const float *src, float *dst, int h, int w,
                        int c, float fill, int nearest);

/* Batches 0..nb-1 of one epoch, filled (and augmented) by a thread one batch ahead. */
typedef struct {
  const aert_model *m;
  const aert_dataset *ds;
  const long *order;
  long first, nb, epoch;   /* batches first..nb-1 of epoch */
  long stride, offset;     /* batch b starts at order[b * stride + offset]: batch, 0 in one
                              process; the global batch and this rank's slice with ranks */
  uint64_t seed;
  int augment, running, sync, stop, full[2], failed[2];
  float *x[2], *y[2], *tmp;
  aert_device *dev;      /* whose pinned memory holds x and y (pinned[s][0], [s][1]), or NULL */
  int pinned[2][2];
  double waited;         /* seconds the trainer waited for data this epoch */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} aert_loader;

int aert_loader_init(aert_loader *l, const aert_model *m, const aert_dataset *ds);
/* The same, its two slots in dev's pinned host memory when it has some (device.h). */
int aert_loader_init_on(aert_loader *l, const aert_model *m, const aert_dataset *ds, aert_device *dev);
int aert_loader_start(aert_loader *l, const long *order, long first, long nb, uint64_t seed,
                      long epoch);
int aert_loader_take(aert_loader *l, long b, float **x, float **y);   /* -1: unreadable data */
void aert_loader_release(aert_loader *l, long b);
void aert_loader_stop(aert_loader *l);
void aert_loader_free(aert_loader *l);

/* ---- optim.c: SGD, Adam, AdamW, learning-rate schedules ------------------------- */
typedef struct aert_optimizer {
  aert_opt_kind kind;
  long n;                /* floats in m and v (= param_floats) */
  float *m;              /* Adam first moment, or SGD momentum buffer */
  float *v;              /* Adam second moment, NULL for SGD */
  long step;             /* updates done (Adam bias correction) */
} aert_optimizer;

int aert_optim_init(aert_optimizer *o, const aert_model *m);
void aert_optim_free(aert_optimizer *o);
void aert_optim_step(aert_optimizer *o, const aert_model *m, float *params, const float *grads,
                     float lr);
/* Where a run is, in optimizer steps (from 0 over the whole run): the schedules' clock. */
typedef struct {
  long step;        /* optimizer steps done before this one */
  long per_epoch;   /* optimizer steps in an epoch: its batches / accumulate, rounded up */
  int epochs;       /* of the run (cosine) */
} aert_clock;
/* The learning rate of the step at c: linear warm-up from base_lr/W to base_lr over the W
 * warm-up steps, then the schedule over the rest of the run; plateau_cuts times the
 * plateau factor. */
float aert_lr_at(const aert_optim *o, float base_lr, aert_clock c, int plateau_cuts);
long aert_warmup_steps(const aert_optim *o, long per_epoch);
/* Gradient accumulation over the trainable parameters: sum = g (first) or sum += g, then
 * the mean over the group's batches. */
void aert_grad_accumulate(const aert_model *m, float *sum, const float *g, int first);
void aert_grad_mean(const aert_model *m, float *sum, int batches);
/* Scales g to a global L2 norm of at most max_norm; returns the norm before. The squared
 * norm is summed in double in a fixed order that a GPU can follow in parallel, bit for bit:
 * each chunk of AERT_NORM_CHUNK arena floats in order, then the chunks' sums in order (the
 * CUDA target's grad_norm_part and grad_clip_scale). */
#define AERT_NORM_CHUNK 4096
double aert_clip_grad_norm(const aert_model *m, float *g, float max_norm);
/* After an epoch with this monitored loss: early stopping's and plateau's counters. */
void aert_watch_epoch(const aert_optim *o, aert_train_state *st, double loss);
const char *aert_optim_state_name(aert_opt_kind kind, int which); /* "adam_m", ... or NULL */

/* ---- init.c: parameter initialisation ------------------------------------------- */
int aert_init_params(const aert_model *m, float *params, uint64_t seed);

/* ---- ckpt.c: checkpoints --------------------------------------------------------- */
#define AERT_MAX_BANDS 64
#define AERT_EPOCH_SUMS (1 + AERT_MAX_LOSS_TERMS)
struct aert_train_state {
  uint64_t seed, step;   /* run seed; optimizer steps done */
  int epoch, epochs;     /* epochs completed; epochs the run was asked for */
  float best_val;        /* lowest validation loss so far */
  int since_best;        /* epochs without progress (early stopping; see stop_best) */
  int norm_bands;        /* > 0: per-band statistics of `standardize` (tensors data/mean, data/std) */
  float norm_mean[AERT_MAX_BANDS], norm_std[AERT_MAX_BANDS];
  int n_class_weights;   /* > 0: the weights of `weights = auto` (tensor data/class_weights) */
  float class_weights[AERT_MAX_CLASSES];
  int has_optim;         /* 1: the spec's optimizer and schedule and the base learning rate */
  aert_optim optim;      /* the run trains with (tensor train/optim; older checkpoints lack it) */
  float base_lr;
  /* the epoch-end watch (tensor train/watch; older checkpoints lack it) */
  float stop_best;       /* early stopping's best: lowered only by more than min_delta */
  float plateau_best;    /* plateau's best loss */
  int plateau_bad;       /* epochs since plateau_best fell */
  int plateau_cuts;      /* times the plateau factor has cut the learning rate */
  int n_epoch_sums;      /* > 0 mid-epoch: the sums of the training loss and of each loss term */
  double epoch_sums[AERT_EPOCH_SUMS];   /* over the epoch's steps so far (train/epoch_sums) */
};

typedef struct {
  char *name;
  int rank, shape[AERT_MAX_RANK];
  long size;
  const unsigned char *data;  /* size little-endian floats inside the file buffer */
} aert_tensor;

typedef struct {
  char *path, *model, *spec_hash;
  aert_train_state st;
  aert_opt_kind opt_kind;
  long opt_step;
  int n;
  aert_tensor *t;
  unsigned char *buf;
} aert_ckpt;

#define AERT_CKPT_MAGIC "AECCKPT1"
#define AERT_CKPT_VERSION 1

int aert_ckpt_save(const char *path, const aert_model *m, const aert_train_state *st,
                   const float *params, const aert_optimizer *o);
int aert_ckpt_load(const char *path, aert_ckpt *ck);
int aert_ckpt_check_model(const aert_ckpt *ck, const aert_model *m);
const aert_tensor *aert_ckpt_find(const aert_ckpt *ck, const char *name);
int aert_ckpt_get(const aert_ckpt *ck, const char *name, int rank, const int *shape, float *dst);
int aert_ckpt_restore(const aert_ckpt *ck, const aert_model *m, float *params, aert_optimizer *o);
/* What differs between the optimizer and schedule a checkpoint's run used and `now`
 * ("optimizer adam -> sgd, lr 0.001 -> 0.01"), written into s; 0 when nothing does. */
int aert_optim_changes(const aert_optim *was, const aert_optim *now, char *s, size_t n);
void aert_ckpt_free(aert_ckpt *ck);

/* ---- metrics.c: loss sums, MSE, PSNR, accuracy, IoU ----------------------------- */
typedef struct {
  long examples;
  double loss, term[AERT_MAX_LOSS_TERMS];  /* sums over examples */
  double sq_err;
  long values;                             /* image values compared */
  long correct, counted;                   /* class items (ignore excluded) */
  int n_classes;
  long *confusion;                         /* n_classes x n_classes, [truth][predicted] */
} aert_metrics;

int aert_metrics_init(aert_metrics *mt, int n_classes);
void aert_metrics_free(aert_metrics *mt);
void aert_metrics_add_loss(aert_metrics *mt, const aert_losses *l, long count);
int aert_metrics_sum_ranks(aert_metrics *mt);   /* the sums of every data-parallel rank */
void aert_metrics_add_images(aert_metrics *mt, const float *out, const float *target, long n);
void aert_metrics_add_classes(aert_metrics *mt, const float *scores, const float *target,
                              long items);
double aert_mse(const aert_metrics *mt);
double aert_psnr(double mse);
double aert_accuracy(const aert_metrics *mt);
double aert_iou(const aert_metrics *mt, int c);
double aert_mean_iou(const aert_metrics *mt);   /* over classes in the truth or the predictions */
void aert_print_confusion(const aert_metrics *mt, const char *const *names);

/* Latent statistics over a set (sparse models): a value counts as near zero when
 * |z| < AERT_NEAR_ZERO (absolute, not relative to the maximum). */
#define AERT_NEAR_ZERO 1e-2
typedef struct {
  long units, examples;
  double sum, sum_abs;
  long near_zero;
  float *max_abs;        /* per unit, over the set */
} aert_latent_stats;

int aert_latent_stats_init(aert_latent_stats *ls, long units);
void aert_latent_stats_free(aert_latent_stats *ls);
void aert_latent_stats_add(aert_latent_stats *ls, const float *z, long examples);
double aert_latent_mean(const aert_latent_stats *ls);
double aert_latent_mean_abs(const aert_latent_stats *ls);
double aert_latent_near_zero(const aert_latent_stats *ls);    /* fraction of all values */
long aert_latent_dead(const aert_latent_stats *ls);           /* units near zero everywhere */

/* ---- plot.c: drawing on an RGB canvas -------------------------------------------- */
typedef struct {
  unsigned char *px;   /* w x h x 3 bytes, white when made */
  int w, h;
} aert_canvas;
extern const unsigned char aert_black[3];
int aert_canvas_new(aert_canvas *c, int w, int h, const char *what);
int aert_canvas_write(aert_canvas *c, const char *path);   /* a PNG; frees the pixels */
void aert_fill_rect(aert_canvas *c, int x, int y, int w, int h, const unsigned char *rgb);
void aert_draw_line(aert_canvas *c, int x0, int y0, int x1, int y1, int width,
                    const unsigned char *rgb);
int aert_draw_text(aert_canvas *c, int x, int y, const char *text, int scale,
                   const unsigned char *rgb);   /* 5x7 font, 7 * scale pixels high */
int aert_text_width(const char *text, int scale);
/* A plot area at (x, y), w x h pixels, showing [lo[0], hi[0]] x [lo[1], hi[1]]. */
typedef struct {
  int x, y, w, h;
  double lo[2], hi[2];
} aert_axes;
void aert_axis_range(double *lo, double *hi);   /* pads a data range by 5% */
int aert_axes_x(const aert_axes *a, double v);
int aert_axes_y(const aert_axes *a, double v);
void aert_axes_draw(aert_canvas *c, const aert_axes *a, const char *title, const char *xlabel,
                    int integer_x);

/* ---- images.c: PNG grids, scatter plots, land-cover maps ----------------------------- */
/* rows x cols tiles (NULL: black), each scaled up by aert_grid_scale, with row_labels[r]
 * before row r (row_labels NULL: no labels); span > 0 adds axes z1, z2 over [-span, span]
 * (a decoded latent plane). */
int aert_png_grid(const char *path, int rows, int cols, const float *const *tiles, int h, int w,
                  int c, const char *const *row_labels, double span);
/* The half-width of the square the latent plane covers: its points and half a step beyond. */
#define AERT_LATENT_PLANE_SPAN (AERT_LATENT_GRID_SPAN * AERT_LATENT_GRID / (AERT_LATENT_GRID - 1))
int aert_grid_scale(int h, int w);   /* whole-pixel factor that makes a tile readable */
/* Bytes of a w x h image, ch 1 (grey) or 3 (RGB), as they are. */
int aert_png_write(const char *path, const unsigned char *img, int w, int h, int ch);
const unsigned char *aert_series_colour(int i);   /* tab10 */

/* A 2-d scatter plot (n points xy[2i], xy[2i+1]) with axes: coloured by label 0..9 (others
 * grey) with a legend of the classes present when label is non-NULL and some label is >= 0,
 * one colour otherwise. The range fits the data unless fixed; points outside it are left out. */
typedef struct {
  const char *title, *xlabel, *ylabel;
  int fixed;
  double lo[2], hi[2];
} aert_scatter;
int aert_png_scatter(const char *path, const float *xy, const int *label, long n,
                     const aert_scatter *sc);
/* Land-cover panels side by side (each optional: an RGB image, the labels, the prediction;
 * maps hold class indices, -1 no data), scaled to at most 512 pixels, over a legend of the
 * class colours and names. */
/* The colour of class index c (Chesapeake order, then tab10); -1, no data, is black. */
const unsigned char *aert_class_colour(int c);
int aert_png_landcover(const char *path, const unsigned char *rgb, const signed char *truth,
                       const signed char *pred, int w, int h, int n_classes,
                       const char *const *names);

/* ---- embed.c: 2-d maps of latents --------------------------------------------------- */
/* Top-2 principal components (LAPACK dsyev on the covariance): out n x 2; var the variance
 * along each, total the total variance. */
int aert_pca(const float *x, long n, long d, float *out, double var[2], double *total);
/* The k nearest neighbours of each of n points (n x d) by brute force: nbr and d2 (squared
 * distances) n x k, each row a max-heap on the distance. */
double aert_sqdist(const float *a, const float *b, long d);   /* squared distance, summed in 4 lanes */
void aert_nearest(const float *x, long n, long d, int k, int *nbr, double *d2);

/* ---- isomap.c: Isomap ---------------------------------------------------------------- */
/* 2-d Isomap of n points (n x d) over the k-nearest-neighbour graph: out n x 2, ev the two
 * MDS eigenvalues. A graph in pieces is an error naming the size of each. */
int aert_isomap(const float *x, long n, long d, int k, float *out, double ev[2]);

/* ---- generate.c: decoding ------------------------------------------------------------ */
/* sample's latent_grid.png: AERT_LATENT_GRID^2 latents evenly over +-AERT_LATENT_GRID_SPAN. */
#define AERT_LATENT_GRID 15
#define AERT_LATENT_GRID_SPAN 2.5
int aert_is_generative(const aert_model *m);   /* its latent is drawn: sample(mu, logvar) */
/* t-SNE, exact up to 1000 points and Barnes-Hut above (at most 10,000): perplexity,
 * iterations, initial layout from seed; out n x 2. */
int aert_tsne(const float *x, long n, long d, float *out, double perplexity, int iters,
              uint64_t seed);

/* ---- npy.c: numpy arrays ----------------------------------------------------------- */
int aert_npy_write(const char *path, const float *data, long rows, long cols);
int aert_npy_write_shaped(const char *path, const float *data, int rank, const long *shape);
/* The header of a float32 array of this shape (at most 8 dimensions); returns its length. */
#define AERT_NPY_HEADER_MAX 256
size_t aert_npy_header(unsigned char head[AERT_NPY_HEADER_MAX], int rank, const long *shape);

/* ---- tensors.c, safetensors.c, npz.c: named float32 tensors in files other tools read ---- */
#define AERT_FILE_MAX_RANK 8
typedef struct {
  char *name;
  int rank;
  long shape[AERT_FILE_MAX_RANK];
  long size;
  float *data;           /* owned */
} aert_named;

typedef struct {
  int n, cap;
  aert_named *t;
  char *layout;          /* the writer's "aec" or "torch" (safetensors metadata), or NULL */
} aert_tensor_set;

/* Adds a copy of data under name; -1 when out of memory (message printed). */
int aert_tensor_set_add(aert_tensor_set *s, const char *name, int rank, const long *shape,
                        const float *data);
const aert_named *aert_tensor_set_find(const aert_tensor_set *s, const char *name);
void aert_tensor_set_free(aert_tensor_set *s);
/* Writers: atomic; model and layout go into the file's metadata where it has some. */
int aert_safetensors_write(const char *path, const aert_tensor_set *s, const char *model);
int aert_npz_write(const char *path, const aert_tensor_set *s);
/* Readers: every tensor must be float32 in C order; anything else, a truncated or foreign
 * file, is refused naming the file (and the tensor). */
int aert_safetensors_read(const char *path, const unsigned char *b, size_t n, aert_tensor_set *s);
int aert_npz_read(const char *path, const unsigned char *b, size_t n, aert_tensor_set *s);
/* One .npy held in memory (what = "'x.npy' in 'f.npz'" for messages). */
int aert_npy_parse(const char *what, const unsigned char *b, size_t n, aert_named *t);

/* ---- onnx.c: the inference graph as an ONNX model ------------------------------------ */
/* weights: the parameters in PyTorch's names and layouts (export.c); st: the run's band
 * statistics for `standardize`; nchw: the layout of the input and outputs (else NHWC). */
int aert_onnx_write(const char *path, const aert_model *m, const aert_tensor_set *weights,
                    const aert_train_state *st, int nchw);

/* ---- progress.c: progress bar and CSV log --------------------------------------- */
typedef struct {
  int tty, quiet;
  int epoch, epochs;
  long total, images;
  double t0, last_draw;
  double data_wait;      /* seconds waited for batches, shown at the end of the epoch */
  long patches;          /* streamed tiles: patches read this epoch, and the seconds it took */
  double read_seconds;
  double val_acc, val_miou;   /* class targets: validation accuracy and mean IoU (NaN: none) */
} aert_progress;

double aert_now(void);
void aert_progress_begin(aert_progress *p, int epoch, int epochs, long total, int quiet);
void aert_progress_step(aert_progress *p, long step, double running_loss, int batch);
void aert_progress_end(aert_progress *p, double train_loss, double val_loss, float lr);

typedef struct {
  FILE *f;
  char *path;
} aert_csv;

int aert_csv_open(aert_csv *c, const char *out_dir, const aert_model *m, int append);
int aert_csv_row(aert_csv *c, const aert_model *m, int epoch, uint64_t step, float lr,
                 double train_loss, const double *terms, double val_loss, double val_acc,
                 double val_miou, double seconds);
int aert_csv_close(aert_csv *c);

/* ---- cli.c / train.c / evaluate.c: the trainer ---------------------------------- */
typedef struct aert_options {
  const char *cmd;
  const char *data_dir, *out, *ckpt;
  int epochs;            /* 0: the model's */
  float lr;              /* 0: the model's */
  uint64_t seed;
  int threads;
  long limit;            /* 0: all */
  int resume, patience, quiet;
  int samples;           /* sample: images drawn (default 64) */
  long from, to;         /* interpolate: test image indices */
  int steps;             /* interpolate: decoded points on the line (default 10) */
  const char *method;    /* latent: "pca", "tsne" or "isomap"; NULL: raw for a 2-d latent, else pca */
  int neighbors;         /* latent --method isomap: k of the neighbour graph (default 10) */
  const char *tensorboard;   /* train: event files for TensorBoard written here, or NULL */
  long points;           /* latent: test images embedded (0: pca all, tsne 1000) */
  int data_threads;      /* tiles read side by side (default 2) */
  int skip_bad;          /* --bad-tiles skip: leave unreadable tiles out instead of stopping */
  int overlap;           /* predict over tiles: pixels shared by neighbouring windows */
  int probabilities;     /* predict over tiles: 0 none, else a probability band per class as
                            AERT_PIX_U8 + 1 or AERT_PIX_F32 + 1 */
  const char *profile;   /* train: per-kernel timing written here as JSON, or NULL */
  int force;             /* train --resume: continue although the optimizer settings changed */
  const char *init;      /* train: parameters from this checkpoint instead of the seed's draws */
  const char *format;    /* export: safetensors, npz or onnx */
  const char *layout;    /* export: aec (default) or torch */
  const char *dest;      /* init, export, import (--file): the file written */
  const char *input;     /* predict, encode --input: new data; import: the FILE to import */
  int step_timeout;      /* train: seconds a step may take before the watchdog ends the job (0: none) */
} aert_options;

/* What a command runs a model with: its device (parameters, arenas) and one batch on the
 * host. */
typedef struct {
  const aert_model *m;
  aert_device dev;
  float *x, *y;          /* batch*in_size; batch*target_size, NULL for AERT_TARGET_INPUT */
} aert_workspace;

/* Called after each evaluation batch's forward pass, while the device holds its outputs. */
typedef void (*aert_batch_fn)(void *ctx, const aert_workspace *w, long start, int real);

/* A trained model and the test set, for the commands that use a checkpoint. */
typedef struct {
  aert_workspace w;
  aert_dataset test;
  aert_metrics mt;
  char *ckpt;
} aert_session;

uint64_t aert_step_seed(uint64_t seed, uint64_t step);
int aert_session_open(aert_session *s, const aert_model *m, const aert_options *o);
/* Only the model of a session (workspace, checkpoint, metrics), no test set; st: the
 * checkpoint's training state. aert_session_close frees it too. */
int aert_session_model(aert_session *s, const aert_model *m, const aert_options *o, aert_train_state *st);
int aert_set_class_weights(const aert_model *m, const aert_train_state *st, const char *from);
void aert_session_close(aert_session *s);
void aert_image_hwc(int rank, const int *shape, long size, int *h, int *w, int *c);
/* training: the device holds gradients and optimizer state too. */
int aert_workspace_init(aert_workspace *w, const aert_model *m, int training);
void aert_workspace_free(aert_workspace *w);
/* The model on the workspace's batch as evaluation runs it (training 0: no noise, no
 * dropout): the total loss, the terms in *losses when not NULL. */
float aert_workspace_forward(aert_workspace *w, aert_losses *losses);
int aert_eval_set(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt, aert_batch_fn fn,
                  void *ctx);
/* Batches first, first + every, ... of the set only (a data-parallel rank's share). */
int aert_eval_part(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt, aert_batch_fn fn,
                   void *ctx, long first, long every);
/* The metrics of a set on data-parallel ranks: rank r scores batches r, r + N, ... and the
 * sums are added up (every rank must call it); alone, the whole set. */
int aert_eval_shared(aert_workspace *w, const aert_dataset *ds, aert_metrics *mt);
/* Denoising scores (evaluate.c): squared errors of the noisy inputs and of the model's
 * outputs against the clean images; rows (3 x 8 examples) kept when non-NULL. */
typedef struct {
  double noisy_sq, recon_sq;
  long values, shown;
  float *rows;
} aert_denoise;
int aert_denoise_eval(aert_workspace *w, const aert_dataset *ds, aert_denoise *d);

/* A growable byte buffer (checkpoints, ONNX files): appends after a failed allocation are
 * dropped and set failed, so a writer checks once at the end (io.c). */
typedef struct {
  unsigned char *p;
  size_t n, cap;
  int failed;
} aert_buf;
void aert_buf_put(aert_buf *b, const void *src, size_t n);
void aert_pb_varint(aert_buf *b, uint64_t v);   /* protobuf: a varint */
void aert_pb_bytes(aert_buf *b, int field, const void *data, size_t n);   /* a length-delimited field */

/* ---- curves.c: OUT/curves.png ---------------------------------------------------------- */
/* Draws the run's curves (loss, learning rate, validation metrics per epoch) from its
 * train.csv; nothing while the log has no rows. */
int aert_curves_write(const char *csv_path, const char *png_path);

/* ---- tfevents.c: TensorBoard event files ----------------------------------------------- */
typedef struct {
  FILE *f;
  char *path;
} aert_tfevents;
uint32_t aert_crc32c(const unsigned char *p, size_t n);
int aert_tfevents_open(aert_tfevents *tb, const char *dir);   /* a new file in dir */
/* One event at step holding the n values (NaN ones left out) as scalars named by tags. */
int aert_tfevents_scalars(aert_tfevents *tb, uint64_t step, int n, const char *const *tags,
                          const double *values);
int aert_tfevents_close(aert_tfevents *tb);

int aert_train(const aert_model *m, const aert_options *o);
/* The signal (SIGINT, SIGTERM) that stopped the last aert_train, 0 if none did. */
int aert_train_stopped_by(void);
int aert_eval(const aert_model *m, const aert_options *o);
int aert_encode(const aert_model *m, const aert_options *o);
int aert_predict(const aert_model *m, const aert_options *o);
int aert_decode_all(aert_workspace *w, const float *z, long n, float *out);  /* generate.c */
int aert_sample(const aert_model *m, const aert_options *o);
int aert_interpolate(const aert_model *m, const aert_options *o);
int aert_latent_map(const aert_model *m, const aert_options *o);   /* embed.c */
int aert_init_command(const aert_model *m, const aert_options *o);  /* export.c */
int aert_export(const aert_model *m, const aert_options *o);
int aert_import(const aert_model *m, const aert_options *o);
/* predict --input, encode --input (predict_input.c): the model on new data. */
int aert_predict_input(const aert_model *m, const aert_options *o, int latent);

/* ---- tiff.c: GeoTIFF rasters through libtiff (reading any layout, writing tiles) ---- */
/* Georeferencing as GeoTIFF stores it, carried verbatim from an input to a prediction. */
typedef struct {
  int has_tiepoint, has_scale;
  double tiepoint[6];          /* ModelTiepointTag (33922): I, J, K, X, Y, Z */
  double scale[3];             /* ModelPixelScaleTag (33550) */
  int n_keys;                  /* GeoKeyDirectoryTag (34735), uint16 values */
  uint16_t *keys;
  int n_doubles;               /* GeoDoubleParamsTag (34736) */
  double *doubles;
  char *ascii;                 /* GeoAsciiParamsTag (34737), NULL when absent */
} aert_georef;

void aert_georef_free(aert_georef *g);
/* 0 when a and b place pixels alike (the same CRS, origin and pixel size); else 1, and what
 * differs, with both values, in why. */
int aert_georef_compare(const aert_georef *a, const aert_georef *b, char *why, size_t n);

/* Sample types a raster holds (the value is what a caller asks a writer for, too). */
typedef enum { AERT_PIX_U8, AERT_PIX_U16, AERT_PIX_I16, AERT_PIX_U32, AERT_PIX_I32,
               AERT_PIX_F32, AERT_PIX_F64 } aert_pixel;

/* An open raster: a window of any of its bands is read as floats, decoding only the
 * strips or tiles that the window touches. Decoded chunks are kept per plane, in as many
 * slots as cache_bytes allows (at least one; chunk k of a plane in slot k % slots), so that
 * windows drawn again and again from one tile decode each chunk once. */
typedef struct aert_raster {
  char *path;
  void *tif;                   /* TIFF * */
  int width, height, bands;
  aert_pixel type;
  int planar;                  /* 1: one plane per band (PLANARCONFIG_SEPARATE) */
  int tiled, chunk_w, chunk_h; /* tile size, or width x rows per strip */
  long chunk_bytes;
  unsigned char *chunk;        /* decoded strips or tiles: slots per plane, then their ids */
  long chunk_id;               /* the chunk decoded last, -1 none */
  long cache_bytes;            /* what the kept chunks may take (0: one per plane) */
  long slots;                  /* chunks kept per plane */
  aert_georef geo;
  int has_nodata;              /* the GDAL_NODATA tag (42113): a band value meaning no data */
  double nodata;               /* may be NaN */
  int paletted;                /* colour-mapped: read as the palette indices */
  int packed_row;              /* 1-bit samples: bytes per packed row (widened on decoding) */
  int is_mask;                 /* this raster is another's mask: 0 no data, else valid */
  struct aert_raster *mask;    /* GDAL's internal per-dataset mask, or NULL */
} aert_raster;

/* Opens and checks path (a TIFF whose sample type and layout this reader supports);
 * on failure prints "aec: 'path': why" and returns -1 with nothing left open. */
int aert_raster_open(aert_raster *r, const char *path);
/* The same over a TIFF held in memory (data must outlive r); name is used in messages. */
int aert_raster_open_mem(aert_raster *r, const char *name, const void *data, size_t size);
/* Reads bands band0..band0+nbands-1 of the window x0, y0, w, h (inside the image) as
 * floats into dst, an HWC image of w x h pixels and dst_c channels, starting at channel
 * dst_off. A strip or tile that cannot be decoded (truncated, corrupt) prints the file
 * and the strip/tile and returns -1. */
int aert_raster_read(aert_raster *r, int x0, int y0, int w, int h, int band0, int nbands,
                     float *dst, int dst_c, int dst_off);
void aert_raster_close(aert_raster *r);
/* Lets r keep up to bytes of decoded chunks (at least one per plane); drops those it kept. */
void aert_raster_set_cache(aert_raster *r, long bytes);

/* How a written TIFF is laid out (zero fields: strips of 16 rows, chunky, deflate). */
typedef struct {
  int tile;                    /* > 0: tiles of tile x tile (a multiple of 16) */
  int rows_per_strip;          /* strips: rows per strip, default 16 */
  int planar;                  /* 1: separate planes */
  int compression;             /* a libtiff COMPRESSION_* value, 0: deflate */
  int bigtiff;                 /* 1: BigTIFF */
  const char *nodata;          /* the GDAL_NODATA tag's text (42113), or NULL */
} aert_tiff_layout;

/* Writes an HWC image (bands per pixel, interleaved, of type) as a TIFF with the given
 * georeferencing (NULL: none) and layout (NULL: the default), to path.tmp and then renamed
 * over path, so a failure never leaves a partial file at path. */
int aert_tiff_write(const char *path, int width, int height, int bands, aert_pixel type,
                    const void *hwc, const aert_georef *geo, const aert_tiff_layout *layout);

/* ---- cog.c: Cloud-Optimised GeoTIFF written row by row in bounded memory ---------------- */
typedef struct {
  int width, height, bands;
  aert_pixel type;             /* AERT_PIX_U8 or AERT_PIX_F32 */
  const aert_georef *geo;      /* NULL: none */
  const char *nodata;          /* the GDAL_NODATA tag's text (42113), NULL: none */
  int nodata_value;            /* categorical: the value that text names */
  const uint16_t *colormap;    /* 3 x 256 (red, green, blue) for a one-band palette, or NULL */
  const char *metadata;        /* the GDAL_METADATA tag's XML (42112), or NULL */
  int categorical;             /* 1: one band of classes, overviews by the most frequent value;
                                  0: overviews by the mean */
  int bigtiff;                 /* 1: BigTIFF whatever the size (else only beyond ~4 GiB) */
} aert_cog_info;
typedef struct aert_cog aert_cog;
/* Starts path (written as path.tmp, renamed by aert_cog_close); info's pointers must live
 * until the close. */
aert_cog *aert_cog_open(const char *path, const aert_cog_info *info);
/* The next n rows, width x bands interleaved each. */
int aert_cog_rows(aert_cog *c, const void *rows, int n);
/* Writes the file (every row must have come) and frees c, whatever happens. */
int aert_cog_close(aert_cog *c);
void aert_cog_abort(aert_cog *c);

/* ---- class_map.c: a predicted class map's colours, NoData, names for GIS tools ---------- */
typedef struct {
  uint16_t colormap[3 * 256];  /* red, green, blue by label value: the class colours */
  char nodata[16];             /* the NoData text: the ignored label (15), else 0 */
  char metadata[4096];         /* GDAL_METADATA: the band's description and class names */
} aert_map_style;
/* The label value written where there is no data: the spec's ignore label, else 0. */
int aert_nodata_label(const aert_model *m);
void aert_map_style_init(const aert_model *m, aert_map_style *st);
/* GDAL_METADATA XML into md: for probs 0 the class map's, else one band per class (probs
 * AERT_PIX_U8 + 1 adds the scale 1/254 of probability bytes). */
void aert_band_metadata(const aert_model *m, int probs, char *md, size_t n);
/* tif.aux.xml with the category name of every label value up to the largest. */
int aert_write_category_names(const aert_model *m, const char *tif);

/* ---- synth.c: synthetic land-cover scenes written as Chesapeake-style GeoTIFF tiles ---- */
/* Land-cover labels of the Chesapeake release: 1 water, 2 tree canopy, 3 low vegetation,
 * 4 barren, 5 impervious (buildings), 6 impervious road; 15 no data. */
enum { AERT_LC_WATER = 1, AERT_LC_TREE, AERT_LC_LOWVEG, AERT_LC_BARREN, AERT_LC_IMPERVIOUS,
       AERT_LC_ROAD, AERT_LC_NODATA = 15 };

/* One scene of size x size pixels drawn from seed: labels (size*size bytes), the NAIP-like
 * image (R, G, B, NIR uint8, HWC) and the Landsat-like one (9 float32 reflectance bands,
 * HWC, at the same resolution). Class-dependent band values with texture and noise. */
void aert_synth_scene(uint64_t seed, int size, unsigned char *labels, unsigned char *naip,
                      float *landsat);
/* Writes the train/ and test/ folders of a synthetic_landcover source under dir: the spec's
 * tile count and size, layers naip-new, landsat-leaf-on and lc, georeferenced in UTM 18N. */
int aert_synth_write_split(const aert_model *m, const char *dir);

#endif
