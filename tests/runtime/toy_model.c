/* toy_model.c - the toy autoencoder written by hand against the aert_model ABI, the way
 * generated code does it: one parameter arena (enc.w [784,32], enc.b, dec.w [32,784],
 * dec.b), one activation arena (z, sigmoid output, dz), forward and backward side by side.
 * Gradients are written (=), as the mean over the batch. */
#include <math.h>
#include <string.h>
#include "toy_model.h"

enum { IN = 784, Z = TOY_LATENT, B = TOY_BATCH };
enum { ENC_W = 0, ENC_B = ENC_W + IN * Z, DEC_W = ENC_B + Z, DEC_B = DEC_W + Z * IN,
       N_PARAMS = DEC_B + IN };
enum { A_Z = 0, A_Y = A_Z + B * Z, A_DZ = A_Y + B * IN, N_ARENA = A_DZ + B * Z };

static const aert_param toy_params[] = {
    {"enc.w", 2, {IN, Z}, IN * Z, ENC_W, AERT_INIT_GLOROT_UNIFORM, IN, Z, 0, NULL, NULL},
    {"enc.b", 1, {Z}, Z, ENC_B, AERT_INIT_ZEROS, IN, Z, 0, NULL, NULL},
    {"dec.w", 2, {Z, IN}, Z * IN, DEC_W, AERT_INIT_GLOROT_UNIFORM, Z, IN, 0, NULL, NULL},
    {"dec.b", 1, {IN}, IN, DEC_B, AERT_INIT_ZEROS, Z, IN, 0, NULL, NULL},
};

/* z = x We + be ; y = sigmoid(z Wd + bd) ; loss = mean BCE(y, x) */
static float toy_forward(const float *p, float *a, const float *x, const float *target,
                         int training, uint64_t seed, aert_losses *losses) {
  double loss = 0;
  for (int b = 0; b < B; b++) {
    float *z = a + A_Z + b * Z, *y = a + A_Y + b * IN;
    const float *xb = x + b * IN;
    memcpy(z, p + ENC_B, sizeof(float) * Z);
    for (int i = 0; i < IN; i++)
      if (xb[i] != 0.0f)
        for (int j = 0; j < Z; j++)
          z[j] += xb[i] * p[ENC_W + i * Z + j];
    memcpy(y, p + DEC_B, sizeof(float) * IN);
    for (int j = 0; j < Z; j++)
      for (int k = 0; k < IN; k++)
        y[k] += z[j] * p[DEC_W + j * IN + k];
    for (int k = 0; k < IN; k++) {
      float l = y[k];
      loss += fmaxf(l, 0.0f) + log1pf(expf(-fabsf(l))) - xb[k] * l;
      y[k] = 1.0f / (1.0f + expf(-l));
    }
  }
  float mean = (float)(loss / (B * IN));
  if (losses) {
    memset(losses, 0, sizeof *losses);
    losses->total = losses->term[0] = mean;
  }
  return mean;
}

static void toy_backward(const float *p, float *g, float *a, const float *x, const float *target,
                         uint64_t seed) {
  memset(g, 0, sizeof(float) * N_PARAMS);
  const float scale = 1.0f / (B * IN);
  for (int b = 0; b < B; b++) {
    const float *z = a + A_Z + b * Z, *y = a + A_Y + b * IN, *xb = x + b * IN;
    float *dz = a + A_DZ + b * Z;
    for (int j = 0; j < Z; j++)
      dz[j] = 0.0f;
    for (int k = 0; k < IN; k++) {
      float dl = (y[k] - xb[k]) * scale;
      g[DEC_B + k] += dl;
      for (int j = 0; j < Z; j++) {
        g[DEC_W + j * IN + k] += z[j] * dl;
        dz[j] += dl * p[DEC_W + j * IN + k];
      }
    }
    for (int j = 0; j < Z; j++)
      g[ENC_B + j] += dz[j];
    for (int i = 0; i < IN; i++)
      if (xb[i] != 0.0f)
        for (int j = 0; j < Z; j++)
          g[ENC_W + i * Z + j] += xb[i] * dz[j];
  }
}

/* The decoder alone: y = sigmoid(z Wd + bd) for a batch of latents. */
static void toy_decode(const float *p, float *a, const float *zs) {
  for (int b = 0; b < B; b++) {
    float *y = a + A_Y + b * IN;
    memcpy(a + A_Z + b * Z, zs + b * Z, sizeof(float) * Z);
    memcpy(y, p + DEC_B, sizeof(float) * IN);
    for (int j = 0; j < Z; j++)
      for (int k = 0; k < IN; k++)
        y[k] += zs[b * Z + j] * p[DEC_W + j * IN + k];
    for (int k = 0; k < IN; k++)
      y[k] = 1.0f / (1.0f + expf(-y[k]));
  }
}

static const float *toy_output(const float *a) { return a + A_Y; }
static const float *toy_latent(const float *a) { return a + A_Z; }

#define TOY_FIELDS(NAME, HASH, FWD, BWD)                                                   \
  .name = NAME, .spec_file = "tests/runtime/toy_model.c", .spec_hash = HASH, .batch = B,    \
  .in_rank = 3, .in_shape = {28, 28, 1}, .in_size = IN, .target_kind = AERT_TARGET_INPUT,   \
  .target_rank = 3, .target_shape = {28, 28, 1}, .target_size = IN, .out_size = IN,         \
  .latent_size = Z, .ignore_label = -1, .n_loss_terms = 1, .loss_term_names = {"bce"},      \
  .n_params = 4, .params = toy_params, .param_floats = N_PARAMS, .arena_floats = N_ARENA,   \
  .optim = {.kind = AERT_OPT_ADAM, .lr = 0.003f, .beta1 = 0.9f, .beta2 = 0.999f,            \
            .eps = 1e-8f},                                                                  \
  .epochs = 2,                                                                              \
  .data = {.kind = AERT_DATA_IDX, .validation = 0.1f, .scale = 1.0f / 255.0f},             \
  .forward = FWD, .backward = BWD, .output = toy_output, .latent = toy_latent

const aert_model toy_model = {TOY_FIELDS("toy", "00000000deadbeef", toy_forward, toy_backward)};
const aert_model toy_other_model = {
    TOY_FIELDS("toy_other", "1111111122222222", toy_forward, toy_backward)};

static int training_calls;

static float nan_forward(const float *p, float *a, const float *x, const float *t, int training,
                         uint64_t seed, aert_losses *l) {
  float loss = toy_forward(p, a, x, t, training, seed, l);
  if (training && ++training_calls == 8) {
    l->total = l->term[0] = NAN;
    return NAN;
  }
  return loss;
}
const aert_model toy_nan_loss_model = {
    TOY_FIELDS("toy", "00000000deadbeef", nan_forward, toy_backward)};

static int backward_calls;

static void inf_backward(const float *p, float *g, float *a, const float *x, const float *t,
                         uint64_t seed) {
  toy_backward(p, g, a, x, t, seed);
  if (++backward_calls == 2)
    g[DEC_B + 5] = INFINITY;
}
const aert_model toy_inf_grad_model = {
    TOY_FIELDS("toy", "00000000deadbeef", toy_forward, inf_backward)};

/* The toy as a denoising model with a decoder entry point, as generated code fills the
 * fields added at the end of aert_model; its one-layer graph holds a sampling layer, which
 * makes it generative for `sample` (its latent is not really drawn: sample only asks). */
static const aert_layer toy_sampling_graph[1] = {{.op = AERT_L_SAMPLE}};
const aert_model toy_family_model = {
    TOY_FIELDS("toy", "00000000deadbeef", toy_forward, toy_backward),
    .input_noise_stddev = 0.3f, .input_noise_lo = 0.0f, .input_noise_hi = 1.0f,
    .decode = toy_decode, .n_graph = 1, .graph = toy_sampling_graph};
const aert_model toy_plain_ae_model = {
    TOY_FIELDS("toy", "00000000deadbeef", toy_forward, toy_backward), .decode = toy_decode};
