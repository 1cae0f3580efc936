/* init.c - deterministic parameter initialisation: each tensor draws from a stream keyed
 * by the run seed and its name (so adding a layer does not change the others), then
 * tensors with init_from are overwritten from their checkpoint. */
#include <math.h>
#include <string.h>
#include "aert_internal.h"

float aert_normal(uint64_t seed, uint64_t i) {
  float u1 = aert_uniform(seed, 2 * i), u2 = aert_uniform(seed, 2 * i + 1);
  return aert_box_muller(u1, u2);
}

static uint64_t name_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

static void init_tensor(const aert_param *p, float *w, uint64_t seed) {
  uint64_t s = aert_hash64(seed ^ name_hash(p->name));
  int fan_in = p->fan_in > 0 ? p->fan_in : 1, fan_out = p->fan_out > 0 ? p->fan_out : 1;
  float he = sqrtf(2.0f / fan_in), lim = sqrtf(6.0f / (fan_in + fan_out));
  for (long i = 0; i < p->size; i++) {
    switch (p->init) {
    case AERT_INIT_ZEROS: w[i] = 0.0f; break;
    case AERT_INIT_ONES: w[i] = 1.0f; break;
    case AERT_INIT_HE_NORMAL: w[i] = he * aert_normal(s, (uint64_t)i); break;
    case AERT_INIT_GLOROT_UNIFORM: w[i] = lim * (2.0f * aert_uniform(s, (uint64_t)i) - 1.0f); break;
    }
  }
}

/* Loads every init_from tensor, opening each distinct checkpoint once. */
static int load_imports(const aert_model *m, float *params) {
  for (int k = 0; k < m->n_params; k++) {
    const aert_param *p = &m->params[k];
    if (!p->init_from)
      continue;
    int seen = 0;
    for (int j = 0; j < k; j++)
      seen |= m->params[j].init_from && !strcmp(m->params[j].init_from, p->init_from);
    if (seen)
      continue;
    aert_ckpt ck;
    if (aert_ckpt_load(p->init_from, &ck) != 0)
      return -1;
    int rc = 0;
    for (int j = k; j < m->n_params && rc == 0; j++) {
      const aert_param *q = &m->params[j];
      if (q->init_from && !strcmp(q->init_from, p->init_from))
        rc = aert_ckpt_get(&ck, q->init_name ? q->init_name : q->name, q->rank, q->shape,
                           params + q->offset);
    }
    aert_ckpt_free(&ck);
    if (rc)
      return -1;
  }
  return 0;
}

int aert_init_params(const aert_model *m, float *params, uint64_t seed) {
  for (int k = 0; k < m->n_params; k++)
    init_tensor(&m->params[k], params + m->params[k].offset, seed);
  return load_imports(m, params);
}
