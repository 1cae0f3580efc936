/* test_export.c - the weight files of export and import: safetensors and npz written and read
 * back bit for bit; every truncation of either refused, naming the file; arrays that are not
 * float32 refused; the step-0 checkpoint of `init` is what training starts from. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>
#include "toy_model.h"

static aert_tensor_set sample_set(void) {
  aert_tensor_set s = {0};
  float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7}, b[3] = {0.25f, 0.5f, 0.75f};
  cr_assert_eq(aert_tensor_set_add(&s, "enc.w", 2, (long[]){2, 3}, a), 0);
  cr_assert_eq(aert_tensor_set_add(&s, "enc.b", 1, (long[]){3}, b), 0);
  cr_assert_eq(aert_tensor_set_add(&s, "conv.weight", 4, (long[]){1, 1, 1, 1}, b), 0);
  return s;
}

static void same_sets(const aert_tensor_set *a, const aert_tensor_set *b) {
  cr_assert_eq(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    const aert_named *x = &a->t[i], *y = aert_tensor_set_find(b, x->name);
    cr_assert(y, "'%s' read back", x->name);
    cr_assert(x->rank == y->rank && x->size == y->size && !memcmp(x->shape, y->shape, sizeof(long) * x->rank));
    cr_assert(!memcmp(x->data, y->data, sizeof(float) * x->size), "'%s' bit for bit", x->name);
  }
}

typedef int (*reader_fn)(const char *, const unsigned char *, size_t, aert_tensor_set *);
static const char *cut_path;
static const unsigned char *cut_bytes;
static size_t cut_len;
static reader_fn cut_reader;
static int read_cut(void *ctx) {
  aert_tensor_set s;
  int rc = cut_reader(cut_path, cut_bytes, cut_len, &s);
  if (rc == 0)
    aert_tensor_set_free(&s);
  return rc;
}

/* Every prefix of the file is refused with a message naming it. */
static void every_truncation_refused(const char *path, reader_fn reader) {
  unsigned char *b;
  size_t n;
  cr_assert_eq(aert_read_file(path, &b, &n), 0);
  cut_path = path, cut_bytes = b, cut_reader = reader;
  for (size_t len = 0; len < n; len += len < 200 ? 1 : 7) {
    int rc;
    cut_len = len;
    char *err = run_capturing_stderr(read_cut, NULL, &rc);
    cr_assert(rc == -1 && strstr(err, path), "%zu of %zu bytes: rc %d, '%s'", len, n, rc, err);
    free(err);
  }
  free(b);
}

static void round_trip(int npz) {
  char *dir = tmp_dir(), *path = path_in(dir, npz ? "w.npz" : "w.safetensors");
  aert_tensor_set s = sample_set(), back;
  s.layout = strdup("torch");
  cr_assert_eq(npz ? aert_npz_write(path, &s) : aert_safetensors_write(path, &s, "toy"), 0);
  unsigned char *b;
  size_t n;
  cr_assert_eq(aert_read_file(path, &b, &n), 0);
  cr_assert_eq((npz ? aert_npz_read : aert_safetensors_read)(path, b, n, &back), 0);
  same_sets(&s, &back);
  if (!npz)
    cr_assert(back.layout && !strcmp(back.layout, "torch"), "the layout travels in the metadata");
  free(b);
  aert_tensor_set_free(&back);
  aert_tensor_set_free(&s);
  every_truncation_refused(path, npz ? aert_npz_read : aert_safetensors_read);
}

Test(export, safetensors_round_trip_and_truncations, .init = cr_redirect_stdout) { round_trip(0); }
Test(export, npz_round_trip_and_truncations, .init = cr_redirect_stdout) { round_trip(1); }

static unsigned char npy_buf[256];
static size_t npy_len;
static int parse_npy(void *ctx) {
  aert_named t = {0};
  int rc = aert_npy_parse("'x.npy'", npy_buf, npy_len, &t);
  free(t.data);
  return rc;
}

/* A .npy of one value: header dict, then `bytes` bytes of data. */
static void make_npy(const char *dict, size_t bytes) {
  size_t n = strlen(dict) + 1;
  memcpy(npy_buf, "\x93NUMPY\x01\x00", 8);
  npy_buf[8] = (unsigned char)n, npy_buf[9] = 0;
  memcpy(npy_buf + 10, dict, n - 1);
  npy_buf[10 + n - 1] = '\n';
  memset(npy_buf + 10 + n, 0, bytes);
  npy_len = 10 + n + bytes;
}

Test(export, npy_of_other_dtype_order_or_size_refused) {
  struct { const char *dict; size_t bytes; const char *says; } cases[] = {
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8, "holds <f8 values; aec reads float32"},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 4, "is in Fortran order"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "is truncated: shape 6 values need 24 bytes"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc;
    make_npy(cases[i].dict, cases[i].bytes);
    char *err = run_capturing_stderr(parse_npy, NULL, &rc);
    if (!cases[i].says)
      cr_assert_eq(rc, 0, "%s", err);
    else
      cr_assert(rc == -1 && strstr(err, "'x.npy'") && strstr(err, cases[i].says), "%s", err);
    free(err);
  }
}

Test(export, init_checkpoint_is_the_seed_s_initialisation, .init = cr_redirect_stdout) {
  char *dir = tmp_dir(), args[600];
  snprintf(args, sizeof args, "init --quiet --seed 9 --out %s", dir);
  cr_assert_eq(run_main(&toy_model, args), 0);
  aert_ckpt ck;
  float *want = calloc(toy_model.param_floats, sizeof(float)), *got = calloc(toy_model.param_floats, sizeof(float));
  cr_assert_eq(aert_init_params(&toy_model, want, 9), 0);
  cr_assert_eq(aert_ckpt_load(path_in(dir, "init.ckpt"), &ck), 0);
  cr_assert_eq(aert_ckpt_restore(&ck, &toy_model, got, NULL), 0);
  cr_assert(ck.st.step == 0 && ck.st.seed == 9 && ck.st.has_optim);
  cr_assert(!memcmp(want, got, sizeof(float) * toy_model.param_floats));
  aert_ckpt_free(&ck);
  free(want);
  free(got);
}
