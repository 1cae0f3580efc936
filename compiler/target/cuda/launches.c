/* launches.c - the CUDA target's launch table, in manifest.json: for every kernel model.cu
 * launches, its grid, block, static and dynamic shared memory, which the compiler chose, and
 * its registers, which only ptxas knows (nvcc -Xptxas -v, when aec build compiles the
 * trainer with nvcc). The table is read back from the model.cu just written, so that it is
 * what the launches say, not a second account of them. */
#include "aec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AECD_THREADS 256   /* runtime/aert_cuda_kernels.h: the threads of every block */

typedef struct {
  const char *name;
  long grid[3], block[3], dynamic_shared, static_shared;
  int registers;   /* -1: not measured */
} launch;

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[65536];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *nb = realloc(buf, cap);
      if (!nb) { free(buf); fclose(f); return NULL; }
      buf = nb;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  bool bad = ferror(f) != 0;
  fclose(f);
  if (bad || !buf) { free(buf); return NULL; }
  buf[len] = 0;
  return buf;
}

static const char *skip_space(const char *s) {
  while (*s == ' ' || *s == '\n') s++;
  return s;
}

/* A launch dimension: dim3(x[, y[, z]]), AECD_THREADS or a number; the text after it, or
 * NULL when it is none of these (a size the compiler did not write as a constant). */
static const char *read_dim(const char *s, long d[3]) {
  d[0] = d[1] = d[2] = 1;
  s = skip_space(s);
  if (!strncmp(s, "AECD_THREADS", 12)) { d[0] = AECD_THREADS; return s + 12; }
  if (strncmp(s, "dim3(", 5)) {
    char *end;
    d[0] = strtol(s, &end, 10);
    return end == s ? NULL : end;
  }
  s += 5;
  for (int i = 0; i < 3; i++) {
    char *end;
    d[i] = strtol(s, &end, 10);
    if (end == s) return NULL;
    s = skip_space(end);
    if (*s == ')') return s + 1;
    if (*s++ != ',') return NULL;
  }
  return NULL;
}

/* The bytes of one __shared__ array that model.cu declares itself, "TYPE name[N]...;" with
 * N a number or AECD_THREADS; 0 for a declaration it does not write. */
static long own_shared(const char *decl) {
  static const struct { const char *type; long size; } types[] = {
      {"long long ", 8}, {"double ", 8}, {"float ", 4}, {"int ", 4}, {"unsigned ", 4}};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    size_t n = strlen(types[i].type);
    if (strncmp(decl, types[i].type, n)) continue;
    const char *d = strchr(decl + n, '['), *semi = strchr(decl + n, ';');
    if (!d || !semi || d > semi) return 0;
    long bytes = types[i].size;
    while (d && d < semi && *d == '[') {   /* each dimension */
      d = skip_space(d + 1);
      if (!strncmp(d, "AECD_THREADS", 12)) bytes *= AECD_THREADS;
      else bytes *= strtol(d, NULL, 10);
      d = strchr(d, ']');
      if (d) d++;
    }
    return bytes;
  }
  return 0;
}

/* The shared tiles of aecd_gemm<M, N, K, BM, BN> in model.cu's precision
 * (runtime/aert_cuda_kernels.h): fp32 As[32][BM] and Bs[32][BN]; with tensor cores the
 * union aecd_mma_tiles, the operand slices (rows padded by 32 bytes) or the fp32 sums (rows
 * padded by 8 floats), whichever is larger, in 32-byte units. */
static long gemm_shared(long bm, long bn, int precision) {
  if (precision == 0) return 32 * (bm + bn) * (long)sizeof(float);
  long op = precision == 1 ? 4 : 2, pad = 32 / op;
  long in = op * (bm * (32 + pad) + 32 * (bn + pad)), sums = 4 * bm * (bn + 8);
  long bytes = in > sums ? in : sums;
  return (bytes + 31) / 32 * 32;
}

/* The static shared memory of a kernel: the __shared__ arrays it declares and those of the
 * device functions of runtime/aert_cuda_kernels.h its body calls. precision: model.cu's
 * AECD_PRECISION (0 fp32, 1 tf32, 2 bf16). tests/cuda/target.sh checks each against
 * ptxas's count. */
static long static_shared_of(const char *body, size_t len, int precision) {
  static const struct { const char *call; long bytes; } fixed[] = {
      {"aecd_col_sum<", 8 * 32 * sizeof(double)},           /* part[8][32] */
      {"aecd_block_sum<", AECD_THREADS * sizeof(double)},    /* part[AECD_THREADS] */
      {"aecd_block_total(", AECD_THREADS * sizeof(double)},  /* part[AECD_THREADS] */
  };
  char *text = strndup(body, len);
  long bytes = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
    if (strstr(text, fixed[i].call)) bytes += fixed[i].bytes;
  for (const char *d = strstr(text, "__shared__ "); d; d = strstr(d + 1, "__shared__ ")) bytes += own_shared(d + 11);
  const char *g = strstr(text, "aecd_gemm<");   /* the 4th and 5th arguments: BM, BN */
  if (g) {
    long arg[5] = {0};
    const char *s = g + 10;
    for (int i = 0; i < 5 && s; i++) {
      char *end;
      arg[i] = strtol(s, &end, 10);
      s = i < 4 ? strchr(end, ',') : NULL;
      if (s) s++;
    }
    bytes += gemm_shared(arg[3], arg[4], precision);
  }
  free(text);
  return bytes;
}

/* The body of kernel name in model.cu: from its definition to its closing brace. */
static long kernel_static_shared(const char *cu, const char *name, int precision) {
  size_t n = strlen(name);
  for (const char *s = strstr(cu, "__global__ "); s; s = strstr(s + 1, "__global__ ")) {
    const char *open = strchr(s, '(');
    if (!open || (size_t)(open - s) < n || strncmp(open - n, name, n) || (open[-n - 1] != ' ')) continue;
    const char *end = strstr(open, "\n}\n");
    return static_shared_of(open, end ? (size_t)(end - open) : strlen(open), precision);
  }
  return 0;
}

/* Every distinct launch (kernel, grid, block, dynamic shared memory) in model.cu's text. */
static launch *read_launches(ae_arena *a, const char *cu, int *count) {
  int cap = 64, n = 0, precision = strstr(cu, "#define AECD_PRECISION AECD_TF32") ? 1 : strstr(cu, "#define AECD_PRECISION AECD_BF16") ? 2 : 0;
  launch *l = ae_alloc(a, sizeof *l * (size_t)cap);
  for (const char *s = strstr(cu, "AEC_LAUNCH("); s; s = strstr(s + 1, "AEC_LAUNCH(")) {
    if (s > cu && (s[-1] == '_' || (s[-1] >= 'A' && s[-1] <= 'Z'))) continue;   /* a longer name */
    const char *p = s + 11, *comma = strchr(p, ',');
    if (!comma || comma - p > 200 || strchr(p, '\n') < comma) continue;   /* the macro's own definition, a comment */
    launch x = {ae_strndup(a, p, (size_t)(comma - p)), {0}, {0}, 0, 0, -1};
    const char *t = read_dim(comma + 1, x.grid);
    if (t && *t == ',') t = read_dim(t + 1, x.block);
    if (!t || *t != ',') continue;
    char *end;
    x.dynamic_shared = strtol(t + 1, &end, 10);
    if (end == t + 1) continue;
    bool seen = false;
    for (int i = 0; i < n && !seen; i++)
      seen = !strcmp(l[i].name, x.name) && !memcmp(l[i].grid, x.grid, sizeof x.grid) && !memcmp(l[i].block, x.block, sizeof x.block) &&
             l[i].dynamic_shared == x.dynamic_shared;
    if (seen) continue;
    if (n == cap) {
      launch *more = ae_alloc(a, sizeof *l * (size_t)(cap *= 2));
      memcpy(more, l, sizeof *l * (size_t)n);
      l = more;
    }
    x.static_shared = kernel_static_shared(cu, x.name, precision);
    l[n++] = x;
  }
  *count = n;
  return l;
}

/* ptxas -v's registers per entry function: "Compiling entry function '_Z<len><name>...'"
 * then "Used N registers". */
static void read_registers(const char *log, launch *l, int n) {
  for (const char *s = strstr(log, "entry function '_Z"); s; s = strstr(s + 1, "entry function '_Z")) {
    char *end;
    long len = strtol(s + 18, &end, 10);
    const char *next = strstr(s + 1, "entry function '"), *used = strstr(s, "Used ");
    if (len <= 0 || !used || (next && used > next)) continue;
    int regs = atoi(used + 5);
    for (int i = 0; i < n; i++)
      if ((long)strlen(l[i].name) == len && !strncmp(l[i].name, end, (size_t)len)) l[i].registers = regs;
  }
}

bool ae_cuda_manifest(ae_arena *a, const char *dir, const char *ptxas_log, const char *unmeasured) {
  char *cu_path = ae_sprintf(a, "%s/model.cu", dir), *path = ae_sprintf(a, "%s/manifest.json", dir);
  char *cu = read_text(cu_path), *json = read_text(path);
  if (!cu || !json) {
    fprintf(stderr, "aec: cannot read '%s': %s\n", cu ? path : cu_path, strerror(errno));
    free(cu), free(json);
    return false;
  }
  int n;
  launch *l = read_launches(a, cu, &n);
  if (ptxas_log) read_registers(ptxas_log, l, n);
  char *cut = strstr(json, ",\n  \"cuda\": {");   /* an earlier build's table */
  if (!cut) cut = strrchr(json, '}');
  if (!cut) {
    fprintf(stderr, "aec: '%s' is not the manifest aec writes\n", path);
    free(cu), free(json);
    return false;
  }
  *cut = 0;
  FILE *f = fopen(path, "w");
  if (!f) { fprintf(stderr, "aec: cannot write '%s': %s\n", path, strerror(errno)); free(cu), free(json); return false; }
  while (cut > json && (cut[-1] == '\n' || cut[-1] == ' ')) *--cut = 0;
  fprintf(f, "%s,\n  \"cuda\": {\n    \"registers\": \"%s\",\n    \"launches\": [\n", json,
          ptxas_log ? "ptxas -v (nvcc -arch=sm_90)" : unmeasured);
  for (int i = 0; i < n; i++) {
    fprintf(f, "      {\"kernel\": \"%s\", \"grid\": [%ld, %ld, %ld], \"block\": [%ld, %ld, %ld], \"static_shared\": %ld, \"dynamic_shared\": %ld, ",
            l[i].name, l[i].grid[0], l[i].grid[1], l[i].grid[2], l[i].block[0], l[i].block[1], l[i].block[2], l[i].static_shared,
            l[i].dynamic_shared);
    if (l[i].registers >= 0) fprintf(f, "\"registers\": %d}", l[i].registers);
    else fprintf(f, "\"registers\": null}");
    fprintf(f, "%s\n", i + 1 < n ? "," : "");
  }
  fprintf(f, "    ]\n  }\n}\n");
  bool ok = !ferror(f);
  ok = fclose(f) == 0 && ok;
  if (!ok) fprintf(stderr, "aec: error writing '%s'\n", path);
  free(cu), free(json);
  return ok;
}
