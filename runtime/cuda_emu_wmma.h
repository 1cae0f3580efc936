/* cuda_emu_wmma.h - the emulator's tensor cores: the part of nvcuda::wmma (mma.h) and of
 * cuda_bf16.h that the tensor-core GEMM of aert_cuda_kernels.h uses, for a .cu file
 * compiled as host C++ under cuda_emu.h. Under nvcc the file includes <mma.h> and
 * <cuda_bf16.h> instead.
 *
 * Shapes: m16n16k8 with precision::tf32 operands and m16n16k16 with __nv_bfloat16, both
 * with float accumulators. Every call (fill_fragment, load_matrix_sync, mma_sync,
 * store_matrix_sync) is warp-collective: it passes cuda_emu.h's warp barrier, so a call
 * that part of a warp skips, or lanes of one warp at different calls, stop the program
 * (exit status 3) with the kernel, block, thread and line, as other warp operations do.
 * Loads and stores check what the hardware requires: a 32-byte aligned pointer, and a
 * leading dimension that is a multiple of 16 bytes.
 *
 * Fragments: a matrix_a or matrix_b fragment holds its whole tile in every lane (a load
 * copies it); an accumulator holds 8 of its 256 values per lane: lane l row l / 2,
 * columns 8 (l % 2) to 8 (l % 2) + 7. The real layouts differ and are unspecified; only
 * code that touches x[] element by element could tell, and the GEMM does not.
 *
 * Accumulation order (the emulated one; a GPU's differs and results are compared with
 * tolerances): mma_sync computes each output d = c + a[r][0] b[0][c] + ... + a[r][K-1] b[K-1][c]
 * in ascending k, rounding to float after each addition. Each product is exact in float
 * (a tf32 operand has an 11-bit significand, bf16 one of 8), so only the additions round.
 * A tf32 operand keeps only its tf32 bits (the low 13 bits of the float are dropped, as the
 * hardware reads them); the GEMM rounds them with __float_to_tf32 before, so this changes
 * nothing there. Conversions: __float_to_tf32 rounds to nearest with ties away from zero
 * (PTX cvt.rna.tf32.f32); __float2bfloat16 to nearest with ties to even. */
#ifndef AEC_CUDA_EMU_WMMA_H
#define AEC_CUDA_EMU_WMMA_H

#include "cuda_emu.h"

/* ---- bfloat16: the high 16 bits of a float ---------------------------------------------- */
inline unsigned short aecu_bf16_bits(float f) {
  uint32_t u = aecu::from_bits<uint32_t>(aecu::bits(f));
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)(u >> 16 | 0x40u);   /* NaN stays a quiet NaN */
  u += 0x7fffu + (u >> 16 & 1u);   /* to nearest, ties to even */
  return (unsigned short)(u >> 16);
}

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(aecu_bf16_bits(f)) {}
  operator float() const { return aecu::from_bits<float>((uint64_t)((uint32_t)__x << 16)); }
};
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };

/* A float rounded to tf32 (10 explicit significand bits): to nearest, ties away from zero. */
inline float __float_to_tf32(float f) {
  uint32_t u = aecu::from_bits<uint32_t>(aecu::bits(f));
  if ((u & 0x7f800000u) == 0x7f800000u) return f;   /* infinities and NaN as they are */
  return aecu::from_bits<float>((uint64_t)((u + 0x1000u) & 0xffffe000u));
}

template <class T> struct storage { typedef T type; };
template <> struct storage<precision::tf32> { typedef float type; };

template <class Use, int M, int N, int K, class T, class Layout = void> class fragment {
  static_assert((M == 16 && N == 16 && K == 8 && (std::is_same_v<T, precision::tf32> || std::is_same_v<Use, accumulator>)) ||
                    (M == 16 && N == 16 && K == 16 && (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<Use, accumulator>)),
                "the emulator has m16n16k8 with tf32 and m16n16k16 with bf16 operands");
  static_assert(!std::is_same_v<Use, accumulator> || std::is_same_v<T, float>, "the emulator's accumulators are float");

 public:
  static constexpr bool whole = !std::is_same_v<Use, accumulator>;   /* every lane holds the whole tile */
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M, cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = whole ? rows * cols : rows * cols / 32;
  typedef typename storage<T>::type storage_element_type;
  typedef T element_type;
  storage_element_type x[num_elements];
};

}  // namespace wmma
}  // namespace nvcuda

namespace aecu {

enum class wmma_call : uint64_t { fill = 1, load, mma, store };

/* Every lane of the warp must make the same call here: the lanes already waiting at a wmma
 * call are checked against this one, and the warp barrier (warp_op::wmma) reports lanes that
 * wait elsewhere or have exited. */
inline void wmma_collective(wmma_call call, const char *file, int line) {
  block &b = cur_block();
  fiber *f = b.cur;
  int w0 = f->linear / 32 * 32, n = b.n;
  f->file = file, f->line = line;
  for (int l = w0; l < std::min(n, w0 + 32); l++) {
    const fiber &o = b.fibers[l];
    if (o.wait == wait_kind::warp_op && o.op == warp_op::wmma && o.value != (uint64_t)call)
      block_fail(b, *f, "the lanes of one warp are at different wmma calls");
  }
  warp(warp_op::wmma, 0xffffffffu, (uint64_t)call, 0, 32, file, line);
}

/* What load_matrix_sync and store_matrix_sync require of their pointer and leading dimension. */
inline void wmma_check_ptr(const void *p, unsigned ldm, size_t elem, const char *what) {
  if ((uintptr_t)p % 32) block_fail(*here, *here->cur, what);
  if (ldm * elem % 16) block_fail(*here, *here->cur, "a wmma leading dimension that is not a multiple of 16 bytes");
}

/* Lane l's element e of an accumulator: its row and column in the 16 x 16 tile. */
inline int acc_row(int e) { return ((int)lane() * 8 + e) / 16; }
inline int acc_col(int e) { return ((int)lane() * 8 + e) % 16; }

inline float operand(float v, bool tf32) { return tf32 ? from_bits<float>(from_bits<uint32_t>(bits(v)) & 0xffffe000u) : v; }
inline float operand(__nv_bfloat16 v, bool) { return (float)v; }

}  // namespace aecu

namespace nvcuda {
namespace wmma {

template <class Use, int M, int N, int K, class T, class L, class V>
void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  aecu::wmma_collective(aecu::wmma_call::fill, file, line);
  for (int e = 0; e < f.num_elements; e++) f.x[e] = (typename fragment<Use, M, N, K, T, L>::storage_element_type)v;
}

/* An operand tile from memory (row_major: row r at p + r ldm). */
template <class Use, int M, int N, int K, class T, class L, class E>
void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const E *p, unsigned ldm, const char *file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  static_assert(fragment<Use, M, N, K, T, L>::whole, "an accumulator is loaded with a layout_t");
  static_assert(std::is_same_v<E, typename fragment<Use, M, N, K, T, L>::storage_element_type>, "a load of another element type");
  aecu::wmma_collective(aecu::wmma_call::load, file, line);
  aecu::wmma_check_ptr(p, ldm, sizeof(E), "load_matrix_sync from a pointer that is not 32-byte aligned");
  constexpr int R = fragment<Use, M, N, K, T, L>::rows, C = fragment<Use, M, N, K, T, L>::cols;
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) f.x[r * C + c] = std::is_same_v<L, row_major> ? p[(long)r * ldm + c] : p[(long)c * ldm + r];
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm, layout_t layout,
                      const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  aecu::wmma_collective(aecu::wmma_call::load, file, line);
  aecu::wmma_check_ptr(p, ldm, sizeof(float), "load_matrix_sync from a pointer that is not 32-byte aligned");
  for (int e = 0; e < f.num_elements; e++) {
    int r = aecu::acc_row(e), c = aecu::acc_col(e);
    f.x[e] = layout == mem_row_major ? p[(long)r * ldm + c] : p[(long)c * ldm + r];
  }
}

template <int M, int N, int K>
void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t layout,
                       const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  aecu::wmma_collective(aecu::wmma_call::store, file, line);
  aecu::wmma_check_ptr(p, ldm, sizeof(float), "store_matrix_sync to a pointer that is not 32-byte aligned");
  for (int e = 0; e < f.num_elements; e++) {
    int r = aecu::acc_row(e), c = aecu::acc_col(e);
    (layout == mem_row_major ? p[(long)r * ldm + c] : p[(long)c * ldm + r]) = f.x[e];
  }
}

/* d = a b + c, each lane its own 8 outputs, in the order of the head comment. */
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
              const fragment<matrix_b, M, N, K, T, LB> &b, const fragment<accumulator, M, N, K, float> &c,
              const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  aecu::wmma_collective(aecu::wmma_call::mma, file, line);
  constexpr bool tf32 = std::is_same_v<T, precision::tf32>;
  for (int e = 0; e < d.num_elements; e++) {
    int r = aecu::acc_row(e), col = aecu::acc_col(e);
    float s = c.x[e];
    for (int k = 0; k < K; k++) {
      s += aecu::operand(a.x[r * K + k], tf32) * aecu::operand(b.x[k * N + col], tf32);   /* the product is exact */
    }
    d.x[e] = s;
  }
}

}  // namespace wmma
}  // namespace nvcuda

#endif
