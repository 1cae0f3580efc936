/* helpers.c - what the runtime tests share: scratch folders, running aert_main on an
 * argument line, and capturing what the runtime prints on stderr. */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "toy_model.h"

static char *made[8];
static int n_made;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

/* Each test runs in its own process: its folders go when it exits. */
static void remove_made(void) {
  for (int i = 0; i < n_made; i++)
    nftw(made[i], remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

char *tmp_dir(void) {
  char *d = strdup("/tmp/aert_test_XXXXXX");
  cr_assert(d && mkdtemp(d), "mkdtemp failed");
  if (n_made == 0)
    atexit(remove_made);
  if (n_made < 8)
    made[n_made++] = d;
  return d;
}

char *path_in(const char *dir, const char *name) {
  return aert_join(dir, name);
}

char *run_capturing_stderr(int (*fn)(void *), void *ctx, int *rc) {
  fflush(stderr);
  FILE *tmp = tmpfile();
  int saved = dup(2);
  cr_assert(tmp && saved >= 0);
  dup2(fileno(tmp), 2);
  *rc = fn(ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long n = ftell(tmp) >= 0 ? lseek(fileno(tmp), 0, SEEK_END) : 0;
  char *text = calloc(1, (size_t)n + 1);
  cr_assert(text);
  if (n > 0) {
    cr_assert(pread(fileno(tmp), text, (size_t)n, 0) == n);
  }
  fclose(tmp);
  return text;
}

int run_main(const aert_model *m, const char *args) {
  char *copy = strdup(args), *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"toy";
  for (char *s = strtok(copy, " "); s && argc < 63; s = strtok(NULL, " "))
    argv[argc++] = s;
  argv[argc] = NULL;
  int rc = aert_main(m, argc, argv);
  free(copy);
  return rc;
}

typedef struct {
  const aert_model *m;
  const char *args;
} main_call;

static int call_main(void *ctx) {
  main_call *c = ctx;
  return run_main(c->m, c->args);
}

char *main_stderr(const aert_model *m, const char *args, int *rc) {
  main_call c = {m, args};
  return run_capturing_stderr(call_main, &c, rc);
}
