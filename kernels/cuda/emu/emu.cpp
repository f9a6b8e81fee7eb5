// The CUDA emulation scheduler: blocks over OS threads, CUDA threads as Boost.Context fibers, barrier rules checked.
#include "kernels/cuda/emu/emu.h"

#include <atomic>
#include <boost/context/fiber.hpp>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "nash/core/error.h"

namespace nash {
namespace emu {

namespace bctx = boost::context;

namespace {

constexpr std::size_t kStaticSmem = 48 * 1024;  // the static shared-memory limit of a CUDA block
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kStackSize = 512 * 1024;
#else
constexpr std::size_t kStackSize = 128 * 1024;
#endif

std::atomic<int64_t> g_launches{0}, g_blocks{0}, g_switches{0};

// AddressSanitizer must be told about every switch between the OS thread's stack and a fiber's, or it mistakes
// the fiber stacks for a corrupted one (and cannot check them). Boost.Context annotates only its ucontext backend,
// so the switches below do it themselves; without ASan these are no-ops.
#if defined(__SANITIZE_ADDRESS__)
#define NASH_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NASH_EMU_ASAN 1
#endif
#endif
#ifdef NASH_EMU_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, std::size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, std::size_t* size_old);
void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
}
#endif
struct AsanStack {
  const void* bottom = nullptr;
  std::size_t size = 0;
};
// Before switching to the stack `to`; save is null when the current fiber ends (its fake stack is dropped).
inline void asan_leave(void** save, const AsanStack& to) {
#ifdef NASH_EMU_ASAN
  __sanitizer_start_switch_fiber(save, to.bottom, to.size);
#else
  (void)save, (void)to;
#endif
}
// After arriving; `from`, when given, receives the stack just left.
inline void asan_arrive(void* save, AsanStack* from) {
#ifdef NASH_EMU_ASAN
  __sanitizer_finish_switch_fiber(save, from ? &from->bottom : nullptr, from ? &from->size : nullptr);
#else
  (void)save, (void)from;
#endif
}
thread_local AsanStack t_thread_stack;   // the OS thread's stack, learnt when a fiber first starts
thread_local AsanStack t_last_allocated;  // the stack PooledStack handed out last

// Fiber stacks are reused across blocks of a launch and across launches on the same OS thread.
struct StackPool {
  std::vector<void*> free;
  ~StackPool() {
    for (void* p : free) std::free(p);
  }
};
thread_local StackPool t_stacks;

struct PooledStack {
  bctx::stack_context allocate() {
    void* base;
    if (!t_stacks.free.empty()) {
      base = t_stacks.free.back();
      t_stacks.free.pop_back();
#ifdef NASH_EMU_ASAN
      // A reused stack may still carry the redzone poison of frames that never returned normally (a fiber ended
      // by an exception or a forced unwind, which ASan cannot follow across stacks): without this, the next
      // fiber's locals there read as a stack-buffer-overflow.
      __asan_unpoison_memory_region(base, kStackSize);
#endif
    } else {
      base = std::aligned_alloc(64, kStackSize);
      if (!base) throw std::bad_alloc();
    }
    bctx::stack_context sc;
    sc.size = kStackSize;
    sc.sp = static_cast<char*>(base) + kStackSize;
    t_last_allocated = {base, kStackSize};
    return sc;
  }
  void deallocate(bctx::stack_context& sc) noexcept {
    t_stacks.free.push_back(static_cast<char*>(sc.sp) - sc.size);
  }
};

enum class State { Runnable, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
  bctx::fiber f;
  bctx::fiber sink;
  ThreadContext tc;
  State state = State::Runnable;
  unsigned warp_mask = 0;
  int linear = 0;
  std::size_t smem_cursor = 0;
  AsanStack stack;  // for the ASan annotations
};

struct Block {
  const char* kernel = "";
  std::vector<Fiber> fibers;
  std::vector<unsigned char> smem;
  std::vector<uint64_t> slots;
  std::exception_ptr error;
  int nthreads = 0;
};

thread_local Block* t_block = nullptr;
thread_local Fiber* t_fiber = nullptr;

Fiber& current(const char* what) {
  if (!t_fiber) detail::fail("cuda emulation: ", what, " called outside a kernel launched through nash::cuda launch");
  return *t_fiber;
}

void suspend(State s) {
  Fiber* me = &current("a barrier");
  me->state = s;
  void* fake = nullptr;
  asan_leave(&fake, t_thread_stack);
  me->sink = std::move(me->sink).resume();
  asan_arrive(fake, nullptr);
  t_fiber = me;
}

unsigned existing_lanes(int warp, int nthreads) {
  int lanes = std::min(32, nthreads - warp * 32);
  return lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1u);
}

// xorshift64*: a cheap deterministic scramble of the order fibers run in.
uint64_t next_rand(uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ULL;
}

[[noreturn]] void misuse(const Block& b, const std::string& what) {
  detail::fail("cuda emulation: kernel ", b.kernel, ": ", what);
}

// Releases the waits that can complete; returns false when nothing could be released.
bool release(Block& b) {
  bool any = false;
  int nwarps = (b.nthreads + 31) / 32;
  for (int w = 0; w < nwarps; ++w) {
    unsigned waiting = 0, mask = 0;
    for (int l = 0; l < 32 && w * 32 + l < b.nthreads; ++l) {
      Fiber& f = b.fibers[w * 32 + l];
      if (f.state == State::AtWarpBarrier) {
        waiting |= 1u << l;
        mask = f.warp_mask;
      }
    }
    if (!waiting) continue;
    unsigned need = mask & existing_lanes(w, b.nthreads);
    if ((waiting & need) == need) {
      for (int l = 0; l < 32; ++l)
        if (waiting & (1u << l)) b.fibers[w * 32 + l].state = State::Runnable;
      any = true;
      continue;
    }
    for (int l = 0; l < 32; ++l) {
      if (!(need & (1u << l)) || (waiting & (1u << l))) continue;
      const Fiber& f = b.fibers[w * 32 + l];
      if (f.state == State::Done)
        misuse(b, "warp-synchronous operation in warp " + std::to_string(w) + ": lane " + std::to_string(l) +
                      " named in the mask has already exited");
      if (f.state == State::AtBlockBarrier)
        misuse(b, "warp-synchronous operation in warp " + std::to_string(w) + ": lane " + std::to_string(l) +
                      " named in the mask waits at __syncthreads instead");
    }
  }
  if (any) return true;
  int done = 0, at_block = 0;
  for (const Fiber& f : b.fibers) {
    done += f.state == State::Done;
    at_block += f.state == State::AtBlockBarrier;
  }
  if (at_block == 0) return false;
  if (done > 0)
    misuse(b, "__syncthreads reached by only part of the block (" + std::to_string(at_block) + " of " +
                  std::to_string(b.nthreads) + " threads; " + std::to_string(done) +
                  " exited without reaching it) in block (" + std::to_string(b.fibers[0].tc.block_idx.x) + "," +
                  std::to_string(b.fibers[0].tc.block_idx.y) + "," + std::to_string(b.fibers[0].tc.block_idx.z) +
                  ")");
  for (Fiber& f : b.fibers) f.state = State::Runnable;
  return true;
}

void run_block(Block& b, const Body& body, nash_emu_uint3 bidx, nash_emu_dim3 grid, nash_emu_dim3 block,
               std::size_t dyn, uint64_t seed) {
  b.nthreads = static_cast<int>(block.x * block.y * block.z);
  b.smem.assign(kStaticSmem + dyn, 0xFF);  // NaN for floats: reading an unwritten shared value shows up
  b.slots.assign(static_cast<std::size_t>(b.nthreads), 0);
  b.error = nullptr;
  b.fibers.clear();
  b.fibers.resize(static_cast<std::size_t>(b.nthreads));
  t_block = &b;
  for (int i = 0; i < b.nthreads; ++i) {
    Fiber& f = b.fibers[i];
    f.linear = i;
    f.tc.thread_idx = {static_cast<unsigned>(i) % block.x, (static_cast<unsigned>(i) / block.x) % block.y,
                       static_cast<unsigned>(i) / (block.x * block.y)};
    f.tc.block_idx = bidx;
    f.tc.block_dim = block;
    f.tc.grid_dim = grid;
    Block* bp = &b;
    f.f = bctx::fiber(std::allocator_arg, PooledStack(), [bp, i, &body](bctx::fiber&& sink) {
      Fiber& me = bp->fibers[i];
      asan_arrive(nullptr, &t_thread_stack);
      me.sink = std::move(sink);
      try {
        body();
      } catch (const bctx::detail::forced_unwind&) {
        throw;
      } catch (...) {
        if (!bp->error) bp->error = std::current_exception();
      }
      me.state = State::Done;
      asan_leave(nullptr, t_thread_stack);
      return std::move(me.sink);
    });
    f.stack = t_last_allocated;
  }
  std::vector<int> order(b.nthreads);
  for (int i = 0; i < b.nthreads; ++i) order[i] = i;
  uint64_t rs = seed * 0x9E3779B97F4A7C15ULL + 1;
  int64_t switches = 0;
  while (true) {
    for (int i = b.nthreads - 1; i > 0; --i) std::swap(order[i], order[next_rand(rs) % static_cast<uint64_t>(i + 1)]);
    for (int i : order) {
      Fiber& f = b.fibers[i];
      if (f.state != State::Runnable) continue;
      t_fiber = &f;
      void* fake = nullptr;
      asan_leave(&fake, f.stack);
      f.f = std::move(f.f).resume();
      asan_arrive(fake, nullptr);
      t_fiber = nullptr;
      ++switches;
      if (b.error) break;
    }
    if (b.error) break;
    bool all_done = true;
    for (const Fiber& f : b.fibers) all_done &= f.state == State::Done;
    if (all_done) break;
    if (!release(b)) misuse(b, "deadlock: threads wait at barriers that can never complete");
  }
  g_switches += switches;
  std::exception_ptr err = b.error;
  for (Fiber& f : b.fibers) f.f = bctx::fiber();  // unwinds fibers still suspended after an error
  b.fibers.clear();
  t_block = nullptr;
  if (err) std::rethrow_exception(err);
}

}  // namespace

const ThreadContext& ctx() { return current("threadIdx/blockIdx").tc; }

void syncthreads() { suspend(State::AtBlockBarrier); }

void syncwarp(unsigned mask) {
  Fiber& f = current("__syncwarp");
  unsigned lane_bit = 1u << (f.linear % 32);
  if (!(mask & lane_bit)) detail::fail("cuda emulation: __syncwarp called by a lane not named in its mask");
  f.warp_mask = mask;
  suspend(State::AtWarpBarrier);
}

int lane_id() { return current("lane id").linear % 32; }

uint64_t exchange(unsigned mask, uint64_t bits, int src_lane) {
  Fiber& f = current("a warp shuffle");
  Block& b = *t_block;
  b.slots[f.linear] = bits;
  syncwarp(mask);
  int src = (f.linear / 32) * 32 + src_lane;
  uint64_t r = (src_lane >= 0 && src_lane < 32 && src < b.nthreads) ? b.slots[src] : bits;
  syncwarp(mask);
  return r;
}

unsigned ballot(unsigned mask, bool pred) {
  Fiber& f = current("__ballot_sync");
  Block& b = *t_block;
  b.slots[f.linear] = pred ? 1 : 0;
  syncwarp(mask);
  unsigned r = 0;
  int w = f.linear / 32;
  for (int l = 0; l < 32 && w * 32 + l < b.nthreads; ++l)
    if ((mask & (1u << l)) && b.slots[w * 32 + l]) r |= 1u << l;
  syncwarp(mask);
  return r;
}

void* shared_alloc(std::size_t bytes, std::size_t align) {
  Fiber& f = current("shared memory");
  std::size_t at = (f.smem_cursor + align - 1) / align * align;
  if (at + bytes > kStaticSmem)
    detail::fail("cuda emulation: kernel ", t_block->kernel, " declares more than ", kStaticSmem,
                 " bytes of static shared memory");
  f.smem_cursor = at + bytes;
  return t_block->smem.data() + at;
}

void* dynamic_shared() {
  current("dynamic shared memory");
  return t_block->smem.data() + kStaticSmem;
}

void launch(const char* name, nash_emu_dim3 grid, nash_emu_dim3 block, std::size_t dynamic_smem, const Body& body) {
  const int64_t nthreads = static_cast<int64_t>(block.x) * block.y * block.z;
  if (nthreads <= 0 || nthreads > 1024 || block.z > 64)
    detail::fail("cuda emulation: kernel ", name, ": invalid block (", block.x, ",", block.y, ",", block.z,
                 "): a CUDA block has 1..1024 threads");
  if (grid.y > 65535 || grid.z > 65535)
    detail::fail("cuda emulation: kernel ", name, ": grid (", grid.x, ",", grid.y, ",", grid.z,
                 ") exceeds CUDA's 65535 limit in y or z");
  if (dynamic_smem + kStaticSmem > 228 * 1024)
    detail::fail("cuda emulation: kernel ", name, ": ", dynamic_smem, " bytes of dynamic shared memory is too much");
  if (t_fiber) detail::fail("cuda emulation: kernel ", name, " launched from inside a kernel");
  const int64_t nblocks = static_cast<int64_t>(grid.x) * grid.y * grid.z;
  const int64_t launch_id = g_launches++;
  g_blocks += nblocks;
  std::exception_ptr first;
  std::mutex mu;
#pragma omp parallel if (nblocks > 1)
  {
    Block b;
    b.kernel = name;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < nblocks; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (first) continue;
      }
      nash_emu_uint3 bidx{static_cast<unsigned>(i % grid.x), static_cast<unsigned>((i / grid.x) % grid.y),
                          static_cast<unsigned>(i / (static_cast<int64_t>(grid.x) * grid.y))};
      try {
        run_block(b, body, bidx, grid, block, dynamic_smem, static_cast<uint64_t>(launch_id) * 1000003u + i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
      }
    }
  }
  if (first) std::rethrow_exception(first);
}

Stats stats() { return {g_launches.load(), g_blocks.load(), g_switches.load()}; }

}  // namespace emu
}  // namespace nash
