/* optim.c - SGD with momentum, Adam and AdamW with PyTorch's exact update rules, and the
 * per-epoch learning-rate schedules. Frozen parameters are skipped; the moment buffers
 * and the step count are saved in checkpoints (ckpt.c). */
#include <math.h>
#include <stdlib.h>
#include "aert_internal.h"

int aert_optim_init(aert_optimizer *o, const aert_model *m) {
  o->kind = m->optim.kind;
  o->n = m->param_floats;
  o->step = 0;
  o->m = aert_alloc(sizeof(float) * o->n, "optimizer state");
  o->v = o->kind == AERT_OPT_SGD ? NULL : aert_alloc(sizeof(float) * o->n, "optimizer state");
  if (!o->m || (o->kind != AERT_OPT_SGD && !o->v)) {
    aert_optim_free(o);
    return -1;
  }
  return 0;
}

void aert_optim_free(aert_optimizer *o) {
  free(o->m);
  free(o->v);
  o->m = o->v = NULL;
}

const char *aert_optim_state_name(aert_opt_kind kind, int which) {
  if (kind == AERT_OPT_SGD)
    return which == 0 ? "momentum" : NULL;
  return which == 0 ? "adam_m" : which == 1 ? "adam_v" : NULL;
}

/* torch.optim.SGD, dampening 0, no Nesterov: buf = mu*buf + g; p -= lr*buf. The settings
 * are copied to locals and the arrays are restrict so that the loops vectorise. */
static void sgd(const aert_optim *h, float *restrict p, const float *restrict g, float *restrict buf, long n,
                float lr) {
  const float wd = h->weight_decay, mu = h->momentum;
  if (mu != 0.0f) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (long i = 0; i < n; i++) {
      float d = buf[i] = mu * buf[i] + (g[i] + wd * p[i]);
      p[i] -= lr * d;
    }
    return;
  }
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (long i = 0; i < n; i++)
    p[i] -= lr * (g[i] + wd * p[i]);
}

/* torch.optim.Adam / AdamW (single-tensor path): bias corrections in double, the
 * update in float; Adam's weight decay is L2 in the gradient, AdamW's is decoupled. */
static void adam(const aert_optim *h, int decoupled, long step, float *restrict p, const float *restrict g,
                 float *restrict m, float *restrict v, long n, float lr) {
  double bc1 = 1.0 - pow(h->beta1, (double)step), bc2 = 1.0 - pow(h->beta2, (double)step);
  const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = h->eps;
  const float one_b1 = 1.0f - h->beta1, b2 = h->beta2, one_b2 = 1.0f - h->beta2;
  const float wd = decoupled ? 0.0f : h->weight_decay, shrink = decoupled ? 1.0f - lr * h->weight_decay : 1.0f;
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (long i = 0; i < n; i++) {
    float pi = p[i] * shrink, gi = g[i] + wd * pi;
    float mi = m[i] + (gi - m[i]) * one_b1, vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi, v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
  }
}

void aert_optim_step(aert_optimizer *o, const aert_model *m, float *params, const float *grads,
                     float lr) {
  o->step++;
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *pp = &m->params[k];
    if (pp->frozen)
      continue;
    long off = pp->offset;
    if (o->kind == AERT_OPT_SGD)
      sgd(&m->optim, params + off, grads + off, o->m + off, pp->size, lr);
    else
      adam(&m->optim, o->kind == AERT_OPT_ADAMW, o->step, params + off, grads + off, o->m + off,
           o->v + off, pp->size, lr);
  }
}

/* epoch counts from 0; epochs is the length of the whole run (cosine). */
float aert_sched_lr(const aert_optim *o, float base_lr, int epoch, int epochs) {
  switch (o->schedule) {
  case AERT_SCHED_STEP:
    return base_lr * powf(o->sched_gamma, (float)(epoch / (o->sched_step > 0 ? o->sched_step : 1)));
  case AERT_SCHED_EXPONENTIAL:
    return base_lr * powf(o->sched_gamma, (float)epoch);
  case AERT_SCHED_COSINE:
    if (epochs <= 0)
      return base_lr;
    return o->sched_min_lr +
           (base_lr - o->sched_min_lr) * 0.5f * (1.0f + cosf((float)M_PI * epoch / epochs));
  case AERT_SCHED_CONSTANT:
    break;
  }
  return base_lr;
}
