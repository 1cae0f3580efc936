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

Test(optim, schedules) {
  aert_optim c = {.schedule = AERT_SCHED_CONSTANT};
  aert_optim s = {.schedule = AERT_SCHED_STEP, .sched_gamma = 0.5f, .sched_step = 3};
  aert_optim e = {.schedule = AERT_SCHED_EXPONENTIAL, .sched_gamma = 0.9f};
  aert_optim k = {.schedule = AERT_SCHED_COSINE, .sched_min_lr = 0.001f};
  cr_assert_float_eq(aert_sched_lr(&c, 0.1f, 7, 10), 0.1f, 1e-9);
  cr_assert_float_eq(aert_sched_lr(&s, 0.1f, 2, 10), 0.1f, 1e-9);
  cr_assert_float_eq(aert_sched_lr(&s, 0.1f, 3, 10), 0.05f, 1e-9);
  cr_assert_float_eq(aert_sched_lr(&s, 0.1f, 6, 10), 0.025f, 1e-9);
  cr_assert_float_eq(aert_sched_lr(&e, 0.1f, 2, 10), 0.081f, 1e-7);
  cr_assert_float_eq(aert_sched_lr(&k, 0.1f, 0, 10), 0.1f, 1e-7);
  cr_assert_float_eq(aert_sched_lr(&k, 0.1f, 5, 10), 0.0505f, 1e-7);
  cr_assert_float_eq(aert_sched_lr(&k, 0.1f, 10, 10), 0.001f, 1e-7);
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
