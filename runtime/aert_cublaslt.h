/* aert_cublaslt.h - dense layers' forward GEMM through cuBLASLt (aec build --target cuda
 * --gemm cublaslt), for model.cu under nvcc only: under the emulator model.cu runs its own
 * GEMM kernel instead. y[B][out] = act(x[B][in] w[in][out] + b) is, column-major, the
 * out x B matrix w^T x^T: A = w (out x in, leading dimension out), B = x (in x B, leading
 * dimension in), D = y (out x B, leading dimension out), the bias added per row of D by
 * the epilogue (BIAS, RELU_BIAS, RELU or DEFAULT; other activations run after it in a kernel
 * of model.cu). Each layer's plan is made at its first call: the descriptors, and one
 * algorithm from the heuristic with no workspace and no split-K reduction
 * (CUBLASLT_REDUCTION_SCHEME_NONE), checked on the algorithm chosen, so every call sums in
 * the same order: the results are deterministic. The compute type follows the precision:
 * fp32, tf32 (CUBLAS_COMPUTE_32F_FAST_TF32) or bf16 (CUBLAS_COMPUTE_32F_FAST_16BF). */
#ifndef AERT_CUBLASLT_H
#define AERT_CUBLASLT_H

#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>

#define AECD_LT_CHECK(call)                                                                            \
  do {                                                                                                 \
    cublasStatus_t st_ = (call);                                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                                \
      fprintf(stderr, "%s:%d: cuBLASLt error: %s (%s)\n", __FILE__, __LINE__, cublasLtGetStatusString(st_), #call); \
      exit(1);                                                                                         \
    }                                                                                                  \
  } while (0)

typedef struct {
  int out, batch, in;          /* D is out x batch, the depth in */
  cublasLtEpilogue_t epilogue;
  const char *name;            /* the layer, for messages */
  int ready;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, d;
  cublasLtMatmulAlgo_t algo;
} aecd_lt_plan;

static cublasLtHandle_t aecd_lt_handle(void) {
  static cublasLtHandle_t h;
  if (!h) AECD_LT_CHECK(cublasLtCreate(&h));
  return h;
}

static cublasComputeType_t aecd_lt_compute(void) {
#if AECD_PRECISION == AECD_TF32
  return CUBLAS_COMPUTE_32F_FAST_TF32;
#elif AECD_PRECISION == AECD_BF16
  return CUBLAS_COMPUTE_32F_FAST_16BF;
#else
  return CUBLAS_COMPUTE_32F;
#endif
}

/* The descriptors and the one algorithm of a plan; stops with the layer's name when the
 * heuristic offers none without a reduction. */
static void aecd_lt_prepare(aecd_lt_plan *p, const float *bias) {
  AECD_LT_CHECK(cublasLtMatmulDescCreate(&p->desc, aecd_lt_compute(), CUDA_R_32F));
  AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p->epilogue, sizeof p->epilogue));
  AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_32F, p->out, p->in, p->out));
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_32F, p->in, p->batch, p->in));
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, p->out, p->batch, p->out));
  cublasLtMatmulPreference_t pref;
  AECD_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t workspace = 0;
  uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE;
  AECD_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
  AECD_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof schemes));
  cublasLtMatmulHeuristicResult_t found;
  int n = 0;
  AECD_LT_CHECK(cublasLtMatmulAlgoGetHeuristic(aecd_lt_handle(), p->desc, p->a, p->b, p->d, p->d, pref, 1, &found, &n));
  AECD_LT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  uint32_t scheme = 0;
  size_t got = 0;
  if (n > 0) AECD_LT_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&found.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof scheme, &got));
  if (n < 1 || scheme != CUBLASLT_REDUCTION_SCHEME_NONE || found.workspaceSize) {
    fprintf(stderr, "%s: cuBLASLt offers no algorithm without workspace and split-K reduction for %d x %d x %d; build without --gemm cublaslt\n",
            p->name, p->out, p->batch, p->in);
    exit(1);
  }
  p->algo = found.algo;
  p->ready = 1;
}

/* y = epilogue(w^T x^T + b) of one dense layer on the default stream. */
static void aecd_lt_dense(aecd_lt_plan *p, const float *x, const float *w, const float *bias, float *y) {
  if (!p->ready) aecd_lt_prepare(p, bias);
  else AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));   /* a device opened again */
  const float one = 1.0f, zero = 0.0f;
  AECD_LT_CHECK(cublasLtMatmul(aecd_lt_handle(), p->desc, &one, w, p->a, x, p->b, &zero, y, p->d, y, p->d, &p->algo, NULL, 0, 0));
}

#endif
