/* device_cpu.c - the CPU device (device.h): the arenas are host memory, the generated
 * forward and backward run on them in place, and the optimizer (optim.c) steps the parameter
 * arena in place. Its host views are its arenas, so nothing is ever copied: upload,
 * download and grads_changed have nothing to do. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

typedef struct {
  float *arena;          /* activations and scratch of one batch */
  float *grads;          /* training: the gradient of the last backward */
  float *grad_sum;       /* accumulate > 1: the sum of the group's gradients */
  aert_optimizer opt;
  const float *x, *y;    /* the batch */
} cpu_device;

static int cpu_open(aert_device *d) {
  const aert_model *m = d->m;
  cpu_device *c = aert_alloc(sizeof *c, "the CPU device");
  if (!(d->own = c))
    return -1;
  d->params = aert_alloc_aligned(sizeof(float) * m->param_floats, "parameters");
  c->arena = aert_alloc_aligned(sizeof(float) * m->arena_floats, "the arena");
  if (!d->params || !c->arena)   /* aert_alloc_aligned said which */
    return -1;
  if (!d->training)
    return 0;
  if (aert_optim_init(&c->opt, m) != 0)
    return -1;
  d->opt = &c->opt;
  c->grads = aert_alloc_aligned(sizeof(float) * m->param_floats, "gradients");
  if (!c->grads)
    return -1;
  if (m->optim.accumulate > 1 && !(c->grad_sum = aert_alloc_aligned(sizeof(float) * m->param_floats, "gradient sums")))
    return -1;
  return 0;
}

static void cpu_close(aert_device *d) {
  cpu_device *c = d->own;
  free(d->params);
  if (c) {
    free(c->arena);
    free(c->grads);
    free(c->grad_sum);
    aert_optim_free(&c->opt);
    free(c);
  }
  d->params = NULL;
  d->opt = NULL;
  d->own = NULL;
}

static void cpu_in_place(aert_device *d) { (void)d; }

static void cpu_batch(aert_device *d, const float *x, const float *y) {
  cpu_device *c = d->own;
  c->x = x;
  c->y = y;
}

static float cpu_forward(aert_device *d, int training, uint64_t seed, aert_losses *losses) {
  cpu_device *c = d->own;
  return d->m->forward(d->params, c->arena, c->x, c->y, training, seed, losses);
}

static void cpu_backward(aert_device *d, uint64_t seed) {
  cpu_device *c = d->own;
  d->m->backward(d->params, c->grads, c->arena, c->x, c->y, seed);
}

static void cpu_decode(aert_device *d, const float *latent) {
  cpu_device *c = d->own;
  d->m->decode(d->params, c->arena, latent);
}

static const float *cpu_output(const aert_device *d) {
  const cpu_device *c = d->own;
  return d->m->output(c->arena);
}

static const float *cpu_latent(const aert_device *d) {
  const cpu_device *c = d->own;
  return d->m->latent(c->arena);
}

static float *cpu_grads(aert_device *d) {
  cpu_device *c = d->own;
  return c->grads;
}

static void cpu_accumulate(aert_device *d, int first) {
  cpu_device *c = d->own;
  aert_grad_accumulate(d->m, c->grad_sum, c->grads, first);
}

static void cpu_step(aert_device *d, int batches, float lr) {
  cpu_device *c = d->own;
  const aert_model *m = d->m;
  float *g = c->grads;
  if (batches > 0) {
    aert_grad_mean(m, c->grad_sum, batches);
    g = c->grad_sum;
  }
  if (m->optim.clip_norm > 0)
    aert_clip_grad_norm(m, g, m->optim.clip_norm);
  aert_optim_step(&c->opt, m, d->params, g, lr);
}

static long cpu_grads_nonfinite(aert_device *d, float *value) {
  const cpu_device *c = d->own;
  for (long i = 0; i < d->m->param_floats; i++)
    if (!isfinite(c->grads[i]))
      return *value = c->grads[i], i;
  return -1;
}

const aert_device_ops aert_cpu_device = {
  .open = cpu_open,
  .close = cpu_close,
  .upload = cpu_in_place,
  .download = cpu_in_place,
  .batch = cpu_batch,
  .forward = cpu_forward,
  .backward = cpu_backward,
  .decode = cpu_decode,
  .output = cpu_output,
  .latent = cpu_latent,
  .grads = cpu_grads,
  .grads_changed = cpu_in_place,
  .accumulate = cpu_accumulate,
  .step = cpu_step,
  .grads_nonfinite = cpu_grads_nonfinite,
};
