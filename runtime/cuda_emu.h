/* cuda_emu.h - runs CUDA kernels on the CPU, so that the CUDA target's model.cu is proven
 * without a GPU (aert_cuda.h includes it when a .cu file is compiled as host C++).
 *
 * A launch runs its blocks over OpenMP threads; the threads of a block run as fibers
 * (a switch of its own on x86-64, ucontext elsewhere) on one OS thread, each until it
 * reaches a barrier or ends, then the next.
 * __shared__ variables are static thread_local: one copy per OS thread, which runs one
 * block at a time, so one copy per block. Between two barriers the fibers run in the
 * order set by AECU_ORDER (forward, reverse or random with AECU_SEED), so a barrier left
 * out changes the result. Warp operations (__syncwarp, __shfl_*_sync, __ballot_sync,
 * __any_sync, __all_sync) are barriers of the warp's lanes whose results the scheduler
 * computes once every lane of the mask has arrived.
 *
 * Checked, each reported with the kernel, block and thread, then the process stops
 * (exit status 3): a __syncthreads that only part of a block reaches, a warp operation
 * whose lanes exited or wait elsewhere (deadlock), launch dimensions and dynamic shared
 * memory over the device's limits, a host pointer passed to a kernel, a cudaMemcpy whose
 * pointers do not match its direction, a thread that overflows its stack. Device memory comes from cudaMalloc filled with
 * 0xFF bytes (NaN as floats), so a read of memory never written shows. Streams run in
 * order on the host; a stream under capture records launches and copies into a graph
 * that cudaGraphLaunch replays (a captured copy must use pinned host memory, and nothing
 * may run on the legacy default stream or synchronize the stream during a capture). Build with -fopenmp and -std=c++20; under ASan the fiber
 * switches are announced to the sanitizer. */
#ifndef AEC_CUDA_EMU_H
#define AEC_CUDA_EMU_H

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define AECU_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __constant__

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
static constexpr int warpSize = 32;

typedef enum {
  cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101, cudaErrorIllegalState = 401, cudaErrorStreamCaptureUnsupported = 900,
} cudaError_t;
typedef enum {
  cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
} cudaMemcpyKind;
typedef enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 } cudaStreamCaptureMode;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
#define cudaStreamNonBlocking 0x01

namespace aecu {

/* ---- the device's limits (an H100/H200, compute capability 9.0) ------------------- */
constexpr unsigned max_threads = 1024, max_block_z = 64, max_grid_yz = 65535;
constexpr size_t default_dynamic_shared = 48 * 1024, max_dynamic_shared = 227 * 1024;

[[noreturn]] inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
inline void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("cuda-emu: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::fflush(stderr);
  std::_Exit(3);
}

/* ---- device memory: every allocation registered ------------------------------------- */
struct registry {
  std::mutex mu;
  std::map<uintptr_t, size_t> device;   /* start -> bytes */
  std::map<const void *, size_t> dynamic_shared;   /* kernel -> opted-in bytes */
  std::map<uintptr_t, size_t> pinned;   /* cudaMallocHost: start -> bytes */
  int capturing = 0;                    /* streams under capture now */
  long graph_launches = 0, graph_steps = 0;   /* replayed, for AECU_REPORT */
  cudaError_t last = cudaSuccess;
};
inline registry &reg() { static registry r; return r; }

inline bool on_device(const void *p) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.device.upper_bound((uintptr_t)p);
  if (it == r.device.begin()) return false;
  --it;
  return (uintptr_t)p < it->first + std::max<size_t>(it->second, 1);
}

/* Whether [p, p + n) lies in one allocation of cudaMallocHost (pinned host memory). */
inline bool pinned(const void *p, size_t n) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.pinned.upper_bound((uintptr_t)p);
  if (it == r.pinned.begin()) return false;
  --it;
  return (uintptr_t)p + n <= it->first + it->second;
}

/* ---- fibers and the block scheduler --------------------------------------------------- */
/* ---- fibers: stacks with guard pages and a context switch of their own --------------------
 * On x86-64 a switch pushes the six callee-saved registers on the old stack and pops them
 * from the new one (aecu_switch below): no system call, where ucontext's swapcontext sets
 * the signal mask on every switch. The SSE and x87 control words are not switched (saving
 * them took most of a switch's time): every fiber of an OS thread shares its rounding
 * mode, which no kernel changes. Elsewhere, or with -DAECU_UCONTEXT, ucontext. */
#if defined(__x86_64__) && !defined(AECU_UCONTEXT)
#define AECU_OWN_SWITCH 1
/* aecu_switch(from, to): stores the current stack pointer in *from and resumes the
 * context whose stack pointer is to. aecu_fiber_start is where a new fiber's first switch
 * returns to: it calls the function in r13 (from the frame fiber_stack lays out), which
 * never returns. Weak, so that every translation unit may carry the header. */
asm(R"(
  .pushsection .text.aecu_switch,"axG",@progbits,aecu_switch,comdat
  .weak aecu_switch
  .hidden aecu_switch
  .type aecu_switch, @function
aecu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size aecu_switch, .-aecu_switch
  .weak aecu_fiber_start
  .hidden aecu_fiber_start
  .type aecu_fiber_start, @function
aecu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  callq *%r13
  ud2
  .cfi_endproc
  .size aecu_fiber_start, .-aecu_fiber_start
  .popsection
)");
extern "C" void aecu_switch(void **from, void *to);
extern "C" void aecu_fiber_start();
#endif

enum class wait_kind { running, block_barrier, warp_op, done };
enum class warp_op { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, wmma /* cuda_emu_wmma.h */ };

struct context {
#ifdef AECU_OWN_SWITCH
  void *sp = nullptr;
#else
  ucontext_t uc;
#endif
};

struct fiber {
  context ctx;
  uint3 thread;
  int linear;
  wait_kind wait = wait_kind::running;
  warp_op op = warp_op::sync;
  unsigned mask = 0;
  int arg = 0, width = 32;
  uint64_t value = 0, result = 0;
  const char *file = "";   /* where it waits, for a deadlock report */
  int line = 0;
  char *stack = nullptr;   /* its lowest address; the guard page lies below */
  void *fake_stack = nullptr;
};

struct block {
  const char *kernel;
  uint3 index;
  dim3 grid, dim;
  fiber *fibers = nullptr;   /* the OS thread's, reused from block to block */
  int n = 0;
  fiber *cur = nullptr;
  bool in_fiber = false;   /* cur runs (not the scheduler) */
  context sched;
  const std::function<void()> *body = nullptr;
  unsigned char *dynamic = nullptr;   /* dynamic shared memory */
  void *sched_fake = nullptr;
  const void *sched_bottom = nullptr;
  size_t sched_size = 0;
};

inline thread_local block *here = nullptr;
inline size_t stack_bytes() {
  static size_t b = [] {
    const char *s = std::getenv("AECU_STACK_KB");
    size_t kb = s ? (size_t)std::atol(s) : 64, page = (size_t)sysconf(_SC_PAGESIZE);
    return std::max((kb * 1024 + page - 1) / page * page, 4 * page);
  }();
  return b;
}

/* What one OS thread keeps from block to block: the fibers, their stacks in one mapping
 * (each above a PROT_NONE guard page, so an overflow faults instead of writing over the
 * next stack) and the dynamic shared memory. */
struct worker {
  char *map = nullptr;
  size_t map_bytes = 0;
  int stacks = 0;
  std::vector<fiber> fibers;
  std::vector<unsigned char> dynamic;
  std::vector<int> run;
};

inline worker *&current_worker() { static thread_local worker *w = nullptr; return w; }

/* A fault in a guard page, or (on x86-64) with the stack pointer below the running fiber's
 * stack, as a frame larger than the guard page leaves it: the thread overflowed its stack.
 * Named, then exit status 3. */
inline void on_segv(int sig, siginfo_t *si, void *uc) {
  worker *w = current_worker();
  block *b = here;
  char *a = static_cast<char *>(si->si_addr);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  bool overflow = w && a >= w->map && a < w->map + w->map_bytes && (size_t)(a - w->map) % (page + stack_bytes()) < page;
#if defined(__x86_64__) && defined(REG_RSP)
  if (b && b->in_fiber) {
    char *sp = reinterpret_cast<char *>(static_cast<ucontext_t *>(uc)->uc_mcontext.gregs[REG_RSP]);
    overflow = overflow || sp < b->cur->stack;
  }
#else
  (void)uc;
#endif
  if (overflow) {
    static const char msg[] = "cuda-emu: a kernel thread overflowed its stack (AECU_STACK_KB sets its size)\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    if (b && b->in_fiber) {
      char line[256];
      int k = std::snprintf(line, sizeof line, "cuda-emu: kernel %s, block (%u,%u,%u), thread (%u,%u,%u)\n", b->kernel, b->index.x,
                            b->index.y, b->index.z, b->cur->thread.x, b->cur->thread.y, b->cur->thread.z);
      if (k > 0 && write(2, line, (size_t)std::min(k, (int)sizeof line - 1)) < 0) {}
    }
    _exit(3);
  }
  signal(sig, SIG_DFL);   /* not ours: fault again, as without the handler */
}

/* The handler, once, unless the program (or a sanitizer) has its own; and for each OS
 * thread a stack of its own to run it on, since the faulting stack is full. */
inline void watch_guard_pages() {
  static std::once_flag once;
  static bool ours = false;
  std::call_once(once, [] {
    struct sigaction old;
    if (sigaction(SIGSEGV, nullptr, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = on_segv;
      sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
      sigemptyset(&sa.sa_mask);
      ours = sigaction(SIGSEGV, &sa, nullptr) == 0;
    }
  });
  if (!ours) return;
  stack_t ss, old;
  if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return;
  ss.ss_size = 64 * 1024;
  ss.ss_sp = std::malloc(ss.ss_size);   /* the thread's for as long as it lives */
  ss.ss_flags = 0;
  if (ss.ss_sp) sigaltstack(&ss, nullptr);
}

/* The OS thread's worker, with stacks for at least n fibers. */
inline worker &worker_for(int n, const char *kernel) {
  worker *&w = current_worker();
  if (!w) {
    w = new worker;   /* one per OS thread, kept for the process's life */
    watch_guard_pages();
  }
  if (w->stacks < n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), slot = page + stack_bytes();
    if (w->map) munmap(w->map, w->map_bytes);   /* no fiber lives between blocks */
    w->map_bytes = slot * (size_t)n;
    void *m = mmap(nullptr, w->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) fail("kernel %s: no memory for the stacks of %d threads", kernel, n);
    w->map = static_cast<char *>(m);
    for (int i = 0; i < n; i++)
      if (mprotect(w->map + slot * (size_t)i, page, PROT_NONE))
        fail("kernel %s: mprotect of a stack's guard page failed (%s): vm.max_map_count too low for %d threads on this many OS threads?",
             kernel, std::strerror(errno), n);
    w->stacks = n;
    w->fibers.resize((size_t)n);
    for (int i = 0; i < n; i++) w->fibers[(size_t)i].stack = w->map + slot * (size_t)i + page;
  }
  return *w;
}

inline void asan_start(void **save, const void *bottom, size_t size) {
#ifdef AECU_ASAN
  __sanitizer_start_switch_fiber(save, bottom, size);
#else
  (void)save, (void)bottom, (void)size;
#endif
}
inline void asan_finish(void *save, const void **bottom, size_t *size) {
#ifdef AECU_ASAN
  __sanitizer_finish_switch_fiber(save, bottom, size);
#else
  (void)save, (void)bottom, (void)size;
#endif
}

inline void switch_to(context &from, context &to) {
#ifdef AECU_OWN_SWITCH
  aecu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
}

/* A fiber runs the block's body once, then returns to the scheduler for good. */
inline void fiber_main() {
  block *b = here;
  asan_finish(nullptr, &b->sched_bottom, &b->sched_size);
  (*b->body)();
  b->cur->wait = wait_kind::done;
  asan_start(nullptr, b->sched_bottom, b->sched_size);   /* this fiber ends */
  switch_to(b->cur->ctx, b->sched);
  fail("a finished fiber was resumed");
}

/* Lays out f's stack so that the first switch to it starts fiber_main. Each stack's top
 * is offset by a different multiple of 64 bytes: tops at one offset in their pages would
 * share the few cache sets of that offset. */
inline void fiber_stack(fiber &f, int i) {
  size_t sb = stack_bytes();
#ifdef AECU_ASAN
  __asan_unpoison_memory_region(f.stack, sb);   /* frames of the last block, never unwound */
#endif
#ifdef AECU_OWN_SWITCH
  uintptr_t top = ((uintptr_t)(f.stack + sb) - (uintptr_t)(i % 64) * 64) & ~(uintptr_t)15;
  void **ret = reinterpret_cast<void **>(top - 8);   /* 16-aligned once popped, as a call needs */
  ret[0] = reinterpret_cast<void *>(aecu_fiber_start);
  for (int r = 1; r <= 6; r++) ret[-r] = nullptr;   /* rbp, rbx, r12, r13, r14, r15 */
  ret[-4] = reinterpret_cast<void *>(fiber_main);    /* r13: what aecu_fiber_start calls */
  f.ctx.sp = ret - 6;
#else
  (void)i;
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack;
  f.ctx.uc.uc_stack.ss_size = sb;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, fiber_main, 0);
#endif
}

/* From a fiber: wait at a barrier until the scheduler lets it go on. */
inline void yield(wait_kind w, const char *file, int line) {
  block *b = here;
  fiber *f = b->cur;
  f->wait = w;
  f->file = file;
  f->line = line;
  asan_start(&f->fake_stack, b->sched_bottom, b->sched_size);
  switch_to(f->ctx, b->sched);
  asan_finish(f->fake_stack, &b->sched_bottom, &b->sched_size);
}

enum class order { forward, reverse, random };
struct settings {
  order ord = order::forward;
  uint64_t seed = 1;
  settings() {
    const char *o = std::getenv("AECU_ORDER"), *s = std::getenv("AECU_SEED");
    if (o && !std::strcmp(o, "reverse")) ord = order::reverse;
    else if (o && !std::strcmp(o, "random")) ord = order::random;
    else if (o && std::strcmp(o, "forward")) fail("AECU_ORDER is '%s'; it takes forward, reverse or random", o);
    if (s) seed = std::strtoull(s, nullptr, 10);
  }
};
inline settings &config() { static settings s; return s; }

inline const char *wait_name(const fiber &f) {
  switch (f.wait) {
  case wait_kind::running: return "running";
  case wait_kind::block_barrier: return "at __syncthreads";
  case wait_kind::warp_op: return "at a warp operation";
  default: return "exited";
  }
}

[[noreturn]] inline void block_fail(const block &b, const fiber &f, const char *what) {
  fail("kernel %s, block (%u,%u,%u), thread (%u,%u,%u) %s at %s:%d: %s", b.kernel, b.index.x, b.index.y, b.index.z,
       f.thread.x, f.thread.y, f.thread.z, wait_name(f), f.file, f.line, what);
}

/* Releases every warp operation whose lanes have all arrived; true when one was. */
inline bool release_warps(block &b) {
  bool progress = false;
  int n = b.n;
  for (int w0 = 0; w0 < n; w0 += 32) {
    fiber *lead = nullptr;
    for (int l = w0; l < std::min(n, w0 + 32) && !lead; l++)
      if (b.fibers[l].wait == wait_kind::warp_op) lead = &b.fibers[l];
    if (!lead) continue;
    unsigned mask = lead->mask;
    bool ready = true;
    for (int l = 0; l < 32 && w0 + l < n; l++) {
      if (!(mask >> l & 1u)) continue;
      fiber &f = b.fibers[w0 + l];
      if (f.wait == wait_kind::done) block_fail(b, *lead, "a lane of its mask has exited");
      if (f.wait != wait_kind::warp_op) { ready = false; continue; }
      if (f.mask != mask || f.op != lead->op) block_fail(b, f, "the lanes of one mask wait at different warp operations");
    }
    if (!ready) continue;
    uint64_t ballot = 0;
    for (int l = 0; l < 32 && w0 + l < n; l++)
      if ((mask >> l & 1u) && b.fibers[w0 + l].value) ballot |= 1ull << l;
    for (int l = 0; l < 32 && w0 + l < n; l++) {
      if (!(mask >> l & 1u)) continue;
      fiber &f = b.fibers[w0 + l];
      int seg = l / f.width * f.width, src = l;
      switch (f.op) {
      case warp_op::shfl_idx: src = seg + ((f.arg % f.width) + f.width) % f.width; break;
      case warp_op::shfl_up: src = l - seg >= f.arg ? l - f.arg : l; break;
      case warp_op::shfl_down: src = l - seg + f.arg < f.width ? l + f.arg : l; break;
      case warp_op::shfl_xor: src = (l ^ f.arg) / f.width == l / f.width ? l ^ f.arg : l; break;
      default: break;
      }
      if (f.op == warp_op::ballot) f.result = ballot;
      else if (f.op != warp_op::sync) {
        if (!(mask >> src & 1u) || w0 + src >= n) block_fail(b, f, "a shuffle reads a lane outside its mask");
        f.result = b.fibers[w0 + src].value;
      }
      f.wait = wait_kind::running;
    }
    progress = true;
  }
  return progress;
}

/* Runs the fibers that may run, in the configured order, each until it waits or ends. */
inline void run_round(block &b, std::vector<int> &run, std::mt19937_64 &rng) {
  size_t sb = stack_bytes();
  run.clear();
  for (int i = 0; i < b.n; i++)
    if (b.fibers[i].wait == wait_kind::running) run.push_back(i);
  if (config().ord == order::reverse) std::reverse(run.begin(), run.end());
  if (config().ord == order::random) std::shuffle(run.begin(), run.end(), rng);
  for (int i : run) {
    b.cur = &b.fibers[i];
    asan_start(&b.sched_fake, b.cur->stack, sb);
    b.in_fiber = true;
    switch_to(b.sched, b.cur->ctx);
    b.in_fiber = false;
    asan_finish(b.sched_fake, nullptr, nullptr);
  }
}

inline void run_block(block &b, std::vector<int> &run, std::mt19937_64 &rng) {
  int n = b.n;
  for (int i = 0; i < n; i++) fiber_stack(b.fibers[i], i);
  for (;;) {
    run_round(b, run, rng);
    if (release_warps(b)) continue;
    int done = 0, at_block = 0;
    const fiber *warp_waiter = nullptr, *exited = nullptr, *barrier = nullptr;
    for (int i = 0; i < n; i++) {
      const fiber &f = b.fibers[i];
      if (f.wait == wait_kind::done) { done++; exited = &f; }
      else if (f.wait == wait_kind::block_barrier) { at_block++; barrier = &f; }
      else if (f.wait == wait_kind::warp_op) warp_waiter = &f;
    }
    if (done == n) return;
    if (warp_waiter) block_fail(b, *warp_waiter, "deadlock: lanes of its mask wait at __syncthreads or never arrive");
    if (done > 0) {
      char what[160];
      std::snprintf(what, sizeof what, "__syncthreads reached by %d of the block's %d threads; thread (%u,%u,%u) has exited", at_block,
                    n, exited->thread.x, exited->thread.y, exited->thread.z);
      block_fail(b, *barrier, what);
    }
    for (int i = 0; i < n; i++) b.fibers[i].wait = wait_kind::running;   /* every thread is at the barrier */
  }
}

/* ---- streams, events, graphs ---------------------------------------------------------- */
struct graph { std::vector<std::function<void()>> steps; };
struct stream {
  graph *capture = nullptr;
};
inline stream &default_stream() { static stream s; return s; }

/* Runs an operation now, or records it when its stream is being captured. Work on the
 * legacy default stream while another stream is captured is an error, as in CUDA's global
 * capture mode (it would invalidate the capture). */
inline void submit(stream *s, std::function<void()> op) {
  stream &st = s ? *s : default_stream();
  if (!s && reg().capturing)
    fail("an operation on the legacy default stream (a cudaMemcpy, a launch on stream 0) while a stream is captured");
  if (st.capture) st.capture->steps.push_back(std::move(op));
  else op();
}
inline bool capturing(const stream *s) { return s && s->capture; }

inline void *dynamic_shared() {
  if (!here) fail("dynamic shared memory used outside a kernel");
  return here->dynamic;
}

/* Every pointer argument must point into device memory. */
template <typename T> void check_arg(const char *kernel, const char *file, int line, int i, const T &a) {
  if constexpr (std::is_pointer_v<std::decay_t<T>>) {
    const void *p = a;
    if (p && !on_device(p))
      fail("%s:%d: kernel %s: argument %d (%p) is a host pointer; a kernel reads only memory from cudaMalloc", file, line, kernel, i, p);
  }
}

inline void check_launch(const char *kernel, const void *fn, const char *file, int line, dim3 grid, dim3 blk, size_t shared) {
  unsigned long threads = (unsigned long)blk.x * blk.y * blk.z;
  if (threads == 0 || threads > max_threads || blk.x > max_threads || blk.y > max_threads || blk.z > max_block_z)
    fail("%s:%d: kernel %s: a block of %ux%ux%u threads (at most %u in all, z at most %u)", file, line, kernel, blk.x, blk.y, blk.z,
         max_threads, max_block_z);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > max_grid_yz || grid.z > max_grid_yz)
    fail("%s:%d: kernel %s: a grid of %ux%ux%u blocks (y and z at most %u)", file, line, kernel, grid.x, grid.y, grid.z, max_grid_yz);
  size_t limit = default_dynamic_shared;
  {
    registry &r = reg();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.dynamic_shared.find(fn);
    if (it != r.dynamic_shared.end()) limit = it->second;
  }
  if (shared > limit)
    fail("%s:%d: kernel %s: %zu bytes of dynamic shared memory, over the %zu allowed%s", file, line, kernel, shared, limit,
         limit == default_dynamic_shared ? " without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)" : "");
}

template <typename... P, typename... A>
void launch(const char *kernel, const char *file, int line, void (*fn)(P...), dim3 grid, dim3 blk, size_t shared, stream *s,
            A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "a kernel launched with the wrong number of arguments");
  if (here) fail("%s:%d: kernel %s launched from inside kernel %s (dynamic parallelism is not emulated)", file, line, kernel, here->kernel);
  check_launch(kernel, (const void *)fn, file, line, grid, blk, shared);
  int i = 0;
  (check_arg(kernel, file, line, i++, args), ...);
  std::tuple<std::decay_t<P>...> bound(std::forward<A>(args)...);
  submit(s, [=] {
    long blocks = (long)grid.x * grid.y * grid.z;
    uint64_t seed = config().seed;
    int n = (int)(blk.x * blk.y * blk.z);
    const std::function<void()> body = [&] { std::apply(fn, bound); };
#pragma omp parallel if (blocks > 1)
    {
      worker &w = worker_for(n, kernel);   /* this OS thread's fibers, stacks and shared memory */
      block b;
      b.kernel = kernel;
      b.grid = grid;
      b.dim = blk;
      b.n = n;
      b.fibers = w.fibers.data();
      b.body = &body;
      w.dynamic.resize(std::max<size_t>(shared, 1));
      b.dynamic = w.dynamic.data();
      std::mt19937_64 rng;
      for (int t = 0; t < n; t++) {
        b.fibers[t].thread = {(unsigned)(t % blk.x), (unsigned)(t / blk.x % blk.y), (unsigned)(t / (blk.x * blk.y))};
        b.fibers[t].linear = t;
      }
#pragma omp for schedule(dynamic)
      for (long bi = 0; bi < blocks; bi++) {
        b.index = {(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y), (unsigned)(bi / ((long)grid.x * grid.y))};
        std::memset(b.dynamic, 0xFF, std::max<size_t>(shared, 1));   /* never-written shared memory reads as NaN */
        for (int t = 0; t < n; t++) b.fibers[t].wait = wait_kind::running;
        if (config().ord == order::random) rng.seed(seed * 1000003u + (uint64_t)bi);   /* only then: seeding costs */
        here = &b;
        run_block(b, w.run, rng);
        here = nullptr;
      }
    }
  });
}

/* ---- what a kernel sees ---------------------------------------------------------------- */
inline block &cur_block() {
  if (!here) fail("a kernel built-in (threadIdx, __syncthreads, ...) used outside a kernel");
  return *here;
}
inline unsigned lane() { return (unsigned)cur_block().cur->linear % 32u; }

inline uint64_t warp(warp_op op, unsigned mask, uint64_t value, int arg, int width, const char *file, int line) {
  fiber *f = cur_block().cur;
  if (!(mask >> lane() & 1u)) block_fail(*here, *f, "a warp operation whose mask leaves out the calling lane");
  if (width <= 0 || width > 32 || (width & (width - 1))) block_fail(*here, *f, "a shuffle width that is not a power of 2 up to 32");
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  yield(wait_kind::warp_op, file, line);
  return f->result;
}

template <typename T> uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "a shuffled value of at most 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof v);
  return u;
}
template <typename T> T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

}  // namespace aecu

#define threadIdx (aecu::cur_block().cur->thread)
#define blockIdx (aecu::cur_block().index)
#define blockDim (aecu::cur_block().dim)
#define gridDim (aecu::cur_block().grid)

#define __syncthreads() aecu::yield(aecu::wait_kind::block_barrier, __FILE__, __LINE__)
#define __syncwarp(...) aecu::warp(aecu::warp_op::sync, aecu_mask_or_all(__VA_ARGS__), 0, 0, 32, __FILE__, __LINE__)
inline unsigned aecu_mask_or_all(unsigned m = 0xffffffffu) { return m; }
#define __shfl_sync(m, v, src, ...) aecu_shfl(aecu::warp_op::shfl_idx, m, v, src, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(m, v, d, ...) aecu_shfl(aecu::warp_op::shfl_up, m, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(m, v, d, ...) aecu_shfl(aecu::warp_op::shfl_down, m, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(m, v, x, ...) aecu_shfl(aecu::warp_op::shfl_xor, m, v, x, __FILE__, __LINE__, ##__VA_ARGS__)
#define __ballot_sync(m, p) ((unsigned)aecu::warp(aecu::warp_op::ballot, m, (p) != 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(m, p) (__ballot_sync(m, p) != 0u)
#define __all_sync(m, p) (__ballot_sync(m, p) == (unsigned)(m))

template <typename T>
T aecu_shfl(aecu::warp_op op, unsigned mask, T v, int arg, const char *file, int line, int width = 32) {
  return aecu::from_bits<T>(aecu::warp(op, mask, aecu::bits(v), arg, width, file, line));
}

inline unsigned __activemask() {
  aecu::block &b = aecu::cur_block();
  unsigned m = 0, w0 = (unsigned)b.cur->linear / 32u * 32u;
  for (unsigned l = 0; l < 32 && (int)(w0 + l) < b.n; l++)
    if (b.fibers[w0 + l].wait != aecu::wait_kind::done) m |= 1u << l;
  return m;
}

/* Atomics: blocks run on several OS threads at once. */
template <typename T> T atomicAdd(T *p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <typename T> T atomicExch(T *p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <typename T> T atomicCAS(T *p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;
}
template <typename T> T atomicMax(T *p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {}
  return old;
}
template <typename T> T atomicMin(T *p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (v < old && !a.compare_exchange_weak(old, v)) {}
  return old;
}

template <typename T> inline T __ldg(const T *p) { return *p; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int __float_as_int(float f) { return aecu::from_bits<int>(aecu::bits(f)); }
inline float __int_as_float(int i) { return aecu::from_bits<float>(aecu::bits(i)); }

/* ---- the runtime API subset the trainers use --------------------------------------------- */
typedef aecu::stream *cudaStream_t;
typedef struct aecu_event { std::chrono::steady_clock::time_point t; } *cudaEvent_t;
typedef aecu::graph *cudaGraph_t;
typedef aecu::graph *cudaGraphExec_t;

inline cudaError_t aecu_set(cudaError_t e) {
  if (e != cudaSuccess) aecu::reg().last = e;
  return e;
}
inline const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
  case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
  default: return "unknown error";
  }
}
inline cudaError_t cudaGetLastError() { cudaError_t e = aecu::reg().last; aecu::reg().last = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return aecu::reg().last; }
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return aecu_set(d == 0 ? cudaSuccess : cudaErrorInvalidDevice); }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

inline cudaError_t cudaMalloc(void **p, size_t bytes) {
  void *m = nullptr;   /* exactly the size asked, so that ASan sees a read past its end */
  if (posix_memalign(&m, 256, bytes ? bytes : 1)) return aecu_set(cudaErrorMemoryAllocation);
  std::memset(m, 0xFF, bytes);   /* never-written memory reads as NaN */
  aecu::registry &r = aecu::reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.device[(uintptr_t)m] = bytes;
  *p = m;
  return cudaSuccess;
}
template <typename T> cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc(reinterpret_cast<void **>(p), bytes); }
inline cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  aecu::registry &r = aecu::reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.device.erase((uintptr_t)p)) aecu::fail("cudaFree(%p): not a pointer cudaMalloc returned", p);
  }
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void **p, size_t bytes) {
  if (!(*p = std::malloc(bytes ? bytes : 1))) return aecu_set(cudaErrorMemoryAllocation);
  aecu::registry &r = aecu::reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.pinned[(uintptr_t)*p] = bytes ? bytes : 1;
  return cudaSuccess;
}
template <typename T> cudaError_t cudaMallocHost(T **p, size_t bytes) { return cudaMallocHost(reinterpret_cast<void **>(p), bytes); }
inline cudaError_t cudaFreeHost(void *p) {
  if (!p) return cudaSuccess;
  aecu::registry &r = aecu::reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.pinned.erase((uintptr_t)p)) aecu::fail("cudaFreeHost(%p): not a pointer cudaMallocHost returned", p);
  }
  std::free(p);
  return cudaSuccess;
}

inline void aecu_check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  static const char *const names[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice", "Default"};
  bool dd = aecu::on_device(dst), sd = aecu::on_device(src);
  bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToHost && !dd && !sd) ||
            (kind == cudaMemcpyHostToDevice && dd && !sd) || (kind == cudaMemcpyDeviceToHost && !dd && sd) ||
            (kind == cudaMemcpyDeviceToDevice && dd && sd);
  if (!ok)
    aecu::fail("cudaMemcpy%s of %zu bytes from %s memory to %s memory", names[kind], n, sd ? "device" : "host", dd ? "device" : "host");
  if (n && (dd && !aecu::on_device(static_cast<char *>(dst) + n - 1)))
    aecu::fail("cudaMemcpy of %zu bytes runs past the end of its device allocation", n);
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = nullptr) {
  aecu_check_copy(dst, src, n, kind);
  /* A graph's copy node reads and writes its host memory when the graph runs: it must be
   * pinned, as CUDA requires of a captured copy. */
  const void *host = !aecu::on_device(dst) ? dst : !aecu::on_device(src) ? src : nullptr;
  if (aecu::capturing(s) && host && !aecu::pinned(host, n))
    aecu::fail("a cudaMemcpyAsync of %zu bytes captured into a graph reads or writes pageable host memory %p; "
               "a graph's copy needs memory from cudaMallocHost", n, host);
  aecu::submit(s, [=] { std::memmove(dst, src, n); });
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) { return cudaMemcpyAsync(dst, src, n, kind, nullptr); }
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s = nullptr) {
  if (!aecu::on_device(p)) aecu::fail("cudaMemset of %zu bytes on host memory", n);
  aecu::submit(s, [=] { std::memset(p, v, n); });
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void *p, int v, size_t n) { return cudaMemsetAsync(p, v, n, nullptr); }

inline cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = new aecu::stream; return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (aecu::capturing(s)) aecu::fail("cudaStreamDestroy of a stream under capture");
  delete s;
  return cudaSuccess;
}
/* Synchronizing a stream under capture is illegal in CUDA (the capture is invalidated). */
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (aecu::capturing(s)) aecu::fail("cudaStreamSynchronize of a stream under capture");
  return cudaSuccess;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s) return aecu_set(cudaErrorStreamCaptureUnsupported);   /* as CUDA: not the legacy default stream */
  if (s->capture) return aecu_set(cudaErrorIllegalState);
  s->capture = new aecu::graph;
  aecu::reg().capturing++;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
  if (!s || !s->capture) return aecu_set(cudaErrorIllegalState);
  *g = s->capture;
  s->capture = nullptr;
  aecu::reg().capturing--;
  return cudaSuccess;
}
typedef enum { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 } cudaStreamCaptureStatus;
inline cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
  *st = aecu::capturing(s) ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long = 0) {
  if (!g) return aecu_set(cudaErrorInvalidValue);
  *e = new aecu::graph(*g);
  return cudaSuccess;
}
inline void aecu_report_graphs() {
  aecu::registry &r = aecu::reg();
  std::fprintf(stderr, "cuda_emu: %ld graph launches, %ld operations replayed\n", r.graph_launches, r.graph_steps);
}
/* Replays the graph's operations in their captured order; AECU_REPORT=1 counts the replays
 * and prints them at exit. */
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!e) return aecu_set(cudaErrorInvalidValue);
  aecu::registry &r = aecu::reg();
  if (r.graph_launches++ == 0 && std::getenv("AECU_REPORT") && std::atoi(std::getenv("AECU_REPORT")))
    std::atexit(aecu_report_graphs);
  r.graph_steps += (long)e->steps.size();
  for (auto &step : e->steps) aecu::submit(s, step);
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }

#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
inline cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new aecu_event; return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr) {
  if (!e) aecu::fail("cudaEventRecord on a null event (never created)");
  aecu::submit(s, [=] { e->t = std::chrono::steady_clock::now(); });
  return cudaSuccess;
}
/* Streams run in order on the host: an event recorded has happened, so waits return at once. */
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) aecu::fail("cudaEventSynchronize on a null event (never created)");
  return cudaSuccess;
}
inline cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) aecu::fail("cudaEventQuery on a null event (never created)");
  return cudaSuccess;
}
/* The wait is already met; it is recorded in a capture as CUDA records the dependency. */
inline cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0) {
  if (!e) aecu::fail("cudaStreamWaitEvent on a null event (never created)");
  if (flags) return aecu_set(cudaErrorInvalidValue);
  aecu::submit(s, [] {});
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}

template <typename... P> cudaError_t cudaFuncSetAttribute(void (*fn)(P...), cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > aecu::max_dynamic_shared)
    return aecu_set(cudaErrorInvalidValue);
  aecu::registry &r = aecu::reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.dynamic_shared[(const void *)fn] = (size_t)value;
  return cudaSuccess;
}

#endif
