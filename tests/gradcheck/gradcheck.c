/* gradcheck.c - finite-difference gradient check, in double, of one generated model.
 * Built by tests/gradcheck/run.sh with -DAERT_DOUBLE around the model's own model.c,
 * so the kernels checked are the generated ones, not a copy. For a sample of entries
 * of every trainable parameter, the central difference of the loss must match the
 * gradient that model_backward wrote; frozen parameters must get none. */
#include "model.c"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define SAMPLES_PER_TENSOR 8
#define TOLERANCE 1e-6
#define STEP 1e-5   /* relative to the entry (at least 1): rounding noise eps |loss| / STEP, truncation STEP^2 */

static double urand(uint64_t *s) {
  *s = aert_hash64(*s);
  return (double)(*s >> 11) / 9007199254740992.0;
}

static void fill(aert_real *p, aert_real *x, aert_real *t, uint64_t *s) {
  for (int i = 0; i < (int)(sizeof params / sizeof params[0]); i++) {
    const aert_param *q = &params[i];
    double scale = q->fan_in ? sqrt(3.0 / q->fan_in) : 0.2;
    for (long j = 0; j < q->size; j++) {
      double u = urand(s) * 2 - 1;
      p[q->offset + j] = q->init == AERT_INIT_ONES ? 1 + 0.2 * fabs(u) : scale * u;
    }
  }
  for (long i = 0; i < (long)AEC_BATCH * AEC_IN_SIZE; i++) x[i] = 0.05 + 0.9 * urand(s);
  for (long i = 0; i < (long)AEC_BATCH * AEC_TARGET_SIZE; i++)
    t[i] = AEC_N_CLASSES ? (urand(s) < 0.1 ? -1 : (int)(urand(s) * AEC_N_CLASSES)) : 0.05 + 0.9 * urand(s);
}

#ifndef AERT_DOUBLE
/* The trainer's own build (float, the trainer's compiler flags) on the same parameters and
 * batch: its gradients must be the double build's, tensor by tensor (relative L2 error,
 * 1e-2; floats move it by 1e-6 to 1e-4). This catches what the optimiser of the real build
 * does to the generated code, which the double check at -O1 never sees. */
int main(int argc, char **argv) {
  static aert_real P[AEC_PARAM_FLOATS], G[AEC_PARAM_FLOATS], A[AEC_ARENA_FLOATS];
  static aert_real X[AEC_BATCH * AEC_IN_SIZE], T[AEC_BATCH * (AEC_TARGET_SIZE ? AEC_TARGET_SIZE : 1)];
  static double want[AEC_PARAM_FLOATS];
  uint64_t s = 42, seed = 7;
  FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
  if (!f || fread(want, sizeof want, 1, f) != 1) { fprintf(stderr, "gradcheck: cannot read the double gradients\n"); return 2; }
  fclose(f);
  fill(P, X, T, &s);
  model_forward(P, A, X, T, 1, seed, NULL);
  model_backward(P, G, A, X, T, seed);
  double all = 0;
  for (long j = 0; j < AEC_PARAM_FLOATS; j++) all += want[j] * want[j];
  int bad = 0, n = (int)(sizeof params / sizeof params[0]);
  for (int i = 0; i < n; i++) {
    const aert_param *q = &params[i];
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
  printf("%s: float build's gradients %s\n", AEC_MODEL_NAME, bad ? "DIFFER" : "agree with the double build's");
  return bad ? 1 : 0;
}
#else
int main(int argc, char **argv) {
  static aert_real P[AEC_PARAM_FLOATS], G[AEC_PARAM_FLOATS], A[AEC_ARENA_FLOATS];
  static aert_real X[AEC_BATCH * AEC_IN_SIZE], T[AEC_BATCH * (AEC_TARGET_SIZE ? AEC_TARGET_SIZE : 1)];
  uint64_t s = 42, seed = 7;
  fill(P, X, T, &s);
  double loss = model_forward(P, A, X, T, 1, seed, NULL);
  model_backward(P, G, A, X, T, seed);
  FILE *f = argc == 2 ? fopen(argv[1], "wb") : NULL;   /* for the float build's comparison */
  if (argc == 2 && (!f || fwrite(G, sizeof G, 1, f) != 1 || fclose(f) != 0)) { perror(argv[1]); return 2; }
  /* the central difference carries the loss's rounding error over h: about 1e-14 |loss| / h
   * for a loss summed over thousands of values through batch norms and softmaxes (seen in
   * generated specs), so the floor of the comparison grows with the loss */
  double floor = 1e-2 * fmax(1, fabs(loss));
  int checked = 0, bad = 0, kinks = 0;
  for (int i = 0; i < (int)(sizeof params / sizeof params[0]); i++) {
    const aert_param *q = &params[i];
    for (int k = 0; k < SAMPLES_PER_TENSOR && k < q->size; k++) {
      long j = q->offset + (q->size <= SAMPLES_PER_TENSOR ? k : (long)(urand(&s) * q->size));
      if (q->frozen) {
        if (G[j] != 0) { printf("  %s[%ld]: frozen, but its gradient is %g\n", q->name, j - q->offset, G[j]); bad++; }
        continue;
      }
      /* a kink (relu, l1, max-pool, a clip) within h of this point says nothing of the
       * backward pass: there the one-sided differences disagree by as much as the error
       * (a wrong gradient of a smooth loss leaves them equal), or, with two kinks, the
       * error goes away at a tenth of the step (a wrong gradient stays wrong) */
      double keep = P[j], h = STEP * (fabs(keep) > 1 ? fabs(keep) : 1), ana = G[j], num = 0, err = 0;
      bool kink = false;
      for (int tries = 0; tries < 2; tries++, h /= 10) {
        P[j] = keep + h;
        double up = model_forward(P, A, X, T, 1, seed, NULL);
        P[j] = keep - h;
        double down = model_forward(P, A, X, T, 1, seed, NULL);
        P[j] = keep;
        num = (up - down) / (2 * h);
        err = fabs(num - ana) / fmax(fabs(num) + fabs(ana), floor);
        kink = fabs((up - loss) / h - (loss - down) / h) >= fabs(num - ana);
        if (err <= TOLERANCE || kink) break;
      }
      if (err > TOLERANCE && kink) { kinks++; continue; }
      checked++;
      if (err > TOLERANCE) { printf("  %s[%ld]: numeric %.10g, backward %.10g (relative error %.2g)\n", q->name, j - q->offset, num, ana, err); bad++; }
    }
  }
  printf("%s: %d gradient entries checked, %d wrong", AEC_MODEL_NAME, checked, bad);
  printf(kinks ? " (%d at a kink of the loss, not compared)\n" : "\n", kinks);
  return bad ? 1 : 0;
}
#endif
