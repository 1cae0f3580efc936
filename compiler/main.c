/* main.c - the aec command line: check, summary, dump, build, report.
 * Exit status 0 on success, 1 when a spec has errors or a build fails, 2 on a usage error. */
#include "aec.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
  "usage: aec check FILE...                      check specs and report every error\n"
  "       aec summary [--json] [--batch N] FILE  layers, shapes, parameters, FLOPs and memory\n"
  "       aec dump --stage ir|grad|fused|steps|mem FILE   print a stage of the back end\n"
  "       aec build [--batch N] [--out DIR] [--no-compile] [--mpi [--ranks N]] FILE\n"
  "                                              generate DIR (default generated/<model>) and\n"
  "                                              build the trainer bin/<model>; --mpi: with mpicc,\n"
  "                                              for data-parallel training over MPI ranks, each\n"
  "                                              with batch / N (--ranks N) of the global batch\n"
  "       aec build --target cuda [--emulate] [--precision fp32|tf32|bf16] [--batch N] [--out DIR]\n"
  "                 [--no-compile] FILE          also write DIR/model.cu and build bin/<model>-cuda with\n"
  "                                              nvcc (sm_90), or with --emulate bin/<model>-cuda-emu: the\n"
  "                                              same kernels as host C++ under runtime/cuda_emu.h;\n"
  "                                              --precision: the GEMMs' operands (tf32, bf16: tensor\n"
  "                                              cores, fp32 sums and weights; default fp32);\n"
  "                                              --gemm cublaslt: dense layers' GEMMs by cuBLASLt\n"
  "                                              (nvcc builds; default kernels, model.cu's own)\n"
  "       aec report [--target cpu|cuda] [--batch N] [--profile FILE] [--diff OLD_MANIFEST] [--out DIR] FILE\n"
  "                                              write DIR/index.html (default runs/<model>/report): the\n"
  "                                              spec, its kernels, memory and time on one page\n"
  "       aec --help | --version\n";

typedef struct {
  bool json, no_compile, mpi, emulate;
  const char *stage, *out, *path, *target, *profile, *diff, *precision, *gemm;
  int batch, ranks;
} options;

/* --precision's value as an ae_precision; -1 (message printed) when it is none of them. */
static int parse_precision(const char *cmd, const char *s) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, ae_precision_names[i])) return i;
  fprintf(stderr, "aec %s: --precision takes fp32, tf32 or bf16, not '%s'\n", cmd, s);
  return -1;
}

/* --gemm's value as an ae_gemm_lib; -1 (message printed) when it is none of them. */
static int parse_gemm(const char *cmd, const char *s) {
  for (int i = 0; i < 2; i++)
    if (!strcmp(s, ae_gemm_names[i])) return i;
  fprintf(stderr, "aec %s: --gemm takes kernels or cublaslt, not '%s'\n", cmd, s);
  return -1;
}

/* A whole number from 1 to 65536 for --batch or --ranks; 0 (message printed) otherwise. */
static int parse_count(const char *cmd, const char *flag, const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || !*s || v < 1 || v > 65536) { fprintf(stderr, "aec %s: %s needs a whole number from 1 to 65536, not '%s'\n", cmd, flag, s); return 0; }
  return (int)v;
}

static int parse_options(const char *cmd, int argc, char **argv, options *o) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (!strcmp(a, "--json")) o->json = true;
    else if (!strcmp(a, "--no-compile")) o->no_compile = true;
    else if (!strcmp(a, "--stage") && has_value) o->stage = argv[++i];
    else if (!strcmp(a, "--out") && has_value) o->out = argv[++i];
    else if (!strcmp(a, "--target") && has_value && (!strcmp(cmd, "report") || !strcmp(cmd, "build"))) o->target = argv[++i];
    else if (!strcmp(a, "--emulate") && !strcmp(cmd, "build")) o->emulate = true;
    else if (!strcmp(a, "--precision") && has_value && !strcmp(cmd, "build")) o->precision = argv[++i];
    else if (!strcmp(a, "--gemm") && has_value && !strcmp(cmd, "build")) o->gemm = argv[++i];
    else if (!strcmp(a, "--profile") && has_value && !strcmp(cmd, "report")) o->profile = argv[++i];
    else if (!strcmp(a, "--diff") && has_value && !strcmp(cmd, "report")) o->diff = argv[++i];
    else if (!strcmp(a, "--mpi") && !strcmp(cmd, "build")) o->mpi = true;
    else if ((!strcmp(a, "--batch") || (!strcmp(a, "--ranks") && !strcmp(cmd, "build"))) && has_value) {
      int v = parse_count(cmd, a, argv[++i]);
      if (!v) return 2;
      *(a[2] == 'b' ? &o->batch : &o->ranks) = v;
    } else if (a[0] == '-') {
      fprintf(stderr, "aec %s: unknown option '%s'%s\n%s", cmd, a, has_value ? "" : " (or its value is missing)", usage);
      return 2;
    } else if (o->path) { fprintf(stderr, "aec %s: one spec at a time ('%s' and '%s' given)\n", cmd, o->path, a); return 2; }
    else o->path = a;
  }
  if (!o->path) { fprintf(stderr, "aec %s: which spec?\n%s", cmd, usage); return 2; }
  bool cuda = o->target && !strcmp(o->target, "cuda");
  if (o->emulate && !cuda) { fprintf(stderr, "aec %s: --emulate is for --target cuda\n", cmd); return 2; }
  if (o->precision && parse_precision(cmd, o->precision) < 0) return 2;
  if (o->precision && !cuda && strcmp(o->precision, "fp32")) {
    fprintf(stderr, "aec %s: --precision %s is for --target cuda; the CPU target computes in fp32 only\n", cmd, o->precision);
    return 2;
  }
  if (o->gemm && parse_gemm(cmd, o->gemm) < 0) return 2;
  if (o->gemm && !cuda && strcmp(o->gemm, "kernels")) {
    fprintf(stderr, "aec %s: --gemm %s is for --target cuda; the CPU target has its own GEMMs\n", cmd, o->gemm);
    return 2;
  }
  if (o->mpi && cuda) { fprintf(stderr, "aec %s: data-parallel training (--mpi) is not in the CUDA target yet\n", cmd); return 2; }
  if (o->ranks && !o->mpi) { fprintf(stderr, "aec %s: --ranks is for data-parallel trainers: give --mpi too\n", cmd); return 2; }
  return 0;
}

static int cmd_check(int argc, char **argv) {
  int failed = 0;
  for (int i = 0; i < argc; i++) {
    ae_arena *a = ae_arena_new();
    ae_diag d = { .out = stderr };
    ae_model *m = ae_load_spec(a, &d, argv[i]);
    if (m && m->opt.accumulate > 1)   /* what a batch means changes: say so where the spec is checked */
      printf("%s: ok (model %s, effective batch %d = batch %d x accumulate %d)\n", argv[i], m->name,
             m->batch * m->opt.accumulate, m->batch, m->opt.accumulate);
    else if (m) printf("%s: ok (model %s)\n", argv[i], m->name);
    else failed = 1;
    ae_arena_free(a);
  }
  return failed;
}

/* The folder that holds bin/aec: runtime/ and build/libaert.a are found from it. */
static char *aec_root(void) {
  static char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  return dirname(dirname(buf));
}

/* The trainer links build/libaert.a, or with --mpi build/libaert_mpi.a (`make mpi`: the same
 * runtime with the MPI side of dist.c) through mpicc. */
static int compile_trainer(const char *dir, const char *name, bool mpi) {
  const char *root = aec_root();
  if (mkdir("bin", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "aec: cannot create 'bin': %s\n", strerror(errno)); return 1; }
  const char *cc = mpi ? (getenv("MPICC") ? getenv("MPICC") : "mpicc") : getenv("CC") ? getenv("CC") : "cc";
  const char *lib = mpi ? "libaert_mpi.a" : "libaert.a";
  char cmd[4 * PATH_MAX], lib_path[PATH_MAX];
  snprintf(lib_path, sizeof lib_path, "%s/build/%s", root, lib);
  if (mpi && access(lib_path, R_OK) != 0) {
    fprintf(stderr, "aec: '%s' is missing: 'make mpi' builds the runtime for MPI (it needs mpicc, Debian's libopenmpi-dev)\n", lib_path);
    return 1;
  }
  snprintf(cmd, sizeof cmd, "%s -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror -I'%s/runtime' -I'%s'"
           " -o 'bin/%s' '%s/model.c' '%s' -lopenblas -ltiff -lpng -lz -lpthread -lm",
           cc, root, dir, name, dir, lib_path);
  printf("%s\n", cmd);
  fflush(stdout);
  int rc = system(cmd);
  if (rc != 0) { fprintf(stderr, "aec: compiling the trainer for '%s' failed\n", name); return 1; }
  printf("built bin/%s\n", name);
  return 0;
}

/* Runs cmd, its output kept in *out (malloc'd); the exit status as system's. */
static int run_captured(const char *cmd, char **out) {
  size_t len = 0;
  FILE *mem = open_memstream(out, &len), *p = popen(cmd, "r");
  if (!mem || !p) { if (mem) fclose(mem); if (p) pclose(p); return -1; }
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) fwrite(chunk, 1, n, mem);
  int rc = pclose(p);
  fclose(mem);
  return rc;
}

/* The CUDA trainer: model.c without its main (the descriptor and the CPU decoder), then
 * model.cu by nvcc for sm_90 (ptxas's registers per kernel go into manifest.json), or with
 * --emulate as host C++ under runtime/cuda_emu.h. */
static int compile_cuda_trainer(ae_arena *a, const char *dir, const char *name, bool emulate, bool cublaslt) {
  const char *root = aec_root();
  if (mkdir("bin", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "aec: cannot create 'bin': %s\n", strerror(errno)); return 1; }
  const char *cc = getenv("CC") ? getenv("CC") : "cc", *cxx = getenv("CXX") ? getenv("CXX") : "g++";
  const char *nvcc = getenv("NVCC") ? getenv("NVCC") : "/usr/local/cuda/bin/nvcc";
  const char *libs = "-lopenblas -ltiff -lpng -lz -lpthread -lm";
  char cmd[6 * PATH_MAX], obj[64];   /* model.c's object lives beside the trainer, not in the generated folder */
  snprintf(obj, sizeof obj, "bin/%.40s-cuda.o", name);
  snprintf(cmd, sizeof cmd, "%s -O3 -march=native -fopenmp -std=gnu11 -Wall -Wextra -Werror -DAEC_NO_MAIN -I'%s/runtime' -I'%s'"
           " -c -o '%s' '%s/model.c'", cc, root, dir, obj, dir);
  printf("%s\n", cmd);
  fflush(stdout);
  if (system(cmd) != 0) { fprintf(stderr, "aec: compiling model.c for the CUDA trainer of '%s' failed\n", name); return 1; }
  if (emulate)
    snprintf(cmd, sizeof cmd, "%s -std=gnu++20 -O2 -march=native -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter -I'%s/runtime' -I'%s'"
             " -o 'bin/%s-cuda-emu' -x c++ '%s/model.cu' -x none '%s' '%s/build/libaert.a' %s",
             cxx, root, dir, name, dir, obj, root, libs);
  else
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O3 -arch=sm_90 -Xptxas -v -I'%s/runtime' -I'%s' -o 'bin/%s-cuda' '%s/model.cu' '%s'"
             " '%s/build/libaert.a' -Xcompiler -fopenmp %s -lgomp%s 2>&1", nvcc, root, dir, name, dir, obj, root, libs, cublaslt ? " -lcublasLt" : "");
  printf("%s\n", cmd);
  fflush(stdout);
  char *log = NULL;
  int rc = emulate ? system(cmd) : run_captured(cmd, &log);
  remove(obj);
  if (rc != 0) {
    if (log) fputs(log, stderr);
    free(log);
    fprintf(stderr, "aec: compiling model.cu for '%s' failed\n", name);
    return 1;
  }
  bool ok = ae_cuda_manifest(a, dir, log, "not measured: model.cu was compiled as host C++ (--emulate), not by nvcc");
  free(log);
  if (!ok) return 1;
  printf("built bin/%s-cuda%s\n", name, emulate ? "-emu" : "");
  return 0;
}

static const char *spec_hash(ae_arena *a, const ae_model *m) {
  return ae_sprintf(a, "%016llx", (unsigned long long)ae_hash_text(m->src->text, m->src->len));
}

static int write_report(ae_arena *a, ae_diag *d, ae_program *p, const options *o) {
  ae_report_opts ro = {o->target && !strcmp(o->target, "cuda") ? "cuda" : "cpu", o->profile, o->diff, o->out ? o->out : ae_sprintf(a, "runs/%s/report", p->m->name)};
  return ae_report(a, d, p, spec_hash(a, p->m), &ro) ? 0 : 1;
}

static int cmd_backend(const char *cmd, int argc, char **argv) {
  options o = {0};
  int rc = parse_options(cmd, argc, argv, &o);
  if (rc) return rc;
  bool cuda = o.target && !strcmp(o.target, "cuda");
  if (cuda && !strcmp(cmd, "report") && o.profile) {
    fprintf(stderr, "aec report: --profile times the CPU trainer's kernels; the CUDA target's page has no profile yet (drop --target cuda or --profile)\n");
    return 2;
  }
  if (o.target && strcmp(o.target, "cpu") && !cuda) { fprintf(stderr, "aec %s: unknown target '%s' (cpu or cuda)\n", cmd, o.target); return 2; }
  if (!strcmp(cmd, "dump") && !o.stage) { fprintf(stderr, "aec dump: --stage ir|grad|fused|steps|mem is needed\n"); return 2; }
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = stderr };
  ae_model *m = ae_load_spec(a, &d, o.path);
  if (!m) { ae_arena_free(a); return 1; }
  rc = 0;
  if (!strcmp(cmd, "summary")) {
    if (o.batch) m->batch = o.batch;
    if (o.json) ae_print_summary_json(stdout, m);
    else ae_print_summary(stdout, m);
  } else {
    int ranks = o.ranks ? o.ranks : 1, global = o.batch ? o.batch : m->batch;
    if (global % ranks) {
      fprintf(stderr, "aec %s: the batch %d does not split into %d ranks; give --batch a multiple of %d\n", cmd, global, ranks, ranks);
      ae_arena_free(a);
      return 2;
    }
    if (!strcmp(cmd, "report")) m->batch = global;   /* the page's summary is at the batch its kernels run */
    ae_program *p = ae_lower(a, m, global / ranks);
    p->ranks = ranks;
    p->precision = o.precision ? (ae_precision)parse_precision(cmd, o.precision) : AE_FP32;
    p->gemm = o.gemm ? (ae_gemm_lib)parse_gemm(cmd, o.gemm) : AE_GEMM_KERNELS;
    if (!strcmp(cmd, "report")) rc = cuda && !ae_cuda_supported(&d, p) ? 1 : write_report(a, &d, p, &o);
    else if (!strcmp(cmd, "dump")) {
      if (!ae_dump(stdout, a, p, o.stage)) { fprintf(stderr, "aec dump: unknown stage '%s' (ir, grad, fused, steps or mem)\n", o.stage); rc = 2; }
    } else {
      const char *dir = o.out ? o.out : ae_sprintf(a, "generated/%s", m->name);
      if (!o.out && mkdir("generated", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "aec: cannot create 'generated': %s\n", strerror(errno)); rc = 1; }
      if (cuda && !ae_cuda_supported(&d, p)) rc = 1;
      if (!rc && !ae_emit_c(a, p, dir, spec_hash(a, m))) rc = 1;
      if (!rc && cuda && !ae_emit_cuda(a, p, dir, spec_hash(a, m))) rc = 1;
      if (!rc && cuda && !ae_cuda_manifest(a, dir, NULL, "not measured: model.cu was not compiled (--no-compile)")) rc = 1;
      if (!rc) printf("generated %s/\n", dir);
      if (!rc && o.mpi && ranks > 1) printf("each of %d ranks takes %d of the global batch of %d\n", ranks, global / ranks, global);
      if (!rc && !o.no_compile) rc = cuda ? compile_cuda_trainer(a, dir, m->name, o.emulate, p->gemm == AE_GEMM_CUBLASLT) : compile_trainer(dir, m->name, o.mpi);
    }
  }
  ae_arena_free(a);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) { fputs(usage, stderr); return 2; }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage, stdout); return 0; }
  if (!strcmp(cmd, "--version")) { puts("aec 0.1"); return 0; }
  if (!strcmp(cmd, "check")) {
    if (argc < 3) { fprintf(stderr, "aec check: which spec?\n%s", usage); return 2; }
    return cmd_check(argc - 2, argv + 2);
  }
  if (!strcmp(cmd, "summary") || !strcmp(cmd, "dump") || !strcmp(cmd, "build") || !strcmp(cmd, "report"))
    return cmd_backend(cmd, argc - 2, argv + 2);
  fprintf(stderr, "aec: unknown command '%s'\n%s", cmd, usage);
  return 2;
}
