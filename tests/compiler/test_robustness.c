/* test_robustness.c - hostile inputs for the front end: each must end, in bounded
 * time, with a clean failure (at least one error) or a clean success; never a crash
 * or a hang. The inputs are written into a fresh temporary directory. */
#include "aec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void) {
  strcpy(dir, "/tmp/aec-robust-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(robustness, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* Writes n bytes to dir/name; returns the path (static storage per call site is not
 * needed: callers copy it). */
static const char *write_file(const char *name, const char *bytes, size_t n) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(bytes, 1, n, f), n);
  fclose(f);
  return path;
}

static const char *write_text(const char *name, const char *text) { return write_file(name, text, strlen(text)); }

typedef struct { bool ok; int errors, warnings; char *out; double seconds; } outcome;

static outcome load(const char *path) {
  outcome r = {0};
  size_t len = 0;
  FILE *out = open_memstream(&r.out, &len);
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = out };
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  r.ok = ae_load_spec(a, &d, path) != NULL;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r.errors = d.errors;
  r.warnings = d.warnings;
  r.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  ae_arena_free(a);
  fclose(out);
  return r;
}

/* The input must be refused with at least one error message, within 5 seconds. */
static void expect_refused(const char *path, const char *what) {
  outcome r = load(path);
  cr_expect(!r.ok, "%s: accepted", what);
  cr_expect_gt(r.errors, 0, "%s: no error counted", what);
  cr_expect(r.out && strstr(r.out, "error:"), "%s: no error printed; got:\n%s", what, r.out ? r.out : "");
  cr_expect_lt(r.seconds, 5.0, "%s: took %.1f s", what, r.seconds);
  free(r.out);
}

/* A text made of a head, a middle repeated n times, and a tail. */
static char *repeat(const char *head, const char *middle, long n, const char *tail) {
  size_t hl = strlen(head), ml = strlen(middle), tl = strlen(tail);
  char *s = malloc(hl + ml * (size_t)n + tl + 1), *p = s;
  memcpy(p, head, hl); p += hl;
  for (long i = 0; i < n; i++) { memcpy(p, middle, ml); p += ml; }
  memcpy(p, tail, tl); p += tl;
  *p = 0;
  return s;
}

#define MODEL_HEAD "model m {\n  input x: f32[784]\n  batch 8\n"
#define MODEL_TAIL "  y = dense(x, 784) |> sigmoid\n  loss bce(y, x)\n}\n"

Test(robustness, empty_file) { expect_refused(write_text("empty.ae", ""), "empty file"); }

Test(robustness, only_comments) {
  expect_refused(write_text("comments.ae", "# a spec\n# with nothing else\n\n   # at all\n"), "only comments");
}

Test(robustness, binary_garbage) {
  size_t n = 64 * 1024;
  char *bytes = malloc(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; i++) { x = x * 1664525u + 1013904223u; bytes[i] = (char)(x >> 24); }
  bytes[10] = 0;                       /* NUL bytes, early and late */
  bytes[n - 7] = 0;
  expect_refused(write_file("garbage.ae", bytes, n), "binary garbage");
  free(bytes);
}

Test(robustness, garbage_after_a_model_start) {
  char bytes[4096];
  strcpy(bytes, "model m {\n  input x: f32[");
  size_t head = strlen(bytes);
  uint32_t x = 99;
  for (size_t i = head; i < sizeof bytes; i++) { x = x * 1103515245u + 12345u; bytes[i] = (char)(x >> 16); }
  expect_refused(write_file("half.ae", bytes, sizeof bytes), "garbage after a model start");
}

Test(robustness, line_of_100_kb) {
  char *text = repeat(MODEL_HEAD "  h = x", " |> relu", 12500, "\n  y = dense(h, 784) |> sigmoid\n  loss bce(y, x) +\n}\n");
  expect_refused(write_text("long_line.ae", text), "100 kB line");
  free(text);
}

Test(robustness, long_line_with_an_error_at_its_end) {
  char *text = repeat(MODEL_HEAD "  h = x", " |> relu", 12500, " |> nosuchlayer\n" MODEL_TAIL);
  outcome r = load(write_text("long_err.ae", text));
  cr_expect(!r.ok);
  cr_expect(strstr(r.out, "nosuchlayer"), "the long line's window must show the error: %s", r.out);
  free(r.out);
  free(text);
}

Test(robustness, nested_parentheses_100000) {
  char *open = repeat(MODEL_HEAD "  h = ", "(", 100000, "x");
  char *text = repeat(open, ")", 100000, "\n" MODEL_TAIL);
  expect_refused(write_text("parens.ae", text), "100000 nested parentheses");
  free(open);
  free(text);
}

Test(robustness, nested_brackets_and_braces) {
  char *text = repeat(MODEL_HEAD "  input y: f32", "[", 50000, "\n}\n");
  expect_refused(write_text("brackets.ae", text), "50000 '['");
  free(text);
  text = repeat("model m ", "{", 50000, "\n");
  expect_refused(write_text("braces.ae", text), "50000 '{'");
  free(text);
}

Test(robustness, sum_of_100000_terms) {
  char *text = repeat(MODEL_HEAD "  n = 1", " + 1", 100000, "\n" MODEL_TAIL);
  outcome r = load(write_text("sum.ae", text));
  cr_expect_lt(r.seconds, 5.0);
  cr_expect(r.ok || r.errors > 0, "neither accepted nor an error: %s", r.out);
  free(r.out);
  free(text);
}

Test(robustness, chain_of_10000_blocks) {
  size_t cap = 10000 * 64 + 1024;
  char *text = malloc(cap), *p = text;
  p += sprintf(p, MODEL_HEAD "  block b0(in) = relu(in)\n");
  for (int i = 1; i < 10000; i++) p += sprintf(p, "  block b%d(in) = b%d(in)\n", i, i - 1);
  sprintf(p, "  h = b9999(x)\n  y = dense(h, 784) |> sigmoid\n  loss bce(y, x)\n}\n");
  expect_refused(write_text("chain.ae", text), "10000 nested block calls");
  free(text);
}

Test(robustness, blocks_calling_each_other) {
  expect_refused(write_text("loop.ae", MODEL_HEAD
                            "  block a(in) = b(in)\n  block b(in) = c(in)\n  block c(in) = a(in)\n"
                            "  h = a(x)\n  h2 = a(h)\n" MODEL_TAIL), "a loop of blocks");
}

Test(robustness, huge_numbers) {
  expect_refused(write_text("e400.ae", MODEL_HEAD "  h = dense(x, 1e400)\n" MODEL_TAIL), "1e400");
  expect_refused(write_text("dim.ae", "model m {\n  input x: f32[99999999999999999999]\n  batch 8\n"
                                      "  y = dense(x, 784) |> sigmoid\n  loss bce(y, x)\n}\n"),
                 "99999999999999999999 as a dimension");
  expect_refused(write_text("product.ae", "model m {\n  input x: f32[1000000, 1000000, 1000000]\n  batch 8\n"
                                          "  y = x |> sigmoid\n  loss bce(y, x)\n}\n"), "a huge product of dimensions");
  expect_refused(write_text("overflow.ae", MODEL_HEAD "  h = dense(x, 1e300 * 1e300)\n" MODEL_TAIL), "an overflowing product");
  expect_refused(write_text("units.ae", MODEL_HEAD "  h = dense(x, 16777216) |> dense(16777216)\n" MODEL_TAIL),
                 "layers with too many values");
}

Test(robustness, name_of_10000_characters) {
  char *name = repeat("", "a", 10000, "");
  char *text = malloc(30000);
  sprintf(text, MODEL_HEAD "  %s = dense(x, 16)\n  y = dense(%s, 784) |> sigmoid\n  loss bce(y, x)\n}\n", name, name);
  expect_refused(write_text("name.ae", text), "a name of 10000 characters");
  free(name);
  free(text);
}

Test(robustness, directory_as_spec) { expect_refused(dir, "a directory"); }

Test(robustness, missing_file) {
  char path[256];
  snprintf(path, sizeof path, "%s/no-such-spec.ae", dir);
  expect_refused(path, "a missing file");
}

Test(robustness, spec_imports_itself) {
  expect_refused(write_text("self.ae", "import enc from \"self.ae\"\n" MODEL_HEAD
                            "  block enc(in) = relu(in)\n  h = enc(x)\n" MODEL_TAIL), "a spec importing itself");
}

Test(robustness, specs_import_each_other) {
  write_text("a.ae", "import dec from \"b.ae\"\n" MODEL_HEAD "  block enc(in) = relu(in)\n  h = enc(x)\n" MODEL_TAIL);
  char b[256];
  strcpy(b, write_text("b.ae", "import enc from \"a.ae\"\n" MODEL_HEAD "  block dec(in) = relu(in)\n  h = dec(x)\n" MODEL_TAIL));
  char a[256];
  snprintf(a, sizeof a, "%s/a.ae", dir);
  expect_refused(a, "a.ae and b.ae importing each other");
  expect_refused(b, "b.ae and a.ae importing each other");
}

Test(robustness, import_of_a_directory_and_of_garbage) {
  char sub[256];
  snprintf(sub, sizeof sub, "%s/sub.ae", dir);
  cr_assert_eq(mkdir(sub, 0700), 0);
  expect_refused(write_text("imports_dir.ae", "import enc from \"sub.ae\"\n" MODEL_HEAD "  h = enc(x)\n" MODEL_TAIL),
                 "an import of a directory");
  write_file("junk.ae", "\x01\x02\xff{{{", 7);
  expect_refused(write_text("imports_junk.ae", "import enc from \"junk.ae\"\n" MODEL_HEAD "  h = enc(x)\n" MODEL_TAIL),
                 "an import of garbage");
}

Test(robustness, many_errors_stop_at_the_limit) {
  char *text = repeat(MODEL_HEAD, "  h = nosuch(x)\n", 5000, MODEL_TAIL);
  outcome r = load(write_text("many.ae", text));
  cr_expect(!r.ok);
  cr_expect(strstr(r.out, "too many errors"), "no stop after %d errors", AE_MAX_ERRORS);
  cr_expect_lt(strlen(r.out), 100000u, "printed %zu bytes", strlen(r.out));
  free(r.out);
  free(text);
}

Test(robustness, a_good_spec_still_passes) {
  outcome r = load(write_text("good.ae", MODEL_HEAD MODEL_TAIL));
  cr_expect(r.ok, "a minimal spec is refused:\n%s", r.out);
  free(r.out);
}

/* A softmax over a last axis of one value is legal but always 1 (a generated spec's gradient
 * check met one): the spec is accepted with a warning at the softmax and a hint; a softmax
 * over several values is not warned about. */
Test(robustness, softmax_over_one_value_is_warned) {
#define SOFTMAX_OF(N) MODEL_HEAD "  p = dense(x, " #N ") |> softmax\n  y = dense(x, 784) |> sigmoid\n" \
  "  loss bce(y, x) + 0.1 * l1(p)\n}\n"
  outcome r = load(write_text("softmax1.ae", SOFTMAX_OF(1)));
  cr_expect(r.ok, "refused:\n%s", r.out);
  cr_expect_eq(r.warnings, 1, "%d warnings:\n%s", r.warnings, r.out);
  cr_expect(strstr(r.out, "softmax1.ae:4:22: warning: softmax over a last axis of one value is always 1") &&
            strstr(r.out, "hint: for one channel use sigmoid"), "got:\n%s", r.out);
  free(r.out);
  r = load(write_text("softmax10.ae", SOFTMAX_OF(10)));
  cr_expect(r.ok && r.warnings == 0, "a softmax over 10 values: %d warnings:\n%s", r.warnings, r.out);
  free(r.out);
}

/* aec build --out a/b/c: the folders above the output that are missing are made; a path
 * under a file cannot be, and says so through errno (the caller names the folder). */
Test(robustness, output_folder_and_its_parents) {
  char nested[256], under_file[256];
  snprintf(nested, sizeof nested, "%s/a/b/c", dir);
  cr_expect(ae_make_dir(nested), "'%s' was not made", nested);
  struct stat st;
  cr_expect(stat(nested, &st) == 0 && S_ISDIR(st.st_mode), "'%s' is not a folder", nested);
  cr_expect(ae_make_dir(nested), "an existing folder is refused");
  snprintf(under_file, sizeof under_file, "%s/x/y", write_text("plain", "not a folder"));
  cr_expect(!ae_make_dir(under_file), "a folder under a file was made");
  cr_expect_eq(errno, ENOTDIR);
  cr_expect(!ae_make_dir(""), "an empty name was taken for a folder");
}
