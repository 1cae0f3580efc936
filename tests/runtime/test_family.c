/* test_family.c - the autoencoder-family runtime: denoising scores, latent statistics,
 * decode / sample / interpolate, PCA and t-SNE maps, augmentation and the loader thread,
 * on the hand-written toy model (tests/runtime/toy_model.c). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "toy_model.h"

static void png_size(const char *path, int *w, int *h) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "open %s", path);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(!setjmp(png_jmpbuf(png)), "libpng read failed");
  png_init_io(png, f);
  png_read_info(png, info);
  *w = (int)png_get_image_width(png, info);
  *h = (int)png_get_image_height(png, info);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
}

static int runf(const char *fmt, const char *dir) {
  char args[600];
  snprintf(args, sizeof args, fmt, dir);
  return run_main(&toy_family_model, args);
}

/* One trained toy shared by the command tests (each test is its own process). */
static char *trained(void) {
  char *d = tmp_dir();
  cr_assert_eq(runf("train --quiet --limit 640 --epochs 1 --threads 1 --out %s", d), 0);
  return d;
}

Test(family, eval_scores_denoising_and_writes_three_rows, .init = cr_redirect_stdout) {
  char *d = trained();
  cr_assert_eq(runf("eval --quiet --out %s", d), 0);
  char *p = path_in(d, "denoising.png");
  int w, h;
  png_size(p, &w, &h);
  cr_assert(w == aert_text_width("output", 2) + 16 + 8 * 87 - 3 && h == 3 * 87 - 3, "%dx%d", w, h);
}

Test(family, denoise_psnr_of_the_noise_itself) {
  aert_workspace w;
  aert_dataset ds;
  cr_assert_eq(aert_workspace_init(&w, &toy_family_model, 0), 0);
  cr_assert_eq(aert_data_load(&toy_family_model, AERT_DEFAULT_DATA_DIR, 0, 256, &ds), 0);
  cr_assert_eq(aert_init_params(&toy_family_model, w.dev.params, 1), 0);
  aert_device_upload(&w.dev);
  aert_denoise dn = {0};
  cr_assert_eq(aert_denoise_eval(&w, &ds, &dn), 0);
  cr_assert_eq(dn.values, 256L * 784);
  /* N(0, 0.3) clipped to [0,1] on mostly-0 pixels: MSE a little under 0.09/2 + ... */
  double noisy = aert_psnr(dn.noisy_sq / dn.values);
  cr_assert(noisy > 11 && noisy < 16, "noisy PSNR %.2f", noisy);
  cr_assert(isfinite(dn.recon_sq));
  aert_data_free(&ds);
  aert_workspace_free(&w);
}

Test(family, latent_statistics) {
  aert_latent_stats ls;
  cr_assert_eq(aert_latent_stats_init(&ls, 3), 0);
  float z[6] = {0, 1, -0.005f, 0, 3, 0.5f};   /* unit 0 near zero everywhere */
  aert_latent_stats_add(&ls, z, 2);
  cr_assert_float_eq(aert_latent_mean(&ls), 4.495 / 6, 1e-6);
  cr_assert_float_eq(aert_latent_mean_abs(&ls), 4.505 / 6, 1e-6);
  cr_assert_float_eq(aert_latent_near_zero(&ls), 3.0 / 6, 1e-12);
  cr_assert_eq(aert_latent_dead(&ls), 1);
  aert_latent_stats_free(&ls);
}

Test(family, decode_of_the_latent_gives_the_output) {
  aert_workspace w;
  const aert_model *m = &toy_family_model;
  aert_dataset ds;
  cr_assert_eq(aert_workspace_init(&w, m, 0), 0);
  cr_assert_eq(aert_init_params(m, w.dev.params, 3), 0);
  aert_device_upload(&w.dev);
  cr_assert_eq(aert_data_load(m, AERT_DEFAULT_DATA_DIR, 0, TOY_BATCH, &ds), 0);
  aert_batch_fill(m, &ds, NULL, 0, w.x, NULL);
  aert_device_batch(&w.dev, w.x, w.x);
  aert_device_forward(&w.dev, 0, 0, NULL);
  float *z = malloc(sizeof(float) * TOY_BATCH * TOY_LATENT), *y = malloc(sizeof(float) * 784 * 5);
  float *want = malloc(sizeof(float) * 784 * 5);
  memcpy(z, aert_device_latent(&w.dev), sizeof(float) * TOY_BATCH * TOY_LATENT);
  memcpy(want, aert_device_output(&w.dev), sizeof(float) * 784 * 5);
  memset(w.x, 0, sizeof(float) * TOY_BATCH * 784);   /* another output in the arena */
  aert_device_forward(&w.dev, 0, 0, NULL);
  cr_assert_eq(aert_decode_all(&w, z, 5, y), 0);   /* a partial batch */
  cr_assert_eq(memcmp(y, want, sizeof(float) * 784 * 5), 0);
  free(z), free(y), free(want);
  aert_data_free(&ds);
  aert_workspace_free(&w);
}

Test(family, sample_and_interpolate_pngs, .init = cr_redirect_stdout) {
  char *d = trained();
  int w, h;
  cr_assert_eq(runf("sample --quiet --n 20 --out %s", d), 0);
  png_size(path_in(d, "samples.png"), &w, &h);
  cr_assert(w == 8 * 87 - 3 && h == 3 * 87 - 3, "samples %dx%d", w, h);
  cr_assert(access(path_in(d, "latent_grid.png"), F_OK) != 0, "no grid for a 32-d latent");
  cr_assert_eq(runf("interpolate --quiet --from 3 --to 7 --steps 5 --out %s", d), 0);
  png_size(path_in(d, "interpolation.png"), &w, &h);
  cr_assert(w == 7 * 87 - 3 && h == 84, "interpolation %dx%d", w, h);
  cr_assert_eq(runf("interpolate --quiet --from 3 --to 10000 --out %s", d), 1);
}

/* What `sample` says refusing model m (exit status 1, nothing written). */
static char *sample_refusal(const aert_model *m) {
  int rc;
  char *d = tmp_dir(), args[300];
  snprintf(args, sizeof args, "sample --out %s", d);
  char *err = main_stderr(m, args, &rc);
  cr_assert_eq(rc, 1);
  cr_assert(access(path_in(d, "samples.png"), F_OK) != 0);
  return err;
}

Test(family, decode_needed) {
  char *err = sample_refusal(&toy_model);
  cr_assert(strstr(err, "no decode entry point"), "%s", err);
}

Test(family, sample_refuses_a_model_that_is_not_generative) {
  char *err = sample_refusal(&toy_plain_ae_model);
  cr_assert(strstr(err, "model 'toy' is not generative") && strstr(err, "sample(mu, logvar)"), "%s", err);
}

/* A swiss roll (a 2-d sheet rolled up in 3-d): Isomap unrolls it, its first axis follows
 * the angle along the roll, which PCA cannot. The numpy reference comparison is in
 * tests/watch/isomap_check.py. */
Test(family, isomap_unrolls_a_swiss_roll) {
  enum { N = 600 };
  float x[N * 3], out[N * 2];
  double t[N], ev[2];
  for (int i = 0; i < N; i++) {
    t[i] = 1.5 * M_PI * (1 + 2 * aert_uniform(11, (uint64_t)i));
    x[i * 3] = (float)(t[i] * cos(t[i])), x[i * 3 + 2] = (float)(t[i] * sin(t[i]));
    x[i * 3 + 1] = 20 * aert_uniform(12, (uint64_t)i);
  }
  cr_assert_eq(aert_isomap(x, N, 3, 10, out, ev), 0);
  double st = 0, su = 0, stt = 0, suu = 0, stu = 0;
  for (int i = 0; i < N; i++)
    st += t[i], su += out[i * 2], stt += t[i] * t[i], suu += (double)out[i * 2] * out[i * 2],
        stu += t[i] * out[i * 2];
  double r = (stu - st * su / N) / sqrt((stt - st * st / N) * (suu - su * su / N));
  cr_assert(fabs(r) > 0.99, "correlation of the first axis with the angle: %.4f", r);
  cr_assert(ev[0] >= ev[1] && ev[1] > 0, "eigenvalues %g %g", ev[0], ev[1]);
}

Test(family, isomap_names_the_pieces_of_a_disconnected_graph) {
  enum { N = 30 };
  float x[N * 2];
  for (int i = 0; i < N; i++)   /* 20 points near 0, 10 near 1000 */
    x[i * 2] = (i < 20 ? 0 : 1000) + aert_uniform(3, (uint64_t)i), x[i * 2 + 1] = aert_uniform(4, (uint64_t)i);
  float out[N * 2];
  double ev[2];
  cr_redirect_stderr();
  cr_assert_eq(aert_isomap(x, N, 2, 5, out, ev), -1);
  fflush(stderr);
  cr_assert_stderr_eq_str("aec: isomap: the 5-nearest-neighbour graph of the 30 points is not "
                          "connected: 2 components, of 20 and 10 points; no geodesic joins them: "
                          "raise --neighbors (or map with pca or tsne)\n");
}

Test(family, pca_finds_the_long_axis) {
  enum { N = 400 };
  float x[N * 3], out[N * 2];
  for (int i = 0; i < N; i++) {
    float t = (i - (N - 1) / 2.0f) / 50;           /* along (1, 1, 0)/sqrt2: variance big */
    float s = aert_normal(7, (uint64_t)i) * 0.1f;  /* along z: small */
    x[i * 3] = t + 5, x[i * 3 + 1] = t - 2, x[i * 3 + 2] = s;
  }
  double var[2], total;
  cr_assert_eq(aert_pca(x, N, 3, out, var, &total), 0);
  cr_assert(var[0] / total > 0.99, "first component %.4f", var[0] / total);
  for (int i = 0; i < N; i++)
    cr_assert_float_eq(fabsf(out[i * 2]), fabsf((i - (N - 1) / 2.0f) / 50 * sqrtf(2)), 1e-3);
}

Test(family, tsne_separates_two_clusters) {
  enum { N = 120, D = 5 };
  float x[N * D], out[N * 2];
  for (int i = 0; i < N; i++)
    for (int k = 0; k < D; k++)
      x[i * D + k] = (i < N / 2 ? 0 : 10) + aert_normal(3, (uint64_t)(i * D + k));
  cr_assert_eq(aert_tsne(x, N, D, out, 20, 300, 1), 0);
  double c[2][2] = {{0}}, spread = 0;
  for (int i = 0; i < N; i++)
    for (int a = 0; a < 2; a++)
      c[i >= N / 2][a] += out[i * 2 + a] / (N / 2);
  for (int i = 0; i < N; i++)
    spread += hypot(out[i * 2] - c[i >= N / 2][0], out[i * 2 + 1] - c[i >= N / 2][1]) / N;
  double gap = hypot(c[0][0] - c[1][0], c[0][1] - c[1][1]);
  cr_assert(gap > 3 * spread, "gap %.2f, spread %.2f", gap, spread);
}

Test(family, latent_command_writes_csv_and_scatter, .init = cr_redirect_stdout) {
  char *d = trained();
  int w, h;
  cr_assert_eq(runf("latent --quiet --method pca --points 500 --out %s", d), 0);
  png_size(path_in(d, "latent_2d.png"), &w, &h);
  cr_assert(w == 80 + 600 + 20 + 90 && h == 50 + 600 + 50, "%dx%d: axes and a legend", w, h);
  FILE *f = fopen(path_in(d, "latent_2d.csv"), "r");
  char line[200];
  int lines = 0;
  cr_assert(f);
  while (fgets(line, sizeof line, f))
    lines++;
  fclose(f);
  cr_assert_eq(lines, 501);
  cr_assert_eq(runf("latent --quiet --method tsne --points 200 --out %s", d), 0);
  cr_assert_eq(runf("latent --quiet --method isomap --points 300 --out %s", d), 0);
  cr_assert_eq(runf("latent --quiet --method umap --out %s", d), 2);
}

/* ---- augmentation ------------------------------------------------------------------ */
static void ramp(float *img, int h, int w) {
  for (int i = 0; i < h * w; i++)
    img[i] = (float)i;
}

Test(augment, identity_flip_and_integer_shift_are_exact) {
  float src[6 * 5], dst[6 * 5];
  ramp(src, 6, 5);
  aert_transform t = {0, 0, 0, 1, 0, 0};
  aert_augment_image(&t, src, dst, 6, 5, 1, -1, 0);
  cr_assert_eq(memcmp(src, dst, sizeof src), 0, "identity");
  t.flip_h = 1;
  aert_augment_image(&t, src, dst, 6, 5, 1, -1, 0);
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 5; x++)
      cr_assert_eq(dst[y * 5 + x], src[y * 5 + 4 - x]);
  t = (aert_transform){2, -1, 0, 1, 0, 0};
  aert_augment_image(&t, src, dst, 6, 5, 1, -1, 1);
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 5; x++) {
      int sx = x - 2, sy = y + 1;
      float want = sx >= 0 && sy < 6 ? src[sy * 5 + sx] : -1;
      cr_assert_eq(dst[y * 5 + x], want, "(%d,%d)", x, y);
    }
}

Test(augment, rotate_90_degrees) {
  float src[5 * 5], dst[5 * 5];
  ramp(src, 5, 5);
  aert_transform t = {0, 0, (float)(M_PI / 2), 1, 0, 0};
  aert_augment_image(&t, src, dst, 5, 5, 1, -1, 0);
  for (int y = 0; y < 5; y++)
    for (int x = 0; x < 5; x++)
      cr_assert_float_eq(dst[y * 5 + x], src[(4 - x) * 5 + y], 1e-3, "(%d,%d)", x, y);
}

/* Bands go through the resampling four at a time as one vector, the rest one at a time:
 * each band of a 3-, 4-, 5- and 8-band image must equal that band resampled alone, bit for
 * bit, under random shifts, rotations, zooms and flips (taps outside the image take the
 * fill; values of both signs, so that no sum starts from a lucky zero). */
Test(augment, every_band_resamples_as_it_would_alone) {
  enum { H = 9, W = 7 };
  float src[H * W * 8], dst[H * W * 8], band[H * W], alone[H * W];
  for (int i = 0; i < H * W * 8; i++)
    src[i] = (float)((i * 2654435761u) % 1000) / 37.0f - 13.0f;
  aert_data d = {.shift = 3, .rotate = 180, .zoom = 0.5f, .flip_h = 1, .flip_v = 1};
  for (int c = 3; c <= 8; c += c == 5 ? 3 : 1)
    for (long i = 0; i < 200; i++) {
      aert_transform t;
      aert_augment_draw(&d, 7, 0, i, &t);
      aert_augment_image(&t, src, dst, H, W, c, -0.5f, 0);
      for (int k = 0; k < c; k++) {
        for (int p = 0; p < H * W; p++)
          band[p] = src[p * c + k];
        aert_augment_image(&t, band, alone, H, W, 1, -0.5f, 0);
        for (int p = 0; p < H * W; p++)
          cr_assert(!memcmp(&dst[p * c + k], &alone[p], sizeof(float)),
                    "%d bands, draw %ld, band %d, pixel %d: %a, alone %a", c, i, k, p, dst[p * c + k], alone[p]);
      }
    }
}

Test(augment, draws_are_deterministic_per_seed_epoch_index) {
  aert_data d = {.shift = 2, .rotate = 15, .zoom = 0.1f, .flip_h = 1};
  aert_transform a, b, c;
  aert_augment_draw(&d, 1, 3, 17, &a);
  aert_augment_draw(&d, 1, 3, 17, &b);
  aert_augment_draw(&d, 1, 4, 17, &c);
  cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
  cr_assert_neq(memcmp(&a, &c, sizeof a), 0);
  cr_assert(fabsf(a.dx) <= 2 && fabsf(a.angle) <= 15 * M_PI / 180 && fabsf(a.scale - 1) <= 0.1f);
  cr_assert_eq(a.flip_v, 0);
}

Test(augment, loader_gives_the_batches_in_order) {
  const aert_model *m = &toy_model;
  aert_dataset ds;
  cr_assert_eq(aert_data_load(m, AERT_DEFAULT_DATA_DIR, 0, 10 * TOY_BATCH, &ds), 0);
  long order[10 * TOY_BATCH];
  aert_shuffle(order, ds.n, 5, 0);
  aert_loader l;
  cr_assert_eq(aert_loader_init(&l, m, &ds), 0);
  cr_assert_eq(l.augment, 0);
  cr_assert_eq(aert_loader_start(&l, order, 2, 10, 5, 0), 0);
  float want[TOY_BATCH * 784];
  for (long b = 2; b < 10; b++) {
    float *x, *y;
    aert_loader_take(&l, b, &x, &y);
    aert_batch_fill(m, &ds, order, b * TOY_BATCH, want, NULL);
    cr_assert_eq(memcmp(x, want, sizeof want), 0, "batch %ld", b);
    cr_assert_null(y);
    aert_loader_release(&l, b);
  }
  aert_loader_stop(&l);
  cr_assert(l.waited >= 0);
  aert_loader_free(&l);
  aert_data_free(&ds);
}

static const aert_model *augmented(void) {
  static aert_model m;
  m = toy_model;
  m.data.shift = 3, m.data.rotate = 20, m.data.flip_h = 1;
  return &m;
}

Test(augment, training_with_augmentation_is_reproducible, .init = cr_redirect_stdout) {
  char *a = tmp_dir(), *b = tmp_dir(), args[600];
  snprintf(args, sizeof args, "train --quiet --limit 640 --epochs 2 --threads 1 --out %s", a);
  cr_assert_eq(run_main(augmented(), args), 0);
  snprintf(args, sizeof args, "train --quiet --limit 640 --epochs 2 --threads 2 --out %s", b);
  cr_assert_eq(run_main(augmented(), args), 0);
  aert_ckpt ca, cb;
  cr_assert_eq(aert_ckpt_load(path_in(a, "last.ckpt"), &ca), 0);
  cr_assert_eq(aert_ckpt_load(path_in(b, "last.ckpt"), &cb), 0);
  const aert_tensor *ta = aert_ckpt_find(&ca, "enc.w"), *tb = aert_ckpt_find(&cb, "enc.w");
  cr_assert_eq(memcmp(ta->data, tb->data, ta->size * 4), 0);
  aert_ckpt_free(&ca);
  aert_ckpt_free(&cb);
}
