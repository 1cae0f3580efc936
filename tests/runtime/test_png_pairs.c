/* test_png_pairs.c - image pairs from two folders of PNG images: PNGs written here with
 * libpng read back through aert_data_load (sorting, pairing, --limit), the same values as
 * the equivalent IDX pair files bit for bit, channel conversions, 16-bit and palette images,
 * and the folders and files that must be refused with a message naming them. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "toy_model.h"

enum { H = 2, W = 3 };   /* not square: width and height must not be swapped */

#define PAIRS_MODEL(C, TC)                                                                 \
  .name = "pairs", .batch = 4, .in_rank = 3, .in_shape = {H, W, C}, .in_size = H * W * C,   \
  .target_kind = AERT_TARGET_IMAGE, .target_rank = 3, .target_shape = {H, W, TC},           \
  .target_size = H * W * TC, .out_size = H * W * TC, .ignore_label = -1,                    \
  .data = {.kind = AERT_DATA_IMAGE_PAIRS, .train_images = "in", .train_labels = "out",      \
           .test_images = "test_in", .test_labels = "test_out", .validation = 0.1f,        \
           .scale = 1.0f / 255.0f}

static const aert_model grey_model = {PAIRS_MODEL(1, 1)};
static const aert_model rgb_model = {PAIRS_MODEL(3, 1)};    /* RGB in, grey out */
static const aert_model rgba_model = {PAIRS_MODEL(4, 1)};

/* Writes a w x h PNG of libpng colour type `type` and `depth` bits from one sample per
 * channel per pixel (HWC); a palette image takes its samples as palette indices. */
static void write_png(const char *path, int w, int h, int type, int depth, const int *v) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "cannot write %s", path);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(png && info);
  if (setjmp(png_jmpbuf(png)))
    cr_assert_fail("libpng failed writing %s", path);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    png_set_PLTE(png, info, pal, 4);
  }
  png_write_info(png, info);
  int c = type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_PALETTE ? 1
          : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : type == PNG_COLOR_TYPE_RGB ? 3 : 4;
  unsigned char row[64];
  for (int y = 0; y < h; y++) {
    for (int i = 0; i < w * c; i++) {
      int s = v[y * w * c + i];
      if (depth == 16)
        row[2 * i] = (unsigned char)(s >> 8), row[2 * i + 1] = (unsigned char)s;
      else
        row[i] = (unsigned char)s;
    }
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(f);
}

static void grey_png(const char *dir, const char *name, int base) {
  int v[H * W];
  for (int i = 0; i < H * W; i++)
    v[i] = (base + 37 * i) % 256;
  char *p = path_in(dir, name);
  write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, v);
  free(p);
}

/* dir/in and dir/out with n grey pairs named 00.png.. (created last to first). */
static char *pair_folders(int n) {
  char *d = tmp_dir(), *in = path_in(d, "in"), *out = path_in(d, "out");
  cr_assert(mkdir(in, 0777) == 0 && mkdir(out, 0777) == 0);
  for (int k = n - 1; k >= 0; k--) {
    char name[16];
    snprintf(name, sizeof name, "%02d.png", k);
    grey_png(in, name, 10 * k);
    grey_png(out, name, 10 * k + 5);
  }
  free(in);
  free(out);
  return d;
}

typedef struct {
  const aert_model *m;
  const char *dir;
  aert_dataset ds;
} load_call;

static int call_load(void *ctx) {
  load_call *c = ctx;
  return aert_data_load(c->m, c->dir, 1, 0, &c->ds);
}

/* The message of a load that must fail. */
static char *load_error(const aert_model *m, const char *dir) {
  load_call c = {.m = m, .dir = dir};
  int rc;
  char *err = run_capturing_stderr(call_load, &c, &rc);
  cr_assert_eq(rc, -1, "the load should fail");
  cr_assert(!c.ds.x && !c.ds.y, "nothing left allocated");
  cr_assert(!strncmp(err, "aec: ", 5) && strchr(err, '\n') == err + strlen(err) - 1,
            "one aec: line: %s", err);
  return err;
}

Test(png_pairs, round_trip_sorted_by_name_and_limited) {
  char *d = pair_folders(5), *junk = path_in(d, "in/notes.txt");
  FILE *f = fopen(junk, "w");
  fputs("not an image\n", f);
  fclose(f);
  aert_dataset ds;
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  cr_assert_eq(ds.n, 5);
  cr_assert(ds.label == NULL && ds.in_size == H * W && ds.target_size == H * W);
  for (int k = 0; k < 5; k++)
    for (int i = 0; i < H * W; i++) {
      cr_assert_eq(ds.x[k * H * W + i], (float)((10 * k + 37 * i) % 256) * (1.0f / 255.0f));
      cr_assert_eq(ds.y[k * H * W + i], (float)((10 * k + 5 + 37 * i) % 256) * (1.0f / 255.0f));
    }
  aert_data_free(&ds);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 2, &ds), 0);
  cr_assert_eq(ds.n, 2, "--limit reads the first pairs by name");
  cr_assert_eq(ds.x[H * W], 10.0f * (1.0f / 255.0f));
  aert_data_free(&ds);
}

/* Writes the pairs of pair_folders(n) as IDX files too (raw: gzread passes them through). */
static void write_idx(const char *path, int n, int add) {
  FILE *f = fopen(path, "wb");
  unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, H, 0, 0, 0, W};
  fwrite(head, 1, 16, f);
  for (int k = 0; k < n; k++)
    for (int i = 0; i < H * W; i++)
      fputc((10 * k + add + 37 * i) % 256, f);
  fclose(f);
}

Test(png_pairs, same_values_as_idx_pairs_under_any_normalisation) {
  char *d = pair_folders(6), *a = path_in(d, "a.idx"), *b = path_in(d, "b.idx");
  write_idx(a, 6, 0);
  write_idx(b, 6, 5);
  aert_model png = grey_model, idx = grey_model;
  png.data.scale = idx.data.scale = 2.0f / 255.0f;
  png.data.offset = idx.data.offset = -1.0f;
  idx.data.train_images = "a.idx", idx.data.train_labels = "b.idx";
  aert_dataset p, q;
  cr_assert_eq(aert_data_load(&png, d, 1, 0, &p), 0);
  cr_assert_eq(aert_data_load(&idx, d, 1, 0, &q), 0);
  cr_assert(p.n == 6 && q.n == 6);
  cr_assert(!memcmp(p.x, q.x, sizeof(float) * 6 * H * W), "inputs equal bit for bit");
  cr_assert(!memcmp(p.y, q.y, sizeof(float) * 6 * H * W), "targets equal bit for bit");
  cr_assert_eq(p.x[1], 37.0f * (2.0f / 255.0f) - 1.0f);
  aert_data_free(&p);
  aert_data_free(&q);
}

/* One input and one grey target 00.png under dir/in and dir/out. */
static char *one_pair(int type, int depth, const int *v) {
  char *d = tmp_dir(), *in = path_in(d, "in"), *out = path_in(d, "out");
  cr_assert(mkdir(in, 0777) == 0 && mkdir(out, 0777) == 0);
  char *p = path_in(in, "00.png");
  write_png(p, W, H, type, depth, v);
  free(p);
  grey_png(out, "00.png", 0);
  free(in);
  free(out);
  return d;
}

static void expect(const float *got, const double *want, int n) {
  for (int i = 0; i < n; i++)
    cr_assert(fabs(got[i] - want[i] / 255.0) < 1e-6, "value %d: %.7f, want %.7f", i, got[i],
              want[i] / 255.0);
}

Test(png_pairs, rgb_to_grey_by_luminance_alpha_dropped) {
  int rgb[H * W * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 77, 77, 77, 255, 255, 255};
  double want[H * W] = {76.245, 149.685, 29.07, 18.15, 77, 255};
  aert_dataset ds;
  char *d = one_pair(PNG_COLOR_TYPE_RGB, 8, rgb);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  expect(ds.x, want, H * W);
  cr_assert_eq(ds.x[4], 77.0f * (1.0f / 255.0f), "a grey pixel stays exactly its value");
  aert_data_free(&ds);
  int rgba[H * W * 4];
  for (int i = 0; i < H * W; i++) {
    memcpy(rgba + 4 * i, rgb + 3 * i, sizeof(int) * 3);
    rgba[4 * i + 3] = 40 * i;
  }
  d = one_pair(PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  expect(ds.x, want, H * W);
  aert_data_free(&ds);
  cr_assert_eq(aert_data_load(&rgba_model, d, 1, 0, &ds), 0, "RGBA kept whole for 4 channels");
  cr_assert_eq(ds.x[4 * 5 + 3], 200.0f * (1.0f / 255.0f));
  aert_data_free(&ds);
}

Test(png_pairs, grey_to_rgb_by_copies_and_palettes) {
  int ga[H * W * 2] = {0, 255, 50, 0, 100, 9, 150, 9, 200, 9, 255, 9};
  aert_dataset ds;
  char *d = one_pair(PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
  cr_assert_eq(aert_data_load(&rgb_model, d, 1, 0, &ds), 0);
  for (int i = 0; i < H * W; i++)
    for (int k = 0; k < 3; k++)
      cr_assert_eq(ds.x[3 * i + k], (float)(50 * i + (i == 5 ? 5 : 0)) * (1.0f / 255.0f));
  aert_data_free(&ds);
  int idx[H * W] = {0, 1, 2, 3, 1, 0};
  d = one_pair(PNG_COLOR_TYPE_PALETTE, 8, idx);
  cr_assert_eq(aert_data_load(&rgb_model, d, 1, 0, &ds), 0);
  cr_assert(ds.x[3] == 1.0f && ds.x[4] == 0.0f && ds.x[9] == 10.0f * (1.0f / 255.0f) &&
            ds.x[11] == 30.0f * (1.0f / 255.0f), "palette entries become their colours");
  aert_data_free(&ds);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  double want[H * W] = {0, 76.245, 149.685, 18.15, 76.245, 0};
  expect(ds.x, want, H * W);
  aert_data_free(&ds);
}

Test(png_pairs, sixteen_bit_divided_by_257) {
  int v[H * W] = {0, 257 * 7, 65535, 1000, 257 * 200, 65534};
  double want[H * W] = {0, 7, 255, 1000 / 257.0, 200, 65534 / 257.0};
  aert_dataset ds;
  char *d = one_pair(PNG_COLOR_TYPE_GRAY, 16, v);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  expect(ds.x, want, H * W);
  cr_assert(ds.x[1] == 7.0f * (1.0f / 255.0f) && ds.x[4] == 200.0f * (1.0f / 255.0f),
            "v * 257 in 16 bits is v in 8 bits exactly");
  aert_data_free(&ds);
  int rgb[H * W * 3];
  for (int i = 0; i < H * W * 3; i++)
    rgb[i] = v[i / 3];
  d = one_pair(PNG_COLOR_TYPE_RGB, 16, rgb);
  cr_assert_eq(aert_data_load(&grey_model, d, 1, 0, &ds), 0);
  expect(ds.x, want, H * W);
  aert_data_free(&ds);
}

Test(png_pairs, missing_partner_and_extra_file_named) {
  char *d = pair_folders(3), *p = path_in(d, "out/01.png");
  unlink(p);
  char *err = load_error(&grey_model, d);
  cr_assert(strstr(err, "/in/01.png' has no partner") && strstr(err, "/out' has no '01.png'"),
            "message: %s", err);
  grey_png(d, "out/01.png", 0);
  grey_png(d, "out/zz.png", 0);
  err = load_error(&grey_model, d);
  cr_assert(strstr(err, "/out/zz.png' has no partner") && strstr(err, "/in' has no 'zz.png'"),
            "message: %s", err);
}

Test(png_pairs, size_and_channel_mismatches_named) {
  char *d = pair_folders(2), *p = path_in(d, "out/01.png");
  int v[4 * 4 * 3] = {0};
  write_png(p, 2, 3, PNG_COLOR_TYPE_GRAY, 8, v);   /* height and width swapped */
  char *err = load_error(&grey_model, d);
  cr_assert(strstr(err, p) && strstr(err, "is 2 x 3 pixels (width x height) but the model's "
                                          "target is 3 x 2"), "message: %s", err);
  d = one_pair(PNG_COLOR_TYPE_RGB, 8, v);
  p = path_in(d, "in/00.png");
  err = load_error(&rgba_model, d);
  cr_assert(strstr(err, p) && strstr(err, "has 3 channel(s) (RGB) but the model's input has 4"),
            "message: %s", err);
}

/* A valid PNG of dir/in/00.png rewritten by fn. */
static char *broken_pair(void (*fn)(unsigned char *, size_t *)) {
  char *d = pair_folders(1), *p = path_in(d, "in/00.png");
  FILE *f = fopen(p, "rb");
  unsigned char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  fn(buf, &n);
  f = fopen(p, "wb");
  fwrite(buf, 1, n, f);
  fclose(f);
  return d;
}

static void cut_in_idat(unsigned char *b, size_t *n) { *n -= 20; }
static void cut_in_signature(unsigned char *b, size_t *n) { *n = 5; }
static void flip_idat(unsigned char *b, size_t *n) { b[*n - 20] ^= 0x55; }
static void not_png(unsigned char *b, size_t *n) { memcpy(b, "GIF89a", 6); }

Test(png_pairs, truncated_corrupt_and_foreign_files_named) {
  struct {
    void (*fn)(unsigned char *, size_t *);
    const char *says;
  } cases[] = {
      {cut_in_idat, "is truncated: its"},
      {cut_in_signature, "is truncated: 5 bytes"},
      {flip_idat, "is not a readable PNG: "},
      {not_png, "is not a PNG file"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *d = broken_pair(cases[i].fn), *p = path_in(d, "in/00.png");
    char *err = load_error(&grey_model, d);
    cr_assert(strstr(err, p) && strstr(err, cases[i].says), "case %zu: %s", i, err);
  }
}

Test(png_pairs, empty_folder_and_folder_beside_a_file_refused) {
  char *d = tmp_dir(), *in = path_in(d, "in"), *out = path_in(d, "out");
  cr_assert(mkdir(in, 0777) == 0 && mkdir(out, 0777) == 0);
  char *err = load_error(&grey_model, d);
  cr_assert(strstr(err, "no PNG images (*.png) in the folder") && strstr(err, in),
            "message: %s", err);
  rmdir(out);
  FILE *f = fopen(out, "w");
  fclose(f);
  err = load_error(&grey_model, d);
  cr_assert(strstr(err, "is a folder but") && strstr(err, out), "message: %s", err);
}
