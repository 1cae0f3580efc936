/* dump.c - the aec side of the PyTorch cross-check (llm.c's state dump). Built by
 * tests/torch/run.sh in float around one generated model.c; writes to DIR:
 *   op mode:    meta.txt, P0 (parameters before), X, T, out, latent, losses (total, terms),
 *               Pfwd (after the forward: batch-norm running statistics), G (gradients),
 *               P_<opt>_1, P_<opt>_2 (after one and two steps of sgd, sgd_nesterov, adam, adamw with G)
 *   train mode: meta.txt, P0 (the runtime's initialisation), X_k, T_k, losses: STEPS steps of
 *               the spec's optimizer on random batches, seeds aert_step_seed(1, k); P_end and
 *               end.ckpt (a checkpoint of the end state) after the last step.
 * compare.py reads it back and runs the PyTorch twin. */
#include "model.c"
#include "aert_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TSIZE (AEC_TARGET_SIZE ? AEC_TARGET_SIZE : 1)

static float P[AEC_PARAM_FLOATS] __attribute__((aligned(64)));
static float P2[AEC_PARAM_FLOATS] __attribute__((aligned(64)));
static float G[AEC_PARAM_FLOATS] __attribute__((aligned(64)));
static float A[AEC_ARENA_FLOATS] __attribute__((aligned(64)));
static float X[AEC_BATCH * AEC_IN_SIZE], T[AEC_BATCH * TSIZE];
static const char *dir;

static double urand(uint64_t *s) {
  *s = aert_hash64(*s);
  return (double)(*s >> 11) / 9007199254740992.0;
}

static void save(const char *name, const float *v, long rows, long cols) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  if (aert_npy_write(path, v, rows, cols) != 0) exit(1);
}

/* Inputs in (0.05, 0.95) (bce targets); class maps with a tenth of the items ignored (-1). */
static void fill_batch(uint64_t *s) {
  for (long i = 0; i < (long)AEC_BATCH * AEC_IN_SIZE; i++) X[i] = (float)(0.05 + 0.9 * urand(s));
  for (long i = 0; i < (long)AEC_BATCH * AEC_TARGET_SIZE; i++)
    T[i] = urand(s) < 0.1 ? -1.0f : (float)(int)(urand(s) * AEC_N_CLASSES);
}

/* Weights uniform in +-sqrt(3/fan_in) (unit-variance pre-activations), gamma near 1,
 * biases and beta small but not zero, so that every gradient path is exercised. */
static void fill_params(uint64_t *s) {
  for (int i = 0; i < aec_model.n_params; i++) {
    const aert_param *q = &params[i];
    double scale = q->fan_in ? sqrt(3.0 / q->fan_in) : 0.2;
    for (long j = 0; j < q->size; j++) {
      double u = urand(s) * 2 - 1;
      float *p = &P[q->offset + j];
      if (strstr(q->name, ".var")) *p = (float)(1 + 0.2 * fabs(u));
      else if (q->init == AERT_INIT_ONES) *p = (float)(1 + 0.2 * u);
      else *p = (float)(scale * u);
    }
  }
}

static void write_meta(uint64_t seed, int steps) {
  char path[512];
  snprintf(path, sizeof path, "%s/meta.txt", dir);
  FILE *f = fopen(path, "w");
  if (!f) { perror(path); exit(1); }
  fprintf(f, "model %s\nbatch %d\nin_size %ld\ntarget_size %ld\nout_size %ld\nlatent_size %ld\n",
          aec_model.name, AEC_BATCH, (long)AEC_IN_SIZE, (long)AEC_TARGET_SIZE, aec_model.out_size,
          aec_model.latent_size);
  fprintf(f, "param_floats %ld\nseed %llu\nsteps %d\nlr %.9g\n", (long)AEC_PARAM_FLOATS,
          (unsigned long long)seed, steps, aec_model.optim.lr);
  fprintf(f, "terms");
  for (int i = 0; i < aec_model.n_loss_terms; i++) fprintf(f, " %s", aec_model.loss_term_names[i]);
  fprintf(f, "\n");
  for (int k = 0; k < steps; k++)
    fprintf(f, "step_seed %llu\n", (unsigned long long)aert_step_seed(seed, (uint64_t)k));
  for (int i = 0; i < aec_model.n_params; i++) {
    const aert_param *q = &params[i];
    fprintf(f, "param %s %ld %ld %d", q->name, q->offset, q->size, q->frozen);
    for (int d = 0; d < q->rank; d++) fprintf(f, " %d", q->shape[d]);
    fprintf(f, "\n");
  }
  fclose(f);
}

static void save_losses(const char *name, const aert_losses *l, int rows) {
  float v[64 * (AERT_MAX_LOSS_TERMS + 1)];
  for (int r = 0; r < rows; r++) {
    v[r * (AERT_MAX_LOSS_TERMS + 1)] = l[r].total;
    for (int i = 0; i < AERT_MAX_LOSS_TERMS; i++) v[r * (AERT_MAX_LOSS_TERMS + 1) + 1 + i] = l[r].term[i];
  }
  save(name, v, rows, AERT_MAX_LOSS_TERMS + 1);
}

/* One or two optimizer steps with the same gradients, from the parameters after the forward. */
static void optimizer_steps(const char *tag, aert_opt_kind kind, float lr, float momentum, float wd, int nesterov) {
  aert_model m = aec_model;
  m.optim.kind = kind;
  m.optim.nesterov = nesterov;
  m.optim.lr = lr;
  m.optim.momentum = momentum;
  m.optim.beta1 = 0.9f;
  m.optim.beta2 = 0.999f;
  m.optim.eps = 1e-8f;
  m.optim.weight_decay = wd;
  aert_optimizer o;
  if (aert_optim_init(&o, &m) != 0) exit(1);
  memcpy(P2, P, sizeof P);
  char name[64];
  for (int k = 1; k <= 2; k++) {
    aert_optim_step(&o, &m, P2, G, lr);
    snprintf(name, sizeof name, "P_%s_%d", tag, k);
    save(name, P2, 1, AEC_PARAM_FLOATS);
  }
  aert_optim_free(&o);
}

static int op_mode(void) {
  uint64_t s = 42, seed = 7;
  fill_params(&s);
  fill_batch(&s);
  write_meta(seed, 0);
  save("P0", P, 1, AEC_PARAM_FLOATS);
  save("X", X, AEC_BATCH, AEC_IN_SIZE);
  save("T", T, AEC_BATCH, TSIZE);
  aert_losses l = {0};
  model_forward(P, A, X, T, 1, seed, &l);
  save_losses("losses", &l, 1);
  save("out", model_output(A), AEC_BATCH, aec_model.out_size);
  if (aec_model.latent_size) save("latent", model_latent(A), AEC_BATCH, aec_model.latent_size);
  save("Pfwd", P, 1, AEC_PARAM_FLOATS);
  model_backward(P, G, A, X, T, seed);
  save("G", G, 1, AEC_PARAM_FLOATS);
  optimizer_steps("sgd", AERT_OPT_SGD, 0.05f, 0.9f, 0.01f, 0);
  optimizer_steps("sgd_nesterov", AERT_OPT_SGD, 0.05f, 0.9f, 0.01f, 1);
  optimizer_steps("adam", AERT_OPT_ADAM, 0.01f, 0, 0.01f, 0);
  optimizer_steps("adamw", AERT_OPT_ADAMW, 0.01f, 0, 0.1f, 0);
  return 0;
}

static int train_mode(int steps) {
  uint64_t s = 42, seed = 1;
  if (steps < 1 || steps > 64) steps = 10;
  if (aert_init_params(&aec_model, P, seed) != 0) return 1;
  write_meta(seed, steps);
  save("P0", P, 1, AEC_PARAM_FLOATS);
  aert_optimizer o;
  if (aert_optim_init(&o, &aec_model) != 0) return 1;
  aert_losses l[64];
  memset(l, 0, sizeof l);
  for (int k = 0; k < steps; k++) {
    char name[32];
    fill_batch(&s);
    snprintf(name, sizeof name, "X_%d", k);
    save(name, X, AEC_BATCH, AEC_IN_SIZE);
    snprintf(name, sizeof name, "T_%d", k);
    save(name, T, AEC_BATCH, TSIZE);
    uint64_t sk = aert_step_seed(seed, (uint64_t)k);
    model_forward(P, A, X, T, 1, sk, &l[k]);
    model_backward(P, G, A, X, T, sk);
    aert_optim_step(&o, &aec_model, P, G, aec_model.optim.lr);
  }
  save_losses("losses", l, steps);
  save("P_end", P, 1, AEC_PARAM_FLOATS);
  /* A checkpoint for ckpt_npy.py's round trip. */
  aert_train_state st = {.seed = seed, .step = (uint64_t)steps, .epoch = 1, .epochs = 10,
                         .best_val = l[steps - 1].total};
  char path[512];
  snprintf(path, sizeof path, "%s/end.ckpt", dir);
  int rc = aert_ckpt_save(path, &aec_model, &st, P, &o);
  aert_optim_free(&o);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "op") && strcmp(argv[1], "train"))) {
    fprintf(stderr, "usage: %s op DIR | train DIR STEPS\n", argv[0]);
    return 2;
  }
  dir = argv[2];
  return strcmp(argv[1], "op") == 0 ? op_mode() : train_mode(argc > 3 ? atoi(argv[3]) : 10);
}
