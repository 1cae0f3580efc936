/* toy_model.h - a hand-written model in the shape generated code will take, for the runtime
 * tests: a dense autoencoder 784 -> 32 (linear) -> 784 sigmoid, mean BCE over all values. */
#ifndef TOY_MODEL_H
#define TOY_MODEL_H
#include "aert_internal.h"

#define TOY_BATCH 32
#define TOY_LATENT 32

extern const aert_model toy_model;
extern const aert_model toy_other_model;   /* same tensors, another name and spec hash */
extern const aert_model toy_nan_loss_model;  /* total loss NaN on the 8th training step */
extern const aert_model toy_inf_grad_model;  /* gradient of dec.b infinite on the 2nd step */
extern const aert_model toy_family_model;  /* input noise 0.3 clipped to [0,1], and decode */
extern const aert_model toy_plain_ae_model;   /* decode, but no sampling layer: not generative */

/* Helpers shared by the tests (helpers.c). */
char *tmp_dir(void);                                   /* fresh folder under /tmp */
char *path_in(const char *dir, const char *name);
char *run_capturing_stderr(int (*fn)(void *), void *ctx, int *rc);  /* malloc'd stderr text */
int run_main(const aert_model *m, const char *args);  /* aert_main on a space-split line */
char *main_stderr(const aert_model *m, const char *args, int *rc);
#endif
