/* optim.c - SGD with momentum (plain or Nesterov), Adam and AdamW with PyTorch's exact
 * update rules; the learning-rate schedules, computed per optimizer step, with warm-up and
 * plateau; gradient accumulation and clipping by global norm; the epoch-end watch that
 * early stopping and plateau share. Frozen parameters are skipped; the moment buffers and
 * the step count are saved in checkpoints (ckpt.c). */
#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "aert_internal.h"

int aert_optim_init(aert_optimizer *o, const aert_model *m) {
  o->kind = m->optim.kind;
  o->n = m->param_floats;
  o->step = 0;
  o->m = aert_alloc_aligned(sizeof(float) * o->n, "optimizer state");
  o->v = o->kind == AERT_OPT_SGD ? NULL : aert_alloc_aligned(sizeof(float) * o->n, "optimizer state");
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

/* torch.optim.SGD, dampening 0: buf = mu*buf + g; p -= lr*buf, or with Nesterov
 * p -= lr*(g + mu*buf). The settings are copied to locals and the arrays are restrict so
 * that the loops vectorise. */
static void sgd(const aert_optim *h, float *restrict p, const float *restrict g, float *restrict buf, long n,
                float lr) {
  const float wd = h->weight_decay, mu = h->momentum;
  if (mu != 0.0f && h->nesterov) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (long i = 0; i < n; i++) {
      float gi = g[i] + wd * p[i];
      float b = buf[i] = mu * buf[i] + gi;
      p[i] -= lr * (gi + mu * b);
    }
    return;
  }
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

/* The library is built for any x86-64; the Adam update, a tenth of a dense model's step,
 * is also compiled for AVX2 and AVX-512 and the loader picks the clone the CPU runs
 * (target_clones). Without contraction into FMA every clone rounds each operation as the
 * baseline build does: the same bits on any of them. The Makefile builds this file
 * without errno for sqrtf, so that the loop vectorises. */

typedef struct {
  float step_size, bc2_sqrt, eps, one_b1, b2, one_b2, wd, shrink;
} adam_consts;

/* Adam over [lo, hi) of one tensor. */
AERT_CLONES static void adam_span(const adam_consts *c, float *restrict p, const float *restrict g, float *restrict m,
                                  float *restrict v, long lo, long hi) {
  const float step_size = c->step_size, bc2_sqrt = c->bc2_sqrt, eps = c->eps, one_b1 = c->one_b1, b2 = c->b2;
  const float one_b2 = c->one_b2, wd = c->wd, shrink = c->shrink;
#pragma omp simd
  for (long i = lo; i < hi; i++) {
    float pi = p[i] * shrink, gi = g[i] + wd * pi;
    float mi = m[i] + (gi - m[i]) * one_b1, vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi, v[i] = vi;
    p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
  }
}

/* torch.optim.Adam / AdamW (single-tensor path): bias corrections in double, the
 * update in float; Adam's weight decay is L2 in the gradient, AdamW's is decoupled.
 * Threads take equal spans (elementwise: the same bits for any thread count). */
static void adam(const aert_optim *h, int decoupled, long step, float *restrict p, const float *restrict g,
                 float *restrict m, float *restrict v, long n, float lr) {
  double bc1 = 1.0 - pow(h->beta1, (double)step), bc2 = 1.0 - pow(h->beta2, (double)step);
  adam_consts c = {(float)(lr / bc1), (float)sqrt(bc2), h->eps, 1.0f - h->beta1, h->beta2, 1.0f - h->beta2,
                   decoupled ? 0.0f : h->weight_decay, decoupled ? 1.0f - lr * h->weight_decay : 1.0f};
#pragma omp parallel if (n > 32768)
  {
#ifdef _OPENMP
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else   /* the fuzz targets build the runtime without OpenMP */
    int t = 0, nt = 1;
#endif
    adam_span(&c, p, g, m, v, n * t / nt, n * (t + 1) / nt);
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

long aert_warmup_steps(const aert_optim *o, long per_epoch) {
  return o->warmup_steps + (long)o->warmup_epochs * per_epoch;
}

/* The schedule s optimizer steps after the warm-up. Step holds its value for whole epochs;
 * exponential and cosine move every step (exponential by gamma per epoch). */
static float schedule_lr(const aert_optim *o, float base_lr, long s, aert_clock c) {
  long total = c.epochs * c.per_epoch - aert_warmup_steps(o, c.per_epoch);
  switch (o->schedule) {
  case AERT_SCHED_STEP:
    return base_lr * powf(o->sched_gamma, (float)(s / c.per_epoch / (o->sched_step > 0 ? o->sched_step : 1)));
  case AERT_SCHED_EXPONENTIAL:
    return base_lr * powf(o->sched_gamma, (float)((double)s / c.per_epoch));
  case AERT_SCHED_COSINE:
    if (total <= 0)
      return base_lr;
    return o->sched_min_lr +
           (base_lr - o->sched_min_lr) * 0.5f * (1.0f + cosf((float)(M_PI * (s < total ? (double)s / total : 1.0))));
  case AERT_SCHED_CONSTANT:
  case AERT_SCHED_PLATEAU:
    break;
  }
  return base_lr;
}

float aert_lr_at(const aert_optim *o, float base_lr, aert_clock c, int plateau_cuts) {
  if (c.per_epoch < 1)
    c.per_epoch = 1;
  long warm = aert_warmup_steps(o, c.per_epoch);
  float lr = c.step < warm ? schedule_lr(o, base_lr, 0, c) * (float)((double)(c.step + 1) / warm)
                           : schedule_lr(o, base_lr, c.step - warm, c);
  if (o->schedule == AERT_SCHED_PLATEAU && plateau_cuts > 0)
    lr *= powf(o->plateau_factor, (float)plateau_cuts);
  return lr;
}

/* Only trainable parameters: a frozen one's gradient is never used. */
/* The trainable values' squares, summed per chunk of the arena in order, then the chunks' sums
 * in order (tensors lie in the arena in table order; a chunk without a trainable value adds
 * nothing, as its zero sum would not change the total). */
static double grad_sq_norm(const aert_model *m, const float *g) {
  double sum = 0, part = 0;
  long chunk = 0;
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    for (long i = 0; !p->frozen && i < p->size; i++) {
      long at = p->offset + i;
      if (at / AERT_NORM_CHUNK != chunk) {
        sum += part;
        part = 0;
        chunk = at / AERT_NORM_CHUNK;
      }
      part += (double)g[at] * g[at];
    }
  }
  return sum + part;
}

static void grad_scale(const aert_model *m, float *g, float f) {
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    for (long i = 0; !p->frozen && i < p->size; i++)
      g[p->offset + i] *= f;
  }
}

void aert_grad_accumulate(const aert_model *m, float *sum, const float *g, int first) {
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    float *restrict s = sum + p->offset;
    const float *restrict gi = g + p->offset;
    for (long i = 0; !p->frozen && i < p->size; i++)
      s[i] = first ? gi[i] : s[i] + gi[i];
  }
}

void aert_grad_mean(const aert_model *m, float *sum, int batches) {
  if (batches > 1)
    grad_scale(m, sum, 1.0f / (float)batches);
}

/* torch.nn.utils.clip_grad_norm_: the coefficient max/(norm + 1e-6), applied when below 1. */
double aert_clip_grad_norm(const aert_model *m, float *g, float max_norm) {
  double norm = sqrt(grad_sq_norm(m, g)), coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    grad_scale(m, g, (float)coef);
  return norm;
}

/* Progress for early stopping is a loss below its best by more than min_delta (Keras's
 * EarlyStopping); for plateau, below its best times 1 - 1e-4 (PyTorch's ReduceLROnPlateau,
 * relative threshold), and more than `patience` epochs without it cut the rate once. */
void aert_watch_epoch(const aert_optim *o, aert_train_state *st, double loss) {
  if (loss < (double)st->stop_best - o->stop_min_delta) {
    st->stop_best = (float)loss;
    st->since_best = 0;
  } else {
    st->since_best++;
  }
  if (o->schedule != AERT_SCHED_PLATEAU)
    return;
  if (loss < (double)st->plateau_best * (1.0 - 1e-4)) {
    st->plateau_best = (float)loss;
    st->plateau_bad = 0;
  } else if (++st->plateau_bad > o->plateau_patience) {
    st->plateau_cuts++;
    st->plateau_bad = 0;
  }
}
