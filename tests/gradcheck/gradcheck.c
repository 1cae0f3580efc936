/* gradcheck.c - finite-difference gradient check, in double, of one generated model.
 * Built by tests/gradcheck/run.sh with -DAERT_DOUBLE around the model's own model.c,
 * so the kernels checked are the generated ones, not a copy. For a sample of entries
 * of every trainable parameter, the central difference of the loss must match the
 * gradient that model_backward wrote; frozen parameters must get none. The gradients go
 * to a file for gradcheck_f32.c, the trainer's own build on the same point. */
#include "model.c"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fill.h"

#define SAMPLES_PER_TENSOR 8
#define TOLERANCE 1e-6
#define STEP 1e-5   /* relative to the entry (at least 1): rounding noise eps |loss| / STEP, truncation STEP^2 */

int main(int argc, char **argv) {
  static aert_real P[AEC_PARAM_FLOATS], G[AEC_PARAM_FLOATS], A[AEC_ARENA_FLOATS];
  static aert_real X[AEC_BATCH * AEC_IN_SIZE], T[AEC_BATCH * (AEC_TARGET_SIZE ? AEC_TARGET_SIZE : 1)];
  uint64_t s = 42, seed = 7;
  gradcheck_fill(params, (int)(sizeof params / sizeof params[0]), P, X, T, AEC_BATCH, AEC_IN_SIZE, AEC_TARGET_SIZE,
                 AEC_N_CLASSES, &s);
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
      long j = q->offset + (q->size <= SAMPLES_PER_TENSOR ? k : (long)(gradcheck_urand(&s) * q->size));
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
