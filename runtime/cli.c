/* cli.c - the trainer's command line: `MODEL train|eval|encode|predict [options]`, parsed
 * strictly (an unknown command or flag is a usage error, exit status 2), then dispatched.
 * Returns the process exit status: 0 done, 1 failed (message printed), 2 usage error. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>

#include "aert_internal.h"

enum { TRAIN = 1, EVAL = 2, ENCODE = 4, PREDICT = 8, ANY = 15, USE = 6 | 8 };

typedef struct {
  const char *name, *arg;  /* arg NULL: a switch */
  int cmds;
  const char *help;
} option_t;

static const option_t options[] = {
    {"--data", "DIR", ANY, "data folder (default: the model's, else " AERT_DEFAULT_DATA_DIR ")"},
    {"--out", "DIR", ANY, "output folder (default runs/<model>)"},
    {"--ckpt", "FILE", USE, "checkpoint to use (default OUT/best.ckpt)"},
    {"--epochs", "N", TRAIN, "epochs to train (default: the spec's)"},
    {"--lr", "X", TRAIN, "base learning rate (default: the spec's)"},
    {"--seed", "S", TRAIN, "random seed for initialisation, shuffling, noise (default 1)"},
    {"--limit", "N", TRAIN, "use only the first N training examples"},
    {"--resume", NULL, TRAIN, "continue exactly from OUT/last.ckpt"},
    {"--patience", "N", TRAIN, "stop after N epochs without a lower validation loss"},
    {"--threads", "T", ANY, "threads for every kernel (default: all cores)"},
    {"--quiet", NULL, ANY, "no progress output"},
    {"--help", NULL, ANY, "this help"},
};
#define N_OPTIONS (int)(sizeof options / sizeof options[0])

static const struct {
  const char *name;
  int bit;
  const char *help;
} commands[] = {
    {"train", TRAIN, "train the model; writes OUT/best.ckpt, OUT/last.ckpt, OUT/train.csv"},
    {"eval", EVAL, "test-set loss and metrics; writes OUT/reconstructions.png for image outputs"},
    {"encode", ENCODE, "latent of every test image: OUT/latent.npy and OUT/latent.csv"},
    {"predict", PREDICT, "model output for every test image: OUT/predictions.npy"},
};

static void usage(const aert_model *m, const char *prog, int cmd) {
  if (!cmd) {
    printf("usage: %s <command> [options]\nmodel %s (%s)\n\ncommands:\n", prog, m->name,
           m->spec_file ? m->spec_file : "no spec file");
    for (int i = 0; i < 4; i++)
      printf("  %-8s %s\n", commands[i].name, commands[i].help);
    printf("\n'%s <command> --help' lists the options of a command.\n", prog);
    return;
  }
  for (int i = 0; i < 4; i++)
    if (commands[i].bit == cmd)
      printf("usage: %s %s [options]\n%s\n\noptions:\n", prog, commands[i].name, commands[i].help);
  for (int i = 0; i < N_OPTIONS; i++)
    if (options[i].cmds & cmd)
      printf("  %-10s %-5s %s\n", options[i].name, options[i].arg ? options[i].arg : "",
             options[i].help);
}

static int parse_count(const char *flag, const char *s, long min, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s && !*end && v >= min) {
    *out = v;
    return 0;
  }
  aert_error("%s expects an integer >= %ld, got '%s'", flag, min, s);
  return -1;
}

static int set_option(aert_options *o, const char *flag, const char *val) {
  long n = 0;
  int rc = 0;
  if (!strcmp(flag, "--data")) o->data_dir = val;
  else if (!strcmp(flag, "--out")) o->out = val;
  else if (!strcmp(flag, "--ckpt")) o->ckpt = val;
  else if (!strcmp(flag, "--resume")) o->resume = 1;
  else if (!strcmp(flag, "--quiet")) o->quiet = 1;
  else if (!strcmp(flag, "--lr")) {
    char *end;
    o->lr = strtof(val, &end);
    if (!*val || *end || !(o->lr > 0))
      return aert_error("--lr expects a positive number, got '%s'", val), -1;
  } else {
    rc = parse_count(flag, val, strcmp(flag, "--seed") ? 1 : 0, &n);
    if (!strcmp(flag, "--epochs")) o->epochs = (int)n;
    else if (!strcmp(flag, "--seed")) o->seed = (uint64_t)n;
    else if (!strcmp(flag, "--limit")) o->limit = n;
    else if (!strcmp(flag, "--patience")) o->patience = (int)n;
    else if (!strcmp(flag, "--threads")) o->threads = (int)n;
  }
  return rc;
}

/* Returns 0 to run, 1 when help was printed, -1 on a usage error (message printed). */
static int parse(const aert_model *m, int argc, char **argv, aert_options *o, int *cmd) {
  const char *prog = argc > 0 ? argv[0] : m->name;
  *cmd = 0;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
    return usage(m, prog, 0), argc < 2 ? -1 : 1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(argv[1], commands[i].name))
      *cmd = commands[i].bit, o->cmd = commands[i].name;
  if (!*cmd)
    return aert_error("unknown command '%s'; see '%s --help'", argv[1], prog), -1;
  for (int i = 2; i < argc; i++) {
    char flag[64];
    const char *eq = strchr(argv[i], '='), *val = NULL;
    snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - argv[i]) : (int)strlen(argv[i]), argv[i]);
    const option_t *op = NULL;
    for (int k = 0; k < N_OPTIONS; k++)
      if (!strcmp(flag, options[k].name) && (options[k].cmds & *cmd))
        op = &options[k];
    if (!op)
      return aert_error("unknown option '%s' for '%s'; see '%s %s --help'", argv[i], o->cmd, prog,
                        o->cmd), -1;
    if (!strcmp(flag, "--help"))
      return usage(m, prog, *cmd), 1;
    if (op->arg && !eq && i + 1 >= argc)
      return aert_error("option '%s' needs a value (%s)", flag, op->arg), -1;
    if (!op->arg && eq)
      return aert_error("option '%s' takes no value", flag), -1;
    val = op->arg ? (eq ? eq + 1 : argv[++i]) : NULL;
    if (set_option(o, flag, val) != 0)
      return -1;
  }
  return 0;
}

void aert_prefer_passive_threads(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);   /* only returns on failure: then run as we are */
}

int aert_main(const aert_model *m, int argc, char **argv) {
  aert_options o = {.seed = 1};
  char out[512];
  int cmd, rc = parse(m, argc, argv, &o, &cmd);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  if (!o.out) {
    snprintf(out, sizeof out, "runs/%s", m->name);
    o.out = out;
  }
  /* OpenMP spreads every kernel over the threads; OpenBLAS runs inside them, alone. */
  openblas_set_num_threads(1);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  switch (cmd) {
  case TRAIN: rc = aert_train(m, &o); break;
  case EVAL: rc = aert_eval(m, &o); break;
  case ENCODE: rc = aert_encode(m, &o); break;
  default: rc = aert_predict(m, &o); break;
  }
  return rc == 0 ? 0 : rc == 1 && cmd == TRAIN ? 130 : 1;   /* 130: stopped by Ctrl-C, checkpoint written */
}
