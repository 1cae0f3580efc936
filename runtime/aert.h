/* aert.h - the ABI between a generated model and the aec runtime.
 * A generated model.c fills one const aert_model; the runtime (data, optimizers,
 * checkpoints, metrics, images, trainer command line) drives training through it.
 * Exported runtime names carry the aert_ prefix. */
#ifndef AERT_H
#define AERT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus   /* a CUDA target's model.cu includes it */
extern "C" {
#endif

#define AERT_MAX_RANK 4
#define AERT_MAX_LOSS_TERMS 8
#define AERT_MAX_CLASSES 64

/* How a parameter tensor is initialised before training. */
typedef enum {
  AERT_INIT_ZEROS,
  AERT_INIT_ONES,
  AERT_INIT_HE_NORMAL,      /* N(0, 2/fan_in): layers followed by relu-like activations */
  AERT_INIT_GLOROT_UNIFORM  /* U(+-sqrt(6/(fan_in+fan_out))): linear, sigmoid, tanh, softmax */
} aert_init;

/* One parameter tensor; all of them live in one float arena at fixed offsets. */
typedef struct {
  const char *name;        /* "enc1.w", "enc1.b": unique, stable across specs that import blocks */
  int rank;
  int shape[AERT_MAX_RANK];/* dense w: [in, out]; conv w: [kh, kw, cin, cout] (HWIO); bias: [out] */
  long size;               /* elements */
  long offset;             /* in floats, from the start of the parameter arena */
  aert_init init;
  int fan_in, fan_out;
  int frozen;              /* 1: never updated by the optimizer (imported frozen) */
  const char *init_from;   /* checkpoint that initialises it, or NULL */
  const char *init_name;   /* tensor name inside that checkpoint */
} aert_param;

/* What the model's target is. */
typedef enum {
  AERT_TARGET_INPUT,   /* autoencoder: the (clean) input itself */
  AERT_TARGET_IMAGE,   /* another image of shape target_shape */
  AERT_TARGET_CLASSES, /* one class index per pixel (class map) or per example */
} aert_target_kind;

typedef enum { AERT_OPT_SGD, AERT_OPT_ADAM, AERT_OPT_ADAMW } aert_opt_kind;
typedef enum {
  AERT_SCHED_CONSTANT, AERT_SCHED_STEP, AERT_SCHED_COSINE, AERT_SCHED_EXPONENTIAL, AERT_SCHED_PLATEAU
} aert_sched_kind;

typedef struct {
  aert_opt_kind kind;
  float lr, momentum, beta1, beta2, eps, weight_decay;
  aert_sched_kind schedule;
  float sched_gamma;   /* step / exponential decay factor */
  int sched_step;      /* epochs between steps (step schedule) */
  float sched_min_lr;  /* cosine floor */
  /* ---- steering a run; zero (off) in older generated code ---- */
  int nesterov;           /* sgd: Nesterov momentum */
  float plateau_factor;   /* plateau: lr *= factor after plateau_patience epochs without progress */
  int plateau_patience;
  int warmup_steps, warmup_epochs;   /* linear warm-up; the two add */
  float clip_norm;        /* > 0: the gradient's global L2 norm is clipped to this */
  int accumulate;         /* batches per optimizer step (0 or 1: every batch) */
  int stop_patience;      /* > 0: early stopping after this many epochs without progress */
  float stop_min_delta;   /* progress: a monitored loss lower than the best by more than this */
} aert_optim;

typedef enum {
  AERT_DATA_IDX,          /* IDX files (Fashion-MNIST layout), .gz or raw */
  AERT_DATA_IMAGE_PAIRS,  /* input and target IDX files, or two folders of images */
  AERT_DATA_GEOTIFF,      /* GeoTIFF tiles, <tile>_<layer>.tif */
  AERT_DATA_SYNTHETIC_LANDCOVER,
  AERT_DATA_IMAGES        /* one folder of PNG images, each its own target */
} aert_data_kind;

typedef struct {
  aert_data_kind kind;
  const char *dir;               /* default data folder */
  const char *train_images, *train_labels, *test_images, *test_labels;
  const char *layers[16];        /* geotiff: layers stacked in order */
  int n_layers;
  const char *label_layer;
  float validation;              /* fraction of the training set held out */
  float scale, offset;           /* x_norm = x * scale + offset */
  float shift, rotate, zoom;     /* augmentation ranges: pixels, degrees, fraction */
  int flip_h, flip_v;
  int patch, patches_per_tile;   /* geotiff / synthetic */
  /* ---- added for land cover; zero in older generated code ---- */
  int standardize;               /* 1: per-band (x - mean) / std, statistics from the data */
  int tiles, tile_size;          /* synthetic_landcover: training tiles written, their size */
} aert_data;

/* The inference graph, one entry per spec layer in forward order, for exporters (ONNX):
 * training-only layers (noise, dropout) are identities and `sample` passes its mean. */
typedef enum {
  AERT_L_INPUT, AERT_L_TARGET, AERT_L_DENSE, AERT_L_CONV, AERT_L_CONV_T, AERT_L_MAXPOOL,
  AERT_L_AVGPOOL, AERT_L_UPSAMPLE, AERT_L_FLATTEN, AERT_L_RESHAPE, AERT_L_CONCAT, AERT_L_ADD,
  AERT_L_IDENTITY, AERT_L_BATCHNORM, AERT_L_SAMPLE, AERT_L_RELU, AERT_L_LEAKY_RELU, AERT_L_ELU,
  AERT_L_SIGMOID, AERT_L_TANH, AERT_L_SOFTMAX
} aert_layer_op;

#define AERT_MAX_LAYER_INPUTS 8
typedef struct {
  aert_layer_op op;
  const char *param;       /* its parameters are param.w, param.b (batchnorm: .gamma ...), or NULL */
  int n_in, in[AERT_MAX_LAYER_INPUTS];   /* earlier layers, by index */
  int rank, shape[3];      /* per example: [n] or HWC */
  int k, stride, same;     /* conv, conv_transpose (same: padding=same), pools; upsample factor in k */
  float alpha;             /* leaky_relu, elu; batchnorm's eps */
  int bilinear;            /* upsample mode=bilinear (PyTorch's align_corners=False); 0: nearest */
} aert_layer;

/* Loss terms of one forward pass (reconstruction, kl, sparsity...), logged apart. */
typedef struct {
  float total;
  float term[AERT_MAX_LOSS_TERMS];
} aert_losses;

/* Data-parallel training (aec build --mpi, runtime/dist.h): what lets a rank's forward and
 * backward act as its slice of the global batch. All zero in one process, where the
 * generated code then computes exactly what it did before this existed. */
typedef struct {
  uint64_t first;                    /* this rank's first example in the global batch: noise and
                                        dropout are drawn by global index, not local position */
  double denom[AERT_MAX_LOSS_TERMS]; /* forward writes each term's normaliser on this rank (the
                                        class-weight sum of softmax_xent, the element count...) */
  double global_denom[AERT_MAX_LOSS_TERMS];   /* > 0: backward divides by it instead: the
                                        global normaliser / ranks, so that averaging the ranks'
                                        gradients gives the global batch's */
} aert_shard;

struct aert_device_ops;   /* device.h */

typedef struct aert_model {
  const char *name;
  const char *spec_file;
  const char *spec_hash;         /* hex FNV-1a 64 of the spec text */
  int batch;                     /* compile-time batch size */
  int in_rank, in_shape[3];      /* per example, HWC */
  long in_size;                  /* floats per example */
  aert_target_kind target_kind;
  int target_rank, target_shape[3];
  long target_size;              /* floats per example (class indices stored as floats) */
  long out_size;                 /* floats per example of the model's output */
  long latent_size;              /* floats per example of the latent, 0 if none */
  int n_classes;                 /* class targets: classes indexed 0..n-1 */
  int class_ids[AERT_MAX_CLASSES];      /* label value in the data for each class */
  const char *class_names[AERT_MAX_CLASSES];
  int ignore_label;              /* label value meaning "no data", -1 if none */
  int n_loss_terms;
  const char *loss_term_names[AERT_MAX_LOSS_TERMS];

  int n_params;
  const aert_param *params;
  long param_floats;             /* size of the parameter arena (= gradient arena) */
  long arena_floats;             /* activations + scratch for one batch */

  aert_optim optim;
  int epochs;
  aert_data data;

  /* Forward pass over one batch. x: batch*in_size floats; target: batch*target_size
   * floats (ignored for AERT_TARGET_INPUT; class indices 0..n-1, -1 for ignore).
   * training=1 enables noise and dropout, drawn from seed. Returns the total loss;
   * fills *losses when non-NULL. */
  float (*forward)(const float *params, float *arena, const float *x, const float *target,
                   int training, uint64_t seed, aert_losses *losses);
  /* Backward pass after forward(training=1) with the same arguments: writes (=) the
   * gradient of the total loss (mean over the batch) into grads (param_floats). */
  void (*backward)(const float *params, float *grads, float *arena, const float *x,
                   const float *target, uint64_t seed);
  /* Pointers into the arena after forward: the output (batch*out_size) and the
   * latent (batch*latent_size, NULL when the model has none). */
  const float *(*output)(const float *arena);
  const float *(*latent)(const float *arena);

  /* ---- added for the autoencoder family; zero (absent) in older generated code ---- */
  /* gaussian_noise applied to the model input itself in training (denoising): stddev > 0,
   * and the clip range of the noisy values (-inf/+inf when the spec gives no min/max).
   * eval adds this noise to the test images to score the denoising. */
  float input_noise_stddev, input_noise_lo, input_noise_hi;
  /* The decoder alone, as in forward(training=0): reads batch*latent_size floats from
   * latent, runs every layer downstream of the latent, and leaves the output where
   * output(arena) points. NULL when the model has no latent the output comes from. */
  void (*decode)(const float *params, float *arena, const float *latent);

  /* softmax_xent(..., weights = auto): sets the n_classes class weights, which the trainer
   * computes from the class frequencies of the training labels. NULL otherwise. */
  void (*set_class_weights)(const float *w);

  /* ---- per-kernel timing (train --profile, the bench); zero in older generated code ---- */
  /* n_timed entries: the fused kernels in forward order, then the loss. While *profiling is
   * set, forward and backward add each kernel's milliseconds to profile_ms[k][0] and [1]. */
  int n_timed;
  const char *const *timed_names;
  const double (*timed_flops)[2];   /* per batch, forward and backward */
  double (*profile_ms)[2];
  int *profiling;

  /* ---- the inference graph (export --format onnx); zero in older generated code ---- */
  int n_graph;
  const aert_layer *graph;
  int output_layer, latent_layer;   /* indices into graph; latent -1 when none */

  /* ---- data-parallel training (aec build --mpi); zero in older generated code ---- */
  int spec_batch;                /* the global batch: the spec's (batch = spec_batch / ranks) */
  int ranks;                     /* the rank count it was compiled for (--ranks), 1 otherwise */
  float loss_term_weight[AERT_MAX_LOSS_TERMS];   /* total = sum of weight * term */
  aert_shard *shard;

  /* ---- the device it runs on (runtime/device.h); zero in older generated code ---- */
  /* NULL: the CPU device, which runs forward, backward, decode, output and latent above on
   * host memory; a target with memory of its own (CUDA) brings its device here. */
  const struct aert_device_ops *device;
} aert_model;

/* The activations a kernel's epilogue applies (aert_kernels.h, aert_cuda_kernels.h). */
typedef enum { AERT_ACT_LINEAR, AERT_ACT_RELU, AERT_ACT_LEAKY_RELU, AERT_ACT_ELU, AERT_ACT_SIGMOID,
               AERT_ACT_TANH } aert_act;

/* What follows is compiled for the GPU too, where the CUDA target draws the same numbers. */
#ifdef __CUDACC__
#define AERT_HD __host__ __device__
#else
#define AERT_HD
#endif

/* Counter-based random numbers: the same (seed, index) gives the same number on
 * every thread and every run, so noise and dropout are reproducible. */
static inline AERT_HD uint64_t aert_hash64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
static inline AERT_HD float aert_uniform(uint64_t seed, uint64_t i) {
  return (float)((aert_hash64(seed ^ aert_hash64(i)) >> 40) + 0.5) * (1.0f / 16777216.0f);
}
/* N(0, 1) from the two uniforms of index i (Box-Muller); aert_box_muller is its formula. */
float aert_normal(uint64_t seed, uint64_t i);
static inline float aert_box_muller(float u1, float u2) {
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

/* The trainer's main: parses argv (train, eval, encode, predict, ...) and runs. */
int aert_main(const aert_model *m, int argc, char **argv);
/* Called first by a generated main: restarts the process once with OMP_WAIT_POLICY=PASSIVE
 * unless the user set a policy, because OpenMP threads that spin between kernels starve
 * on a machine whose cores are shared; on a machine with nothing else running (and no
 * GOMP_SPINCOUNT of the user's) with GOMP_SPINCOUNT=3000 too: a brief spin, then sleep. */
void aert_prefer_passive_threads(char **argv);

#ifdef __cplusplus
}
#endif

#endif
