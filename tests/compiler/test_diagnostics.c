/* test_diagnostics.c - golden diagnostics: every tests/specs/broken/NAME.ae must make
 * the front end print exactly tests/specs/broken/NAME.err (file, line, column, message,
 * source line, caret and hints) and fail. Run from the repository root. */
#include "aec.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define BROKEN_DIR "tests/specs/broken"

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = 0;
  fclose(f);
  return buf;
}

/* Runs the front end on one spec; returns what it printed and whether it failed. */
static char *diagnose(const char *path, bool *failed) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = out };
  ae_model *m = ae_load_spec(a, &d, path);
  *failed = m == NULL && d.errors > 0;
  ae_arena_free(a);
  fclose(out);
  return text;
}

Test(diagnostics, every_broken_spec_gets_its_exact_message) {
  DIR *dir = opendir(BROKEN_DIR);
  cr_assert_not_null(dir, "cannot open " BROKEN_DIR " (run from the repository root)");
  int checked = 0, wrong = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t n = strlen(e->d_name);
    if (n < 4 || strcmp(e->d_name + n - 3, ".ae") != 0) continue;
    char spec[512], golden[512];
    snprintf(spec, sizeof spec, BROKEN_DIR "/%s", e->d_name);
    snprintf(golden, sizeof golden, BROKEN_DIR "/%.*s.err", (int)(n - 3), e->d_name);
    char *want = read_text(golden);
    bool failed;
    char *got = diagnose(spec, &failed);
    if (!want) { cr_log_error("%s: golden file %s is missing; aec printed:\n%s", spec, golden, got); wrong++; }
    else if (!failed) { cr_log_error("%s: expected errors, but the spec was accepted", spec); wrong++; }
    else if (strcmp(want, got) != 0) {
      cr_log_error("%s: diagnostics differ\n--- expected\n%s--- got\n%s", spec, want, got);
      wrong++;
    }
    free(want);
    free(got);
    checked++;
  }
  closedir(dir);
  cr_expect_geq(checked, 30, "only %d broken specs in " BROKEN_DIR, checked);
  cr_expect_eq(wrong, 0, "%d of %d broken specs got other diagnostics", wrong, checked);
}
