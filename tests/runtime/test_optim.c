/* test_optim.c - one and two optimizer steps against PyTorch, frozen parameters, schedules.
 * Reference numbers: /usr/bin/python3 with torch 2.x, p = [0.5, -1, 2], gradients
 * [0.1, -0.2, 0.3] then [-0.05, 0.4, 0.25], e.g. torch.optim.Adam([p], lr=0.01,
 * betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1); p.grad = g; opt.step(). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "toy_model.h"

static const aert_param one[] = {{"p", 1, {3}, 3, 0, AERT_INIT_ZEROS, 3, 3, 0, NULL, NULL}};

static void two_steps(aert_optim h, const float want1[3], const float want2[3]) {
  aert_model m = {.name = "opt", .n_params = 1, .params = one, .param_floats = 3, .optim = h};
  float p[3] = {0.5f, -1.0f, 2.0f};
  const float g[2][3] = {{0.1f, -0.2f, 0.3f}, {-0.05f, 0.4f, 0.25f}};
  aert_optimizer o;
  cr_assert_eq(aert_optim_init(&o, &m), 0);
  for (int s = 0; s < 2; s++) {
    aert_optim_step(&o, &m, p, g[s], h.lr);
    for (int i = 0; i < 3; i++)
      cr_assert_float_eq(p[i], (s ? want2 : want1)[i], 2e-7, "step %d elem %d: %.9g", s + 1, i, p[i]);
  }
  aert_optim_free(&o);
}

Test(optim, sgd_momentum_matches_pytorch) {
  aert_optim h = {.kind = AERT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
  two_steps(h, (float[]){0.489499986f, -0.978999972f, 1.96800005f},
            (float[]){0.48456049f, -0.999120951f, 1.91223204f});
}

Test(optim, adam_l2_matches_pytorch) {
  aert_optim h = {.kind = AERT_OPT_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                  .eps = 1e-8f, .weight_decay = 0.1f};
  two_steps(h, (float[]){0.49000001f, -0.99000001f, 1.99000001f},
            (float[]){0.483349204f, -0.990542948f, 1.98004234f});
}

Test(optim, adamw_decoupled_matches_pytorch) {
  aert_optim h = {.kind = AERT_OPT_ADAMW, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                  .eps = 1e-8f, .weight_decay = 0.1f};
  two_steps(h, (float[]){0.489500016f, -0.989000022f, 1.98800004f},
            (float[]){0.486347139f, -0.991672099f, 1.97610033f});
}

Test(optim, frozen_parameters_never_move) {
  aert_param ps[2] = {{"a", 1, {2}, 2, 0, AERT_INIT_ZEROS, 1, 1, 1, NULL, NULL},
                      {"b", 1, {2}, 2, 2, AERT_INIT_ZEROS, 1, 1, 0, NULL, NULL}};
  aert_model m = {.n_params = 2, .params = ps, .param_floats = 4,
                  .optim = {.kind = AERT_OPT_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}};
  float p[4] = {1, 1, 1, 1}, g[4] = {1, 1, 1, 1};
  aert_optimizer o;
  aert_optim_init(&o, &m);
  aert_optim_step(&o, &m, p, g, 0.1f);
  cr_assert(p[0] == 1 && p[1] == 1, "frozen 'a' unchanged");
  cr_assert_float_eq(p[2], 0.9f, 1e-6, "'b' moved by lr");
  aert_optim_free(&o);
}

/* torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True):
 * d = g + wd*p; buf = mu*buf + d; p -= lr*(d + mu*buf). */
Test(optim, sgd_nesterov_matches_pytorch) {
  aert_optim h = {.kind = AERT_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = 1};
  two_steps(h, (float[]){0.480049998f, -0.960099995f, 1.93920004f},
            (float[]){0.480132908f, -1.0172658f, 1.86209559f});
}

static float lr_at(const aert_optim *o, long step, long per_epoch, int epochs) {
  return aert_lr_at(o, 0.1f, (aert_clock){.step = step, .per_epoch = per_epoch, .epochs = epochs}, 0);
}

/* At the first step of each epoch the per-step schedules give the per-epoch formulas. */
Test(optim, schedules_per_step) {
  aert_optim c = {.schedule = AERT_SCHED_CONSTANT};
  aert_optim s = {.schedule = AERT_SCHED_STEP, .sched_gamma = 0.5f, .sched_step = 3};
  aert_optim e = {.schedule = AERT_SCHED_EXPONENTIAL, .sched_gamma = 0.9f};
  aert_optim k = {.schedule = AERT_SCHED_COSINE, .sched_min_lr = 0.001f};
  cr_assert_eq(lr_at(&c, 70, 10, 10), 0.1f);
  cr_assert_float_eq(lr_at(&s, 29, 10, 10), 0.1f, 1e-9, "step holds for whole epochs");
  cr_assert_float_eq(lr_at(&s, 30, 10, 10), 0.05f, 1e-9);
  cr_assert_float_eq(lr_at(&s, 60, 10, 10), 0.025f, 1e-9);
  cr_assert_float_eq(lr_at(&e, 20, 10, 10), 0.081f, 1e-7);
  cr_assert_float_eq(lr_at(&e, 5, 10, 10), 0.1f * powf(0.9f, 0.5f), 1e-7, "exponential moves within an epoch");
  cr_assert_float_eq(lr_at(&k, 0, 10, 10), 0.1f, 1e-7);
  cr_assert_float_eq(lr_at(&k, 50, 10, 10), 0.0505f, 1e-7);
  cr_assert_float_eq(lr_at(&k, 100, 10, 10), 0.001f, 1e-7);
  float prev = 1;   /* cosine over a one-epoch run of 8 steps falls at every step */
  for (long i = 0; i < 8; i++) {
    float lr = lr_at(&k, i, 8, 1);
    cr_assert_lt(lr, prev, "step %ld: %g", i, lr);
    prev = lr;
  }
}

/* Warm-up: lr*(i+1)/W for steps i < W, then the schedule from its start over the rest. */
Test(optim, warmup_then_cosine) {
  aert_optim k = {.schedule = AERT_SCHED_COSINE, .warmup_steps = 4, .warmup_epochs = 1};   /* W = 4 + 10 */
  cr_assert_float_eq(lr_at(&k, 0, 10, 3), 0.1f / 14, 1e-9);
  cr_assert_float_eq(lr_at(&k, 6, 10, 3), 0.1f * 7 / 14, 1e-8);
  cr_assert_float_eq(lr_at(&k, 13, 10, 3), 0.1f, 1e-8);
  cr_assert_float_eq(lr_at(&k, 14, 10, 3), 0.1f, 1e-8, "the cosine starts after the warm-up");
  cr_assert_float_eq(lr_at(&k, 22, 10, 3), 0.05f, 1e-7, "halfway through the 16 steps left");
}

/* plateau: PyTorch's ReduceLROnPlateau (threshold 1e-4 relative); early stopping: Keras's
 * EarlyStopping with min_delta. */
Test(optim, plateau_and_stop_watch) {
  aert_optim o = {.schedule = AERT_SCHED_PLATEAU, .plateau_factor = 0.5f, .plateau_patience = 1,
                  .stop_min_delta = 0.1f};
  aert_train_state st = {.stop_best = INFINITY, .plateau_best = INFINITY};
  const double losses[] = {1.0, 0.95, 0.95, 0.95, 0.5};
  const int cuts[] = {0, 0, 0, 1, 1}, since[] = {0, 1, 2, 3, 0};
  for (int i = 0; i < 5; i++) {
    aert_watch_epoch(&o, &st, losses[i]);
    cr_assert_eq(st.plateau_cuts, cuts[i], "epoch %d: %d cuts", i + 1, st.plateau_cuts);
    cr_assert_eq(st.since_best, since[i], "epoch %d: %d epochs without progress", i + 1, st.since_best);
  }
  cr_assert_float_eq(aert_lr_at(&o, 0.1f, (aert_clock){.step = 7, .per_epoch = 2, .epochs = 5}, st.plateau_cuts),
                     0.05f, 1e-9);
}

/* clip_grad_norm_ over the trainable parameters only; accumulation's mean. */
Test(optim, clip_and_accumulate) {
  aert_param ps[2] = {{"a", 1, {2}, 2, 0, AERT_INIT_ZEROS, 1, 1, 0, NULL, NULL},
                      {"f", 1, {2}, 2, 2, AERT_INIT_ZEROS, 1, 1, 1, NULL, NULL}};
  aert_model m = {.n_params = 2, .params = ps, .param_floats = 4};
  float g[4] = {3, 4, 100, 100}, sum[4] = {0};
  cr_assert_float_eq(aert_clip_grad_norm(&m, g, 1.0f), 5.0, 1e-9, "the frozen 'f' is not counted");
  cr_assert_float_eq(g[0], 3 / (5 + 1e-6), 1e-6);
  cr_assert_float_eq(g[1], 4 / (5 + 1e-6), 1e-6);
  cr_assert(g[2] == 100 && g[3] == 100, "a frozen gradient is left alone");
  float small[4] = {0.3f, 0.4f, 0, 0};
  aert_clip_grad_norm(&m, small, 1.0f);
  cr_assert(small[0] == 0.3f && small[1] == 0.4f, "a norm below the limit is not touched");
  float g1[4] = {1, 2, 0, 0}, g2[4] = {3, 6, 0, 0};
  aert_grad_accumulate(&m, sum, g1, 1);
  aert_grad_accumulate(&m, sum, g2, 0);
  aert_grad_mean(&m, sum, 2);
  cr_assert(sum[0] == 2 && sum[1] == 4, "mean of the group: %g %g", sum[0], sum[1]);
}

Test(optim, init_is_seeded_and_scaled) {
  float *a = calloc(51000, sizeof(float)), *b = calloc(51000, sizeof(float));
  cr_assert_eq(aert_init_params(&toy_model, a, 7), 0);
  cr_assert_eq(aert_init_params(&toy_model, b, 7), 0);
  cr_assert(!memcmp(a, b, sizeof(float) * toy_model.param_floats), "same seed, same weights");
  aert_init_params(&toy_model, b, 8);
  cr_assert(memcmp(a, b, sizeof(float) * toy_model.param_floats), "another seed, other weights");
  double lim = sqrt(6.0 / (784 + 32)), sq = 0;
  for (long i = 0; i < 784 * 32; i++) {
    cr_assert(fabs(a[i]) <= lim);
    sq += a[i] * a[i];
  }
  cr_assert_float_eq(sq / (784 * 32), lim * lim / 3, lim * lim / 30, "uniform variance");
  cr_assert_eq(a[784 * 32], 0.0f, "enc.b zeros");
  double s1 = 0, s2 = 0;
  for (int i = 0; i < 100000; i++) {
    double v = aert_normal(3, (uint64_t)i);
    s1 += v, s2 += v * v;
  }
  cr_assert(fabs(s1 / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.02, "aert_normal is N(0,1)");
  free(a);
  free(b);
}
