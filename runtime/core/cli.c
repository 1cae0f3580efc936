/* cli.c - the trainer's command line: `MODEL train|eval|encode|predict|sample|interpolate|latent|
 * init|export|import [options]`, parsed
 * strictly (an unknown command or flag is a usage error, exit status 2), then dispatched.
 * Returns the process exit status: 0 done, 1 failed (message printed), 2 usage error. */
#include <cblas.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>

#include "aert_internal.h"
#include "dist.h"

enum { TRAIN = 1, EVAL = 2, ENCODE = 4, PREDICT = 8, SAMPLE = 16, INTERP = 32, LATENT = 64,
       INIT = 128, EXPORT = 256, IMPORT = 512, ANY = 1023, USE = ANY & ~(TRAIN | INIT | IMPORT) };

typedef struct {
  const char *name, *arg;  /* arg NULL: a switch */
  int cmds;
  const char *help;
  int only;                /* ONLY_TILES, ONLY_DEVICE: for some models alone; 0: every model */
} option_t;
enum { ONLY_TILES = 1,     /* models that read GeoTIFF tiles */
       ONLY_DEVICE = 2 };  /* models with a device of their own: the CUDA trainers */

static const option_t options[] = {
    {"--data", "DIR", ANY, "data folder (default: the model's, else " AERT_DEFAULT_DATA_DIR ")", 0},
    {"--out", "DIR", ANY, "output folder (default runs/<model>)", 0},
    {"--ckpt", "FILE", USE, "checkpoint to use (default OUT/best.ckpt)", 0},
    {"--epochs", "N", TRAIN, "epochs to train (default: the spec's)", 0},
    {"--lr", "X", TRAIN, "base learning rate (default: the spec's)", 0},
    {"--seed", "S", TRAIN | SAMPLE | LATENT | INIT, "random seed: initialisation, shuffling, noise; draws (default 1)", 0},
    {"--limit", "N", TRAIN, "use only the first N training examples", 0},
    {"--resume", NULL, TRAIN, "continue exactly from OUT/last.ckpt", 0},
    {"--force", NULL, TRAIN, "--resume although the optimizer or schedule changed", 0},
    {"--init", "FILE", TRAIN, "start from the parameters of checkpoint FILE (from init or import)", 0},
    {"--format", "F", EXPORT, "safetensors (default), npz or onnx", 0},
    {"--layout", "L", EXPORT | IMPORT, "aec (default) or torch: PyTorch's names and weight layouts; onnx: nchw (default) or nhwc", 0},
    {"--file", "FILE", INIT | EXPORT | IMPORT, "file written (default under OUT)", 0},
    {"--patience", "N", TRAIN, "stop after N epochs without a lower validation loss", 0},
    {"--tensorboard", "DIR", TRAIN, "also log every epoch's scalars as TensorBoard event files in DIR", 0},
    {"--step-timeout", "SEC", TRAIN, "end the job when a step takes longer (a hung rank; default 900 with ranks, none alone)", 0},
    {"--profile", "FILE", TRAIN, "time every kernel; write ms and GFLOP/s per kernel to FILE (JSON)", 0},
    {"--n", "N", SAMPLE, "images to draw (default 64)", 0},
    {"--from", "I", INTERP, "test image at the start of the line (default 0)", 0},
    {"--to", "J", INTERP, "test image at the end of the line (default 1)", 0},
    {"--steps", "K", INTERP, "decoded points on the line, ends included (default 10)", 0},
    {"--method", "M", LATENT, "pca, tsne or isomap (default: pca; a 2-d latent is plotted as it is)", 0},
    {"--points", "N", LATENT, "test images embedded (default: all for pca, 1000 for tsne and isomap)", 0},
    {"--neighbors", "K", LATENT, "isomap: nearest neighbours joined in its graph (default 10)", 0},
    {"--threads", "T", ANY, "threads for every kernel (default: all cores)", 0},
    {"--device", "N", ANY, "the CUDA device to run on (default 0)", ONLY_DEVICE},
    {"--data-threads", "N", ANY, "patches read side by side (default 2)", 1},
    {"--bad-tiles", "MODE", ANY, "stop (default) at an unusable tile, or skip it", 1},
    {"--input", "PATH", PREDICT | ENCODE, "new data instead of the test set: PNG file or folder, IDX file, .npy array, GeoTIFF tiles", 0},
    {"--overlap", "PX", PREDICT, "pixels shared by neighbouring windows (default patch/4)", 1},
    {"--probabilities", "T", PREDICT, "GeoTIFF tiles: also <tile>_prob.tif, a band per class of uint8 or float32", 1},
    {"--quiet", NULL, ANY, "no progress output", 0},
    {"--help", NULL, ANY, "this help", 0},
};
#define N_OPTIONS (int)(sizeof options / sizeof options[0])

static const struct {
  const char *name;
  int bit;
  const char *help;
} commands[] = {
    {"train", TRAIN, "train the model; writes OUT/best.ckpt, OUT/last.ckpt, OUT/train.csv, OUT/curves.png"},
    {"eval", EVAL, "test-set loss and metrics; writes OUT/reconstructions.png for image outputs"},
    {"encode", ENCODE, "latent of every test image: OUT/latent.npy and OUT/latent.csv"},
    {"predict", PREDICT, "model output for every test image: OUT/predictions.npy"},
    {"sample", SAMPLE, "decode N(0,1) latent draws: OUT/samples.png (and OUT/latent_grid.png for a 2-d latent)"},
    {"interpolate", INTERP, "decode the line between two test images' latents: OUT/interpolation.png"},
    {"latent", LATENT, "2-d map of the test latents (PCA, t-SNE or Isomap): OUT/latent_2d.csv, OUT/latent_2d.png"},
    {"init", INIT, "the initialised parameters (step 0) of --seed: OUT/init.ckpt"},
    {"export", EXPORT, "a checkpoint's parameters as safetensors or npz, or the model as ONNX: OUT/<model>[.torch].<format>"},
    {"import", IMPORT, "FILE (safetensors, npz) to a checkpoint: OUT/imported.ckpt; then train --init it"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static int reads_tiles(const aert_model *m) {
  return m->data.kind == AERT_DATA_GEOTIFF || m->data.kind == AERT_DATA_SYNTHETIC_LANDCOVER;
}

/* Whether an option marked `only` is one of model m's. */
static int option_applies(const aert_model *m, int only) {
  return only == ONLY_TILES ? reads_tiles(m) : only == ONLY_DEVICE ? m->device != NULL : 1;
}

static const char *command_help(const aert_model *m, int i) {
  if (commands[i].bit == PREDICT && reads_tiles(m))
    return "every whole test tile: OUT/predictions/<tile>_pred.tif (a cloud-optimised GeoTIFF) and .png";
  return commands[i].help;
}

static void usage(const aert_model *m, const char *prog, int cmd) {
  if (!cmd) {
    printf("usage: %s <command> [options]\nmodel %s (%s)\n\ncommands:\n", prog, m->name,
           m->spec_file ? m->spec_file : "no spec file");
    for (int i = 0; i < N_COMMANDS; i++)
      printf("  %-12s %s\n", commands[i].name, command_help(m, i));
    printf("\n'%s <command> --help' lists the options of a command.\n", prog);
    return;
  }
  for (int i = 0; i < N_COMMANDS; i++)
    if (commands[i].bit == cmd)
      printf("usage: %s %s [options]\n%s\n\noptions:\n", prog, commands[i].name, command_help(m, i));
  for (int i = 0; i < N_OPTIONS; i++)
    if ((options[i].cmds & cmd) && option_applies(m, options[i].only))
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
  else if (!strcmp(flag, "--profile")) o->profile = val;
  else if (!strcmp(flag, "--tensorboard")) o->tensorboard = val;
  else if (!strcmp(flag, "--resume")) o->resume = 1;
  else if (!strcmp(flag, "--force")) o->force = 1;
  else if (!strcmp(flag, "--init")) o->init = val;
  else if (!strcmp(flag, "--input")) o->input = val;
  else if (!strcmp(flag, "--file")) o->dest = val;
  else if (!strcmp(flag, "--format")) {
    o->format = val;
    if (strcmp(val, "safetensors") && strcmp(val, "npz") && strcmp(val, "onnx"))
      return aert_error("--format expects safetensors, npz or onnx, got '%s'", val), -1;
  }
  else if (!strcmp(flag, "--layout")) {
    o->layout = val;
    if (strcmp(val, "aec") && strcmp(val, "torch") && strcmp(val, "nchw") && strcmp(val, "nhwc"))
      return aert_error("--layout expects aec or torch (weights), nchw or nhwc (onnx), got '%s'",
                        val), -1;
  }
  else if (!strcmp(flag, "--quiet")) o->quiet = 1;
  else if (!strcmp(flag, "--probabilities")) {
    if (strcmp(val, "uint8") && strcmp(val, "float32"))
      return aert_error("--probabilities expects uint8 or float32, got '%s'", val), -1;
    o->probabilities = 1 + (!strcmp(val, "uint8") ? AERT_PIX_U8 : AERT_PIX_F32);
  }
  else if (!strcmp(flag, "--bad-tiles")) {
    if (strcmp(val, "skip") && strcmp(val, "stop"))
      return aert_error("--bad-tiles expects skip or stop, got '%s'", val), -1;
    o->skip_bad = !strcmp(val, "skip");
  }
  else if (!strcmp(flag, "--method")) {
    o->method = val;
    if (strcmp(val, "pca") && strcmp(val, "tsne") && strcmp(val, "isomap"))
      return aert_error("--method expects pca, tsne or isomap, got '%s'", val), -1;
  }
  else if (!strcmp(flag, "--lr")) {
    char *end;
    o->lr = strtof(val, &end);
    if (!*val || *end || !(o->lr > 0))
      return aert_error("--lr expects a positive number, got '%s'", val), -1;
  } else {
    int zero_ok = !strcmp(flag, "--seed") || !strcmp(flag, "--from") || !strcmp(flag, "--to") ||
                  !strcmp(flag, "--overlap");
    rc = parse_count(flag, val, !strcmp(flag, "--steps") ? 2 : zero_ok ? 0 : 1, &n);
    if (!strcmp(flag, "--epochs")) o->epochs = (int)n;
    else if (!strcmp(flag, "--seed")) o->seed = (uint64_t)n;
    else if (!strcmp(flag, "--limit")) o->limit = n;
    else if (!strcmp(flag, "--patience")) o->patience = (int)n;
    else if (!strcmp(flag, "--step-timeout")) o->step_timeout = (int)(n < 1 << 30 ? n : 1 << 30);
    else if (!strcmp(flag, "--threads")) o->threads = (int)n;
    else if (!strcmp(flag, "--n")) o->samples = (int)n;
    else if (!strcmp(flag, "--from")) o->from = n;
    else if (!strcmp(flag, "--to")) o->to = n;
    else if (!strcmp(flag, "--steps")) o->steps = (int)n;
    else if (!strcmp(flag, "--points")) o->points = n;
    else if (!strcmp(flag, "--neighbors")) o->neighbors = (int)(n < 1000 ? n : 1000);
    else if (!strcmp(flag, "--data-threads")) o->data_threads = (int)(n < 64 ? n : 64);
    else if (!strcmp(flag, "--overlap")) o->overlap = (int)(n < 1 << 20 ? n : 1 << 20);
  }
  return rc;
}

/* Returns 0 to run, 1 when help was printed, -1 on a usage error (message printed). */
static int parse(const aert_model *m, int argc, char **argv, aert_options *o, int *cmd) {
  const char *prog = argc > 0 ? argv[0] : m->name;
  *cmd = 0;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
    return usage(m, prog, 0), argc < 2 ? -1 : 1;
  for (int i = 0; i < N_COMMANDS; i++)
    if (!strcmp(argv[1], commands[i].name))
      *cmd = commands[i].bit, o->cmd = commands[i].name;
  if (!*cmd)
    return aert_error("unknown command '%s'; see '%s --help'", argv[1], prog), -1;
  for (int i = 2; i < argc; i++) {
    char flag[64];
    if (*cmd == IMPORT && argv[i][0] != '-' && !o->input) {   /* import FILE */
      o->input = argv[i];
      continue;
    }
    const char *eq = strchr(argv[i], '='), *val = NULL;
    snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - argv[i]) : (int)strlen(argv[i]), argv[i]);
    const option_t *op = NULL;
    for (int k = 0; k < N_OPTIONS; k++)
      if (!strcmp(flag, options[k].name) && (options[k].cmds & *cmd))
        op = &options[k];
    if (!op)
      return aert_error("unknown option '%s' for '%s'; see '%s %s --help'", argv[i], o->cmd, prog,
                        o->cmd), -1;
    if (op->only == ONLY_DEVICE && !option_applies(m, op->only))   /* a CUDA trainer takes it before aert_main */
      return aert_error("option '--device' is an option of the CUDA trainers (bin/%s-cuda, "
                        "bin/%s-cuda-emu); '%s' runs on the CPU", m->name, m->name, prog), -1;
    if (op->only && !option_applies(m, op->only))
      return aert_error("option '%s' is for models that read GeoTIFF tiles; model '%s' does not",
                        flag, m->name), -1;
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
  if (*cmd == IMPORT && !o->input)
    return aert_error("import needs the file to import: '%s import FILE'; see '%s import --help'",
                      prog, prog), -1;
  return 0;
}

/* This process's threads that are running now (OpenBLAS's spin a while after it starts). */
static int own_running(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d))) {
    char path[64], state = 0;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/task/%.32s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (f && fscanf(f, "%*d %*s %c", &state) == 1) n += state == 'R';
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return n;
}

/* Whether nothing else runs: at least 15 of 20 looks 1 ms apart at /proc/loadavg (its fourth
 * field counts every running task) find no running task but this process's own, so that
 * a program starting beside it (a pipe's other end) does not count, a busy one does. */
static int machine_quiet(void) {
  int quiet = 0;
  for (int i = 0; i < 20; i++) {
    FILE *f = fopen("/proc/loadavg", "r");
    int running = 0;
    if (!f || fscanf(f, "%*f %*f %*f %d", &running) != 1) {
      if (f) fclose(f);
      return 0;
    }
    fclose(f);
    quiet += running - own_running() <= 0;
    usleep(1000);
  }
  return quiet >= 15;
}

void aert_prefer_passive_threads(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  /* On a quiet machine a thread spins about 30 us (libgomp counts some 100 spins a
   * microsecond) before it sleeps: waking sleeping threads for each of a step's hundred
   * parallel loops cost more (dense_ae 6.2 -> 4.9 ms a step, unet_landcover_small 24.3 ->
   * 18.8 ms on a 2-core AMD EPYC). With other work running, spinning takes the cores it
   * needs (conv_ae 184 -> 211 ms beside one busy process), so threads sleep at once. */
  if (!getenv("GOMP_SPINCOUNT") && machine_quiet()) setenv("GOMP_SPINCOUNT", "3000", 1);
  execv("/proc/self/exe", argv);   /* only returns on failure: then run as we are */
}

static int run_command(const aert_model *m, int argc, char **argv, int rank) {
  aert_options o = {.seed = 1, .samples = 64, .from = 0, .to = 1, .steps = 10, .neighbors = 10,
                    .overlap = -1};
  char out[512];
  int cmd, rc = parse(m, argc, argv, &o, &cmd);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  if (rank > 0 && cmd != TRAIN && cmd != EVAL)   /* eval may split its test set (evaluate.c) */
    return 0;
  if (rank > 0)
    o.quiet = 1;
  if (aert_dist_size() > 1 && !o.step_timeout)
    o.step_timeout = 900;
  if (!o.out) {
    snprintf(out, sizeof out, "runs/%s", m->name);
    o.out = out;
  }
  /* Past a file-size limit a write fails with EFBIG, and the ordinary "cannot write" error
   * removes the temporary file, as for a full disk, instead of the process dying. */
  signal(SIGXFSZ, SIG_IGN);
  /* OpenMP spreads every kernel over the threads; OpenBLAS runs inside them, alone. */
  openblas_set_num_threads(1);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  aert_tiles_configure(o.data_threads, o.skip_bad);
  switch (cmd) {
  case TRAIN: rc = aert_train(m, &o); break;
  case EVAL: rc = aert_eval(m, &o); break;
  case ENCODE: rc = aert_encode(m, &o); break;
  case SAMPLE: rc = aert_sample(m, &o); break;
  case INTERP: rc = aert_interpolate(m, &o); break;
  case LATENT: rc = aert_latent_map(m, &o); break;
  case INIT: rc = aert_init_command(m, &o); break;
  case EXPORT: rc = aert_export(m, &o); break;
  case IMPORT: rc = aert_import(m, &o); break;
  default: rc = aert_predict(m, &o); break;
  }
  /* 128 + the signal: stopped by Ctrl-C (130) or SIGTERM (143) after writing last.ckpt */
  return rc == 0 ? 0 : rc == 1 && cmd == TRAIN ? 128 + aert_train_stopped_by() : 1;
}

/* Under a launcher (mpirun, srun --mpi=pmix) the trainer is one of several ranks: `train`
 * (and `eval` of a class-map model) runs on all of them, rank 0 alone printing and writing;
 * the other commands run on rank 0. */
int aert_main(const aert_model *m, int argc, char **argv) {
  if (aert_dist_init(&argc, &argv) != 0)
    return 1;
  int rank = aert_dist_rank(), rc = run_command(m, argc, argv, rank);
  aert_dist_finish(rc == 1);
  return rc;
}
