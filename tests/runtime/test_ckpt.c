/* test_ckpt.c - checkpoint round trip, and the files it must refuse: truncated, corrupted,
 * bad magic, one of other tensors; resuming with a changed optimizer; init_from loading and
 * its errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "toy_model.h"

static float *params;
static aert_optimizer opt;
static char *dir, *ck_path;

/* A checkpoint of the toy model with recognisable numbers in every tensor. */
static void setup(void) {
  dir = tmp_dir();
  ck_path = path_in(dir, "a.ckpt");
  params = malloc(sizeof(float) * toy_model.param_floats);
  aert_optim_init(&opt, &toy_model);
  for (long i = 0; i < toy_model.param_floats; i++) {
    params[i] = (float)i * 0.001f - 3.0f;
    opt.m[i] = (float)i;
    opt.v[i] = 1.0f / (float)(i + 1);
  }
  opt.step = 1234;
  aert_train_state st = {.seed = 42, .step = 99, .epoch = 3, .epochs = 10, .best_val = 0.25f,
                         .since_best = 2};
  cr_assert_eq(aert_ckpt_save(ck_path, &toy_model, &st, params, &opt), 0);
}

TestSuite(ckpt, .init = setup);

static aert_ckpt loaded;
static const char *load_path;
static int load(void *ctx) { return aert_ckpt_load(load_path, &loaded); }

static char *load_error(const char *path) {
  int rc;
  load_path = path;
  char *err = run_capturing_stderr(load, NULL, &rc);
  cr_assert_eq(rc, -1, "'%s' must be refused", path);
  cr_assert(strstr(err, path), "message names the file: %s", err);
  return err;
}

static void rewrite(const char *path, long keep, long flip) {
  unsigned char *b;
  size_t n;
  cr_assert_eq(aert_read_file(path, &b, &n), 0);
  if (flip >= 0)
    b[flip] ^= 0x40;
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, keep >= 0 ? (size_t)keep : n, f);
  fclose(f);
  free(b);
}

Test(ckpt, round_trip_restores_everything) {
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(ck_path, &ck), 0);
  cr_assert_str_eq(ck.model, "toy");
  cr_assert(ck.st.seed == 42 && ck.st.step == 99 && ck.st.epoch == 3 && ck.st.epochs == 10);
  cr_assert(ck.st.best_val == 0.25f && ck.st.since_best == 2 && ck.opt_step == 1234);
  cr_assert_not_null(aert_ckpt_find(&ck, "enc.w/adam_m"));
  float *p2 = calloc(toy_model.param_floats, sizeof(float));
  aert_optimizer o2;
  aert_optim_init(&o2, &toy_model);
  cr_assert_eq(aert_ckpt_restore(&ck, &toy_model, p2, &o2), 0);
  size_t bytes = sizeof(float) * toy_model.param_floats;
  cr_assert(!memcmp(p2, params, bytes) && !memcmp(o2.m, opt.m, bytes) &&
            !memcmp(o2.v, opt.v, bytes) && o2.step == 1234);
  cr_assert_eq(aert_ckpt_check_model(&ck, &toy_model), 0);
  aert_ckpt_free(&ck);
}

/* Mid-epoch, the loss sums so far travel as float pairs that keep about 48 bits. */
Test(ckpt, epoch_sums_round_trip) {
  char *p = path_in(dir, "mid.ckpt");
  aert_train_state st = {.seed = 1, .step = 7, .epochs = 2, .n_epoch_sums = 2,
                         .epoch_sums = {1234.5678901234, 0.000123456789012}};
  cr_assert_eq(aert_ckpt_save(p, &toy_model, &st, params, &opt), 0);
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(p, &ck), 0);
  cr_assert_eq(ck.st.n_epoch_sums, 2);
  for (int i = 0; i < 2; i++)
    cr_assert(fabs(ck.st.epoch_sums[i] - st.epoch_sums[i]) <= 1e-13 * fabs(st.epoch_sums[i]),
              "%.17g != %.17g", ck.st.epoch_sums[i], st.epoch_sums[i]);
  aert_ckpt_free(&ck);
  cr_assert_eq(aert_ckpt_load(ck_path, &ck), 0);
  cr_assert_eq(ck.st.n_epoch_sums, 0, "a checkpoint at the end of an epoch has none");
  aert_ckpt_free(&ck);
}

Test(ckpt, truncated_refused) {
  rewrite(ck_path, 5000, -1);
  char *err = load_error(ck_path);
  cr_assert(strstr(err, "truncated"), "%s", err);
}

Test(ckpt, corrupted_refused) {
  rewrite(ck_path, -1, 4000);
  char *err = load_error(ck_path);
  cr_assert(strstr(err, "CRC32"), "%s", err);
}

Test(ckpt, bad_magic_refused) {
  rewrite(ck_path, -1, 2);
  char *err = load_error(ck_path);
  cr_assert(strstr(err, "not an aec checkpoint"), "%s", err);
}

static aert_ckpt other;
static const aert_model *check_against;
static int check_other(void *ctx) { return aert_ckpt_check_model(&other, check_against); }

/* The toy model with enc.b renamed and dec.w of another shape: what an edited spec that
 * changed layers builds. */
static aert_param changed_params[4];
static aert_model changed_model;
static void make_changed_model(void) {
  changed_model = toy_model;
  changed_model.name = "toy_changed";
  memcpy(changed_params, toy_model.params, sizeof changed_params);
  changed_params[1].name = "enc.bias";
  changed_params[2].shape[1] = 10;
  changed_model.params = changed_params;
}

Test(ckpt, same_tensors_fit_whatever_the_spec_hash) {
  cr_assert_eq(aert_ckpt_load(ck_path, &other), 0);
  cr_assert_eq(aert_ckpt_check_model(&other, &toy_other_model), 0);
  aert_ckpt_free(&other);
}

Test(ckpt, other_tensors_refused_naming_each) {
  make_changed_model();
  check_against = &changed_model;
  cr_assert_eq(aert_ckpt_load(ck_path, &other), 0);
  int rc;
  char *err = run_capturing_stderr(check_other, NULL, &rc);
  cr_assert_eq(rc, -1);
  cr_assert(strstr(err, ck_path) && strstr(err, "(model 'toy') does not fit model 'toy_changed'") &&
            strstr(err, "missing 'enc.bias' [32]") &&
            strstr(err, "shape of 'dec.w' [32,784] (the model has [32,10])") &&
            strstr(err, "extra 'enc.b' [32]"), "%s", err);
  aert_ckpt_free(&other);
}

Test(ckpt, resume_refuses_checkpoint_of_other_tensors) {
  int rc;
  char args[600];
  make_changed_model();
  rename(ck_path, path_in(dir, "last.ckpt"));
  snprintf(args, sizeof args, "train --quiet --resume --limit 100 --out %s", dir);
  char *err = main_stderr(&changed_model, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "last.ckpt' (model 'toy') does not fit"), "%s", err);
}

Test(ckpt, resume_with_changed_optimizer_needs_force) {
  int rc;
  char args[600];
  snprintf(args, sizeof args, "train --quiet --epochs 1 --limit 100 --out %s", dir);
  cr_assert_eq(run_main(&toy_model, args), 0);
  aert_model sgd = toy_model;
  sgd.optim.kind = AERT_OPT_SGD;
  sgd.optim.lr = 0.01f;
  snprintf(args, sizeof args, "train --quiet --resume --epochs 2 --limit 100 --out %s", dir);
  char *err = main_stderr(&sgd, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "other optimizer settings") && strstr(err, "optimizer adam -> sgd") &&
            strstr(err, "lr 0.003 -> 0.01") && strstr(err, "--force"), "%s", err);
  snprintf(args, sizeof args, "train --quiet --resume --force --epochs 2 --limit 100 --out %s", dir);
  cr_assert_eq(run_main(&sgd, args), 0);
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(path_in(dir, "last.ckpt"), &ck), 0);
  cr_assert(ck.st.epoch == 2 && ck.opt_kind == AERT_OPT_SGD && ck.st.has_optim &&
            ck.st.optim.kind == AERT_OPT_SGD && ck.st.base_lr == 0.01f);
  aert_ckpt_free(&ck);
}

Test(ckpt, failed_save_keeps_old_file) {
  /* path.tmp is a folder, so the new checkpoint cannot be written: the old one must stay */
  unsigned char *before, *after;
  size_t n1, n2;
  cr_assert_eq(aert_read_file(ck_path, &before, &n1), 0);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", ck_path);
  cr_assert_eq(mkdir(tmp, 0755), 0);
  aert_train_state st = {.step = 7};
  params[0] = 123;
  fflush(stderr);
  cr_assert_eq(aert_ckpt_save(ck_path, &toy_model, &st, params, &opt), -1);
  cr_assert_eq(aert_read_file(ck_path, &after, &n2), 0);
  cr_assert(n1 == n2 && !memcmp(before, after, n1), "old checkpoint intact");
  free(before);
  free(after);
}

static aert_model imp_model;
static float *imp_w;
static int init_imp(void *ctx) { return aert_init_params(&imp_model, imp_w, 1); }

static const aert_param imported[] = {
    {"enc.w", 2, {784, 32}, 784 * 32, 0, AERT_INIT_ZEROS, 784, 32, 1, NULL, "enc.w"},
};

Test(ckpt, init_from_loads_named_tensor_and_reports_missing) {
  aert_param p = imported[0];
  p.init_from = ck_path;
  imp_model = (aert_model){.name = "imp", .n_params = 1, .params = &p, .param_floats = 784 * 32};
  imp_w = calloc(784 * 32, sizeof(float));
  cr_assert_eq(aert_init_params(&imp_model, imp_w, 1), 0);
  cr_assert(!memcmp(imp_w, params, sizeof(float) * 784 * 32), "enc.w comes from the checkpoint");
  int rc;
  p.init_name = "encoder.w";
  char *err = run_capturing_stderr(init_imp, NULL, &rc);
  cr_assert(rc == -1 && strstr(err, ck_path) && strstr(err, "no tensor 'encoder.w'"), "%s", err);
  p.init_name = "dec.w";
  err = run_capturing_stderr(init_imp, NULL, &rc);
  cr_assert(rc == -1 && strstr(err, "'dec.w' has shape [32,784], expected [784,32]"), "%s", err);
  free(imp_w);
}
