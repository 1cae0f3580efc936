/* gradcheck_f32.c - the trainer's own build of a model (float, the trainer's compiler flags,
 * model.c compiled on its own with -DAEC_NO_MAIN) on the point gradcheck.c checked in
 * double: its gradients must be the double build's, tensor by tensor (relative L2 error,
 * 1e-2; floats move it by 1e-6 to 1e-4). This catches what the optimiser of the real build
 * and the vector kernels of this machine do to the generated code, which the double check
 * at -O1 never sees. It reaches the model through its descriptor, as the trainer does, so
 * the object it links is the one a trainer links too (tests/specgen does). */
#include <stdio.h>
#include <stdlib.h>

#include "aert_kernels.h"   /* aert_real */
#include "fill.h"

extern const aert_model aec_model;

int main(int argc, char **argv) {
  const aert_model *m = &aec_model;
  long target = m->target_size ? m->target_size : 1;
  aert_real *P = calloc((size_t)m->param_floats, sizeof *P), *G = calloc((size_t)m->param_floats, sizeof *G);
  aert_real *A = calloc((size_t)m->arena_floats, sizeof *A), *X = calloc((size_t)(m->batch * m->in_size), sizeof *X);
  aert_real *T = calloc((size_t)(m->batch * target), sizeof *T);
  double *want = calloc((size_t)m->param_floats, sizeof *want);
  if (!P || !G || !A || !X || !T || !want) { fprintf(stderr, "gradcheck_f32: out of memory\n"); return 2; }
  uint64_t s = 42, seed = 7;
  FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
  if (!f || fread(want, sizeof *want, (size_t)m->param_floats, f) != (size_t)m->param_floats) {
    fprintf(stderr, "gradcheck_f32: cannot read the double gradients from %s\n", argc == 2 ? argv[1] : "(none given)");
    return 2;
  }
  fclose(f);
  gradcheck_fill(m->params, m->n_params, P, X, T, m->batch, m->in_size, m->target_size, m->n_classes, &s);
  m->forward(P, A, X, T, 1, seed, NULL);
  m->backward(P, G, A, X, T, seed);
  double all = 0;
  for (long j = 0; j < m->param_floats; j++) all += want[j] * want[j];
  int bad = 0;
  for (int i = 0; i < m->n_params; i++) {
    const aert_param *q = &m->params[i];
    double d2 = 0, w2 = 0;
    for (long j = q->offset; j < q->offset + q->size; j++) d2 += (G[j] - want[j]) * (G[j] - want[j]), w2 += want[j] * want[j];
    double rel = sqrt(d2) / fmax(sqrt(w2), 1e-3 * sqrt(all) + 1e-30), limit = 1e-2;
    /* A gradient that is zero by construction (a bias right before a batch norm, which
     * subtracts the batch mean: double gives ~1e-17 of the total) is pure rounding noise in
     * float, amplified by the batch norm's 1/sigma; it must stay small against the whole
     * gradient (1e-3 of it), not against itself. */
    if (w2 <= 1e-18 * all) rel = sqrt(d2) / (sqrt(all) + 1e-30), limit = 1e-3;
    if (rel > limit) { printf("  %s: the float build's gradient is %.2g away from the double build's\n", q->name, rel); bad++; }
  }
  printf("%s: float build's gradients %s\n", m->name, bad ? "DIFFER" : "agree with the double build's");
  free(P), free(G), free(A), free(X), free(T), free(want);
  return bad ? 1 : 0;
}
