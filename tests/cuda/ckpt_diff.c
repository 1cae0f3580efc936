/* ckpt_diff.c - the parameters of two checkpoints of one model, tensor by tensor: the largest
 * difference of a tensor relative to its largest magnitude (in the first checkpoint). Used by
 * tests/cuda/specs.sh on the last.ckpt of the CPU and the emulated CUDA trainer after the
 * same training steps. Tensors with a '/' in their name (the optimizer's moments
 * "<param>/adam_m", the run's "train/..." and "data/...") are not parameters and are skipped.
 *
 *   ckpt_diff A.ckpt B.ckpt TOL   prints the optimizer steps of each and the worst tensor;
 *                                 exit status 1 when it is over TOL or the steps differ */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aert_internal.h"

static float value(const aert_tensor *t, long i) {
  float v;
  memcpy(&v, t->data + 4 * i, 4);   /* little-endian in the file, as on the hosts aec runs on */
  return v;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: ckpt_diff A.ckpt B.ckpt TOL\n"); return 2; }
  aert_ckpt a, b;
  if (aert_ckpt_load(argv[1], &a) != 0 || aert_ckpt_load(argv[2], &b) != 0) return 2;
  double worst = 0;
  const char *at = "all equal";
  int compared = 0, missing = 0;
  for (int k = 0; k < a.n; k++) {
    const aert_tensor *ta = &a.t[k], *tb = aert_ckpt_find(&b, ta->name);
    if (strchr(ta->name, '/')) continue;
    if (!tb || tb->size != ta->size) { fprintf(stderr, "ckpt_diff: %s is not in %s alike\n", ta->name, argv[2]); missing++; continue; }
    double big = 0, d = 0;
    for (long i = 0; i < ta->size; i++) {
      double x = value(ta, i), y = value(tb, i);
      big = fmax(big, fabs(x));
      d = fabs(x - y) > d || x != x || y != y ? (x != x || y != y ? INFINITY : fabs(x - y)) : d;
    }
    double w = big > 0 ? d / big : d;
    if (w > worst) worst = w, at = ta->name;
    compared++;
  }
  printf("%ld and %ld optimizer steps; %d parameter tensors, worst %.1e (%s)\n", (long)a.st.step, (long)b.st.step, compared, worst, at);
  int ok = !missing && compared > 0 && a.st.step == b.st.step && worst <= atof(argv[3]);
  aert_ckpt_free(&a);
  aert_ckpt_free(&b);
  return ok ? 0 : 1;
}
