/* fill.h - the point every gradient check of tests/gradcheck starts from: parameters drawn
 * as their initialisers would scale them (batch norm scales near 1), inputs in (0.05,
 * 0.95), class targets with about one in ten ignored (-1), image targets like inputs. The
 * double check (gradcheck.c, model.c's static tables) and the float build of the trainer
 * (gradcheck_f32.c, the model's descriptor) draw the same values from the same seed. */
#ifndef GRADCHECK_FILL_H
#define GRADCHECK_FILL_H

#include <math.h>
#include <stdint.h>

#include "aert.h"

static double gradcheck_urand(uint64_t *s) {
  *s = aert_hash64(*s);
  return (double)(*s >> 11) / 9007199254740992.0;
}

static void gradcheck_fill(const aert_param *params, int n_params, aert_real *p, aert_real *x, aert_real *t, long batch,
                           long in_size, long target_size, int n_classes, uint64_t *s) {
  for (int i = 0; i < n_params; i++) {
    const aert_param *q = &params[i];
    double scale = q->fan_in ? sqrt(3.0 / q->fan_in) : 0.2;
    for (long j = 0; j < q->size; j++) {
      double u = gradcheck_urand(s) * 2 - 1;
      p[q->offset + j] = q->init == AERT_INIT_ONES ? 1 + 0.2 * fabs(u) : scale * u;
    }
  }
  for (long i = 0; i < batch * in_size; i++) x[i] = 0.05 + 0.9 * gradcheck_urand(s);
  for (long i = 0; i < batch * target_size; i++)
    t[i] = n_classes ? (gradcheck_urand(s) < 0.1 ? -1 : (int)(gradcheck_urand(s) * n_classes)) : 0.05 + 0.9 * gradcheck_urand(s);
}

#endif
