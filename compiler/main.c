/* main.c - the aec command line: check and summarise specs (later: build, dump).
 * Exit status 0 on success, 1 when a spec has errors, 2 on a usage error. */
#include "aec.h"

#include <string.h>

static const char usage[] =
  "usage: aec check FILE...          check specs and report every error\n"
  "       aec summary [--json] FILE  show layers, shapes, parameters, FLOPs and memory\n"
  "       aec --help | --version\n";

static int cmd_check(int argc, char **argv) {
  int failed = 0;
  for (int i = 0; i < argc; i++) {
    ae_arena *a = ae_arena_new();
    ae_diag d = { .out = stderr };
    ae_model *m = ae_load_spec(a, &d, argv[i]);
    if (m) printf("%s: ok (model %s)\n", argv[i], m->name);
    else failed = 1;
    ae_arena_free(a);
  }
  return failed;
}

static int cmd_summary(int argc, char **argv) {
  bool json = false;
  const char *path = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) json = true;
    else if (argv[i][0] == '-') { fprintf(stderr, "aec summary: unknown option '%s'\n%s", argv[i], usage); return 2; }
    else if (path) { fprintf(stderr, "aec summary: one spec at a time ('%s' and '%s' given)\n", path, argv[i]); return 2; }
    else path = argv[i];
  }
  if (!path) { fprintf(stderr, "aec summary: which spec?\n%s", usage); return 2; }
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = stderr };
  ae_model *m = ae_load_spec(a, &d, path);
  if (m && json) ae_print_summary_json(stdout, m);
  else if (m) ae_print_summary(stdout, m);
  ae_arena_free(a);
  return m ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) { fputs(usage, stderr); return 2; }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) { fputs(usage, stdout); return 0; }
  if (strcmp(cmd, "--version") == 0) { puts("aec 0.1"); return 0; }
  if (strcmp(cmd, "check") == 0) {
    if (argc < 3) { fprintf(stderr, "aec check: which spec?\n%s", usage); return 2; }
    return cmd_check(argc - 2, argv + 2);
  }
  if (strcmp(cmd, "summary") == 0) return cmd_summary(argc - 2, argv + 2);
  fprintf(stderr, "aec: unknown command '%s'\n%s", cmd, usage);
  return 2;
}
