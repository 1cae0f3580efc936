/* aert_cublaslt.h - dense layers' GEMMs through cuBLASLt (aec build --target cuda --gemm
 * cublaslt), for model.cu under nvcc only: under the emulator model.cu runs its own GEMM
 * kernels instead. The forward y = act(x w + b) with the bias added by the epilogue (BIAS,
 * RELU_BIAS, RELU or DEFAULT; other activations run after it in a kernel of model.cu); dW and
 * dX accumulate (beta 1) into the gradients. Each step's plan is made at its first call: the descriptors, and one
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

/* One GEMM of a dense layer in cuBLASLt's column-major terms: D (m x n, leading dimension m)
 * = op(A) op(B) (+ D when beta is 1), A stored m x k (or k x m when transposed), B k x n
 * (or n x k). The row-major tensors of model.c read column-major are their transposes:
 *   forward  y^T  (out x B)  = w^T (out x in, as stored)   x^T (in x B, as stored), epilogue
 *   dW       dW^T (out x in) += dy^T (out x B, as stored)   (x^T)^T: x^T stored in x B, transposed
 *   dX       dx^T (in x B)  += (w^T)^T: w^T stored out x in, transposed   dy^T (out x B, as stored) */
typedef struct {
  int m, n, k;
  cublasOperation_t ta, tb;
  cublasLtEpilogue_t epilogue;
  float beta;                  /* 0: D is written; 1: D += (the gradients) */
  const char *name;            /* the step, for messages */
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

/* The descriptors and the one algorithm of a plan; stops with the step's name when the
 * heuristic offers none without workspace and split-K reduction. */
static void aecd_lt_prepare(aecd_lt_plan *p, const float *bias) {
  AECD_LT_CHECK(cublasLtMatmulDescCreate(&p->desc, aecd_lt_compute(), CUDA_R_32F));
  AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &p->ta, sizeof p->ta));
  AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &p->tb, sizeof p->tb));
  AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p->epilogue, sizeof p->epilogue));
  if (bias) AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  bool ta = p->ta == CUBLAS_OP_T, tb = p->tb == CUBLAS_OP_T;
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_32F, ta ? p->k : p->m, ta ? p->m : p->k, ta ? p->k : p->m));
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_32F, tb ? p->n : p->k, tb ? p->k : p->n, tb ? p->n : p->k));
  AECD_LT_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, p->m, p->n, p->m));
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
            p->name, p->m, p->n, p->k);
    exit(1);
  }
  p->algo = found.algo;
  p->ready = 1;
}

/* D = op(A) op(B) (+ D), with the plan's epilogue and bias, on stream s (model.cu's compute
 * stream). The plan is made outside any graph capture: model.cu runs a phase's first call
 * with plain launches under --gemm cublaslt and captures it from the second. */
static void aecd_lt_gemm(aecd_lt_plan *p, const float *a, const float *b, const float *bias, float *d, cudaStream_t s) {
  if (!p->ready) aecd_lt_prepare(p, bias);
  else if (bias) AECD_LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));   /* a device opened again */
  const float one = 1.0f;
  AECD_LT_CHECK(cublasLtMatmul(aecd_lt_handle(), p->desc, &one, a, p->a, b, p->b, &p->beta, d, p->d, d, p->d, &p->algo, NULL, 0, s));
}

#endif
