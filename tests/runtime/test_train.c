/* test_train.c - the trainer end to end on the toy model: exact resume, learning progress,
 * NaN/Inf detection, eval/encode outputs, and the command line's usage errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "toy_model.h"

static void load_params(const char *path, float *p) {
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(path, &ck), 0);
  cr_assert_eq(aert_ckpt_restore(&ck, &toy_model, p, NULL), 0);
  aert_ckpt_free(&ck);
}

static int run(const char *fmt, const char *dir) {
  char args[600];
  snprintf(args, sizeof args, fmt, dir);
  return run_main(&toy_model, args);
}

Test(train, resume_is_bit_identical, .timeout = 60) {
  char *a = tmp_dir(), *b = tmp_dir();
  cr_assert_eq(run("train --quiet --limit 2000 --epochs 2 --threads 1 --out %s", a), 0);
  cr_assert_eq(run("train --quiet --limit 2000 --epochs 1 --threads 1 --out %s", b), 0);
  cr_assert_eq(run("train --quiet --limit 2000 --epochs 2 --threads 1 --resume --out %s", b), 0);
  float *pa = malloc(sizeof(float) * toy_model.param_floats);
  float *pb = malloc(sizeof(float) * toy_model.param_floats);
  load_params(path_in(a, "last.ckpt"), pa);
  load_params(path_in(b, "last.ckpt"), pb);
  cr_assert(!memcmp(pa, pb, sizeof(float) * toy_model.param_floats),
            "2 epochs == 1 epoch + resume 1 epoch, bit for bit");
  aert_ckpt ck;
  aert_ckpt_load(path_in(b, "last.ckpt"), &ck);
  cr_assert_eq(ck.st.epoch, 2);
  cr_assert_eq(ck.st.step, 2 * (1800 / 32), "steps: 1800 training examples, batch 32");
  aert_ckpt_free(&ck);
}

/* 3 epochs of 3600 examples = 336 Adam steps at lr 0.003, seed 1. An untrained model sits
 * at BCE 0.69 and the pixels' own entropy bounds it below near 0.24; measured: validation
 * 0.3222 after epoch 3 (0.3567 after epoch 1), test 0.3239. Training is bitwise
 * deterministic, so the bound does not flake. */
Test(train, toy_model_learns, .timeout = 60) {
  char *d = tmp_dir();
  cr_assert_eq(run("train --quiet --limit 4000 --epochs 3 --out %s", d), 0);
  cr_assert_eq(run("eval --quiet --out %s", d), 0);
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(path_in(d, "best.ckpt"), &ck), 0);
  cr_assert_lt(ck.st.best_val, 0.33f, "validation BCE %g", ck.st.best_val);
  aert_ckpt_free(&ck);
  FILE *f = fopen(path_in(d, "train.csv"), "r");
  char line[256];
  cr_assert(fgets(line, sizeof line, f));
  cr_assert_str_eq(line, "epoch,step,lr,train_loss,bce,val_loss,seconds\n");
  int rows = 0;
  while (fgets(line, sizeof line, f))
    rows++;
  cr_assert_eq(rows, 3);
  fclose(f);
  FILE *png = fopen(path_in(d, "reconstructions.png"), "rb");
  cr_assert(png, "eval wrote reconstructions.png");
  unsigned char sig[8];
  cr_assert(fread(sig, 1, 8, png) == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8));
  fclose(png);
}

/* 180 training examples: 5 steps an epoch; the 8th step (epoch 2, batch 3) turns NaN. */
Test(train, nan_loss_names_step_and_keeps_last_good, .timeout = 60) {
  char *d = tmp_dir(), args[600];
  int rc;
  snprintf(args, sizeof args, "train --quiet --limit 200 --epochs 3 --out %s", d);
  char *err = main_stderr(&toy_nan_loss_model, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "training stopped at step 8 (epoch 2, batch 3): loss term 'bce' is nan;"),
            "%s", err);
  cr_assert(strstr(err, "last.ckpt' keeps epoch 1"), "%s", err);
  aert_ckpt ck;
  cr_assert_eq(aert_ckpt_load(path_in(d, "last.ckpt"), &ck), 0);
  cr_assert(ck.st.epoch == 1 && ck.st.step == 5, "last.ckpt is the end of epoch 1");
  aert_ckpt_free(&ck);
}

Test(train, inf_gradient_names_parameter, .timeout = 60) {
  char *d = tmp_dir(), args[600];
  int rc;
  snprintf(args, sizeof args, "train --quiet --limit 100 --epochs 1 --out %s", d);
  char *err = main_stderr(&toy_inf_grad_model, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "step 2") && strstr(err, "the gradient of 'dec.b' is inf at element 5"),
            "%s", err);
}

Test(train, encode_writes_latent_npy_and_csv, .timeout = 60) {
  char *d = tmp_dir();
  cr_assert_eq(run("train --quiet --limit 200 --epochs 1 --out %s", d), 0);
  cr_assert_eq(run("encode --quiet --out %s", d), 0);
  cr_assert_eq(run("predict --quiet --out %s", d), 0);
  unsigned char *b;
  size_t n;
  cr_assert_eq(aert_read_file(path_in(d, "latent.npy"), &b, &n), 0);
  cr_assert(strstr((char *)b + 10, "'shape': (10000, 32)"));
  size_t hl = b[8] | b[9] << 8;
  cr_assert_eq(n, 10 + hl + 10000 * 32 * sizeof(float));
  free(b);
  FILE *f = fopen(path_in(d, "latent.csv"), "r");
  char line[2048];
  cr_assert(fgets(line, sizeof line, f));
  cr_assert(!strncmp(line, "9,", 2), "first test label is 9: %.20s", line);
  fclose(f);
  cr_assert_eq(aert_read_file(path_in(d, "predictions.npy"), &b, &n), 0);
  cr_assert(strstr((char *)b + 10, "'shape': (10000, 784)"));
  free(b);
}

Test(cli, unknown_flag_and_command_exit_2) {
  int rc;
  char *err = main_stderr(&toy_model, "train --bogus", &rc);
  cr_assert_eq(rc, 2);
  cr_assert(strstr(err, "unknown option '--bogus' for 'train'; see 'toy train --help'"), "%s", err);
  err = main_stderr(&toy_model, "fly", &rc);
  cr_assert_eq(rc, 2);
  cr_assert(strstr(err, "unknown command 'fly'; see 'toy --help'"), "%s", err);
  err = main_stderr(&toy_model, "eval --resume", &rc);
  cr_assert_eq(rc, 2, "--resume is a train option");
  err = main_stderr(&toy_model, "train --epochs x", &rc);
  cr_assert(rc == 2 && strstr(err, "--epochs expects an integer >= 1, got 'x'"), "%s", err);
}

Test(cli, help_exits_0, .init = cr_redirect_stdout) {
  cr_assert_eq(run_main(&toy_model, "--help"), 0);
  cr_assert_eq(run_main(&toy_model, "train --help"), 0);
  fflush(stdout);
  cr_assert_stdout_eq_str(
      "usage: toy <command> [options]\nmodel toy (tests/runtime/toy_model.c)\n\ncommands:\n"
      "  train        train the model; writes OUT/best.ckpt, OUT/last.ckpt, OUT/train.csv, OUT/curves.png\n"
      "  eval         test-set loss and metrics; writes OUT/reconstructions.png for image outputs\n"
      "  encode       latent of every test image: OUT/latent.npy and OUT/latent.csv\n"
      "  predict      model output for every test image: OUT/predictions.npy\n"
      "  sample       decode N(0,1) latent draws: OUT/samples.png (and OUT/latent_grid.png for a 2-d latent)\n"
      "  interpolate  decode the line between two test images' latents: OUT/interpolation.png\n"
      "  latent       2-d map of the test latents (PCA, t-SNE or Isomap): OUT/latent_2d.csv, OUT/latent_2d.png\n"
      "  init         the initialised parameters (step 0) of --seed: OUT/init.ckpt\n"
      "  export       a checkpoint's parameters as safetensors or npz, or the model as ONNX: OUT/<model>[.torch].<format>\n"
      "  import       FILE (safetensors, npz) to a checkpoint: OUT/imported.ckpt; then train --init it\n\n"
      "'toy <command> --help' lists the options of a command.\n"
      "usage: toy train [options]\n"
      "train the model; writes OUT/best.ckpt, OUT/last.ckpt, OUT/train.csv, OUT/curves.png\n\noptions:\n"
      "  --data     DIR   data folder (default: the model's, else /usr/share/datasets/fashion-mnist)\n"
      "  --out      DIR   output folder (default runs/<model>)\n"
      "  --epochs   N     epochs to train (default: the spec's)\n"
      "  --lr       X     base learning rate (default: the spec's)\n"
      "  --seed     S     random seed: initialisation, shuffling, noise; draws (default 1)\n"
      "  --limit    N     use only the first N training examples\n"
      "  --resume         continue exactly from OUT/last.ckpt\n"
      "  --force          --resume although the optimizer or schedule changed\n"
      "  --init     FILE  start from the parameters of checkpoint FILE (from init or import)\n"
      "  --patience N     stop after N epochs without a lower validation loss\n"
      "  --tensorboard DIR   also log every epoch's scalars as TensorBoard event files in DIR\n"
      "  --step-timeout SEC   end the job when a step takes longer (a hung rank; default 900 with ranks, none alone)\n"
      "  --profile  FILE  time every kernel; write ms and GFLOP/s per kernel to FILE (JSON)\n"
      "  --threads  T     threads for every kernel (default: all cores)\n"
      "  --quiet          no progress output\n"
      "  --help           this help\n");
}

/* A model generated before kernel timing existed has no tables: --profile says so first. */
Test(cli, profile_needs_a_model_with_timing_tables) {
  char *d = tmp_dir(), args[600];
  int rc;
  snprintf(args, sizeof args, "train --out %s --profile %s/p.json", d, d);
  char *err = main_stderr(&toy_model, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "model 'toy' was generated without kernel timing; rebuild it with this aec"), "%s", err);
}

/* --device is the CUDA trainers' (their main takes it); the CPU trainer says so. */
Test(cli, device_is_refused_by_the_cpu_trainer) {
  int rc;
  char *err = main_stderr(&toy_model, "train --device 0", &rc);
  cr_assert_eq(rc, 2);
  cr_assert(strstr(err, "option '--device' is an option of the CUDA trainers (bin/toy-cuda, bin/toy-cuda-emu); "
                        "'toy' runs on the CPU"), "%s", err);
}

Test(cli, missing_checkpoint_names_file) {
  char *d = tmp_dir(), args[600];
  int rc;
  snprintf(args, sizeof args, "eval --out %s", d);
  char *err = main_stderr(&toy_model, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(strstr(err, "best.ckpt': No such file or directory"), "%s", err);
}

/* A last batch of 8 real examples padded to 32 must count only the 8: compare with the
 * loss of a full batch holding each of those 8 four times. */
Test(train, eval_counts_only_real_examples_of_padded_batch) {
  aert_dataset ds;
  aert_workspace w;
  aert_metrics mt;
  cr_assert_eq(aert_data_load(&toy_model, AERT_DEFAULT_DATA_DIR, 0, 40, &ds), 0);
  cr_assert_eq(aert_workspace_init(&w, &toy_model, 0), 0);
  aert_init_params(&toy_model, w.dev.params, 5);
  aert_device_upload(&w.dev);
  aert_metrics_init(&mt, 0);
  aert_eval_set(&w, &ds, &mt, NULL, NULL);
  cr_assert_eq(mt.examples, 40);
  aert_device_batch(&w.dev, ds.x, NULL);
  float full = aert_device_forward(&w.dev, 0, 0, NULL);
  for (int b = 0; b < 32; b++)
    memcpy(w.x + b * 784, ds.x + (32 + b % 8) * 784, sizeof(float) * 784);
  aert_device_batch(&w.dev, w.x, NULL);
  float tail = aert_device_forward(&w.dev, 0, 0, NULL);
  cr_assert_float_eq(mt.loss / 40, (32.0 * full + 8.0 * tail) / 40, 1e-6, "%g", mt.loss / 40);
  aert_workspace_free(&w);
  aert_data_free(&ds);
}
