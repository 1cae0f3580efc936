/* test_data.c - IDX reading (real Fashion-MNIST and broken fixtures), shuffling, the
 * validation split and batch padding. */
#include <criterion/criterion.h>
#include <string.h>
#include <zlib.h>
#include "toy_model.h"

/* Writes an IDX3 file of n images h x w whose header promises `promised` images. */
static void write_idx(const char *path, int magic, int promised, int n, int h, int w) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  unsigned char head[16] = {0, 0, 8, 3};
  head[0] = (unsigned char)(magic >> 24), head[1] = (unsigned char)(magic >> 16);
  head[2] = (unsigned char)(magic >> 8), head[3] = (unsigned char)magic;
  int dims[3] = {promised, h, w};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 4; k++)
      head[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
  fwrite(head, 1, 16, f);
  for (long i = 0; i < (long)n * h * w; i++)
    fputc((int)(i % 251), f);
  fclose(f);
}

static aert_idx idx;
static const char *idx_path;
static int read_idx(void *ctx) { return aert_idx_read(idx_path, &idx); }

static char *idx_error(const char *path, int *rc) {
  idx_path = path;
  return run_capturing_stderr(read_idx, NULL, rc);
}

Test(data, fashion_mnist_train_and_test) {
  aert_dataset tr, te;
  cr_assert_eq(aert_data_load(&toy_model, AERT_DEFAULT_DATA_DIR, 1, 0, &tr), 0);
  cr_assert_eq(tr.n, 60000);
  cr_assert_eq(tr.label[0], 9, "first training label of Fashion-MNIST is 9 (ankle boot)");
  float lo = 1, hi = 0;
  for (long i = 0; i < 784 * 100; i++)
    lo = tr.x[i] < lo ? tr.x[i] : lo, hi = tr.x[i] > hi ? tr.x[i] : hi;
  cr_assert(lo == 0.0f && hi == 1.0f, "pixels scaled to [0,1], got [%g,%g]", lo, hi);
  aert_data_free(&tr);
  cr_assert_eq(aert_data_load(&toy_model, AERT_DEFAULT_DATA_DIR, 0, 0, &te), 0);
  cr_assert_eq(te.n, 10000);
  aert_data_free(&te);
}

Test(data, limit_and_validation_split_from_the_end) {
  aert_dataset all, tr, va;
  cr_assert_eq(aert_data_load(&toy_model, AERT_DEFAULT_DATA_DIR, 1, 1000, &all), 0);
  cr_assert_eq(all.n, 1000);
  aert_data_split(&all, 0.1, &tr, &va);
  cr_assert_eq(tr.n, 900);
  cr_assert_eq(va.n, 100);
  cr_assert_eq(va.x, all.x + 900 * 784);
  cr_assert_eq(va.label[0], all.label[900]);
  aert_data_free(&all);
}

Test(data, truncated_idx_refused_with_name) {
  char *d = tmp_dir(), *p = path_in(d, "short-idx3-ubyte");
  write_idx(p, 0x00000803, 10, 3, 28, 28);
  int rc;
  char *err = idx_error(p, &rc);
  cr_assert_eq(rc, -1);
  cr_assert(strstr(err, p) && strstr(err, "truncated"), "message: %s", err);
}

Test(data, bad_magic_refused_with_name) {
  char *d = tmp_dir(), *p = path_in(d, "magic-idx3-ubyte");
  write_idx(p, 0x12340803, 2, 2, 28, 28);
  int rc;
  char *err = idx_error(p, &rc);
  cr_assert_eq(rc, -1);
  cr_assert(strstr(err, p) && strstr(err, "wrong magic"), "message: %s", err);
}

Test(data, missing_file_names_path_and_reason) {
  int rc;
  char *err = idx_error("/nonexistent/train-images-idx3-ubyte.gz", &rc);
  cr_assert_eq(rc, -1);
  cr_assert(strstr(err, "cannot read '/nonexistent/train-images-idx3-ubyte.gz': No such file"),
            "message: %s", err);
}

static const char *load_dir;
static aert_dataset loaded;
static int load(void *ctx) { return aert_data_load(ctx, load_dir, 1, 0, &loaded); }

Test(data, gzip_fixture_with_wrong_image_size_refused) {
  char *d = tmp_dir(), *raw = path_in(d, "raw"), *gz = path_in(d, "train-images-idx3-ubyte.gz");
  write_idx(raw, 0x00000803, 4, 4, 32, 32);
  FILE *f = fopen(raw, "rb");
  gzFile g = gzopen(gz, "wb");
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf, f);
  cr_assert(gzwrite(g, buf, (unsigned)n) == (int)n);
  gzclose(g);
  fclose(f);
  cr_assert_eq(aert_idx_read(gz, &idx), 0, "gzip IDX reads");
  cr_assert(idx.count == 4 && idx.dims[1] == 32 && idx.data[5] == 5);
  load_dir = d;
  int rc;
  char *err = run_capturing_stderr(load, (void *)&toy_model, &rc);
  cr_assert_eq(rc, -1);
  cr_assert(strstr(err, gz) && strstr(err, "32x32x1 images but the model expects 28x28x1"),
            "message: %s", err);
}

Test(data, class_labels_map_through_class_ids) {
  char *d = tmp_dir(), *img = path_in(d, "i"), *lab = path_in(d, "l");
  write_idx(img, 0x00000803, 4, 4, 28, 28);
  FILE *f = fopen(lab, "wb");
  unsigned char l[12] = {0, 0, 8, 1, 0, 0, 0, 4, 7, 3, 9, 5};
  fwrite(l, 1, 12, f);
  fclose(f);
  aert_model m = toy_model;
  m.target_kind = AERT_TARGET_CLASSES;
  m.target_rank = 0, m.target_size = 1, m.n_classes = 3, m.ignore_label = 5;
  m.class_ids[0] = 3, m.class_ids[1] = 7, m.class_ids[2] = 5;
  m.data.train_images = "i", m.data.train_labels = "l";
  aert_dataset ds;
  cr_assert_eq(aert_data_load(&m, d, 1, 0, &ds), 0);
  cr_assert(ds.y[0] == 1 && ds.y[1] == 0 && ds.y[2] == -1 && ds.y[3] == -1,
            "7->1, 3->0, 9 unknown->-1, ignore label 5->-1: %g %g %g %g", ds.y[0], ds.y[1],
            ds.y[2], ds.y[3]);
  aert_data_free(&ds);
}

Test(data, shuffle_is_a_seeded_permutation) {
  long a[1000], b[1000], c[1000];
  aert_shuffle(a, 1000, 1, 0);
  aert_shuffle(b, 1000, 1, 0);
  aert_shuffle(c, 1000, 1, 1);
  cr_assert(!memcmp(a, b, sizeof a), "same seed and epoch, same order");
  cr_assert(memcmp(a, c, sizeof a), "another epoch, another order");
  char seen[1000] = {0};
  for (int i = 0; i < 1000; i++)
    seen[a[i]]++;
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(seen[i], 1);
}

Test(data, last_batch_is_padded_with_its_last_example) {
  aert_dataset all;
  cr_assert_eq(aert_data_load(&toy_model, AERT_DEFAULT_DATA_DIR, 1, 40, &all), 0);
  float *x = malloc(sizeof(float) * TOY_BATCH * 784);
  cr_assert_eq(aert_batch_fill(&toy_model, &all, NULL, 32, x, NULL), 8);
  cr_assert(!memcmp(x, all.x + 32 * 784, sizeof(float) * 784));
  cr_assert(!memcmp(x + 31 * 784, all.x + 39 * 784, sizeof(float) * 784));
  free(x);
  aert_data_free(&all);
}
