// Independent runs of a sweep in forked worker processes: each run gets a fresh copy of this process, so no state
// (grad mode, generators, thread settings) carries from one run into the next, and results cannot depend on how
// many run at once.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>

namespace nash {
namespace apps {

// Runs run(i, result) for every i in [0, n), each in its own forked process, at most `jobs` at a time, the next run
// taking the next free slot (in this process, in order, when jobs <= 1). A run fills result_bytes of plain data,
// sent back through a pipe; done(i, result, failure) is called in this process as each run ends, with a null
// result and the reason (a signal, no result) when its process died. `who` prefixes errors of the pool itself.
void run_forked(const char* who, std::size_t n, int jobs, std::size_t result_bytes,
                const std::function<void(std::size_t, void*)>& run,
                const std::function<void(std::size_t, const void*, const std::string&)>& done);

// The same with a typed result (a plain struct: it crosses the pipe as bytes, parent and child being one binary).
template <class Result>
void run_forked(const char* who, std::size_t n, int jobs, const std::function<Result(std::size_t)>& run,
                const std::function<void(std::size_t, const Result*, const std::string&)>& done) {
  static_assert(std::is_trivially_copyable<Result>::value, "run_forked: the result must be plain data");
  run_forked(
      who, n, jobs, sizeof(Result), [&](std::size_t i, void* out) { *static_cast<Result*>(out) = run(i); },
      [&](std::size_t i, const void* r, const std::string& failure) {
        done(i, static_cast<const Result*>(r), failure);
      });
}

}  // namespace apps
}  // namespace nash
