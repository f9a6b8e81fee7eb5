// The forked worker pool of the sweeps (apps/workers.h): fork per run, results through pipes, poll for the ends.
#include "apps/workers.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include "nash/core/error.h"

namespace nash {
namespace apps {

namespace {

bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t k = ::write(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// Reads until EOF; returns the bytes read (at most n).
std::size_t read_all(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  std::size_t got = 0;
  for (;;) {
    char sink[256];
    char* dst = got < n ? c + got : sink;
    std::size_t room = got < n ? n - got : sizeof sink;
    ssize_t k = ::read(fd, dst, room);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return std::min(got, n);
    got += static_cast<std::size_t>(k);
  }
}

}  // namespace

void run_forked(const char* who, std::size_t n, int jobs, std::size_t result_bytes,
                const std::function<void(std::size_t, void*)>& run,
                const std::function<void(std::size_t, const void*, const std::string&)>& done) {
  std::vector<unsigned char> result(result_bytes);
  if (jobs <= 1) {
    for (std::size_t i = 0; i < n; ++i) {
      std::fill(result.begin(), result.end(), 0);
      run(i, result.data());
      done(i, result.data(), "");
    }
    return;
  }
  // Buffered output would otherwise be written once more by every child.
  std::fflush(nullptr);
  std::cout.flush();
  std::cerr.flush();
  struct Running {
    pid_t pid;
    int fd;
    std::size_t index;
  };
  std::vector<Running> running;
  std::size_t next = 0;
  while (next < n || !running.empty()) {
    while (next < n && running.size() < static_cast<std::size_t>(jobs)) {
      int fd[2];
      NASH_CHECK(::pipe(fd) == 0, who, ": pipe() failed: ", std::strerror(errno));
      const pid_t pid = ::fork();
      if (pid < 0) {
        ::close(fd[0]);
        ::close(fd[1]);
        NASH_CHECK(false, who, ": fork() failed: ", std::strerror(errno));
      }
      if (pid == 0) {
        ::close(fd[0]);
        run(next, result.data());
        ::_exit(write_all(fd[1], result.data(), result.size()) ? 0 : 3);
      }
      ::close(fd[1]);
      running.push_back({pid, fd[0], next++});
    }
    std::vector<pollfd> pf;
    for (const Running& r : running) pf.push_back({r.fd, POLLIN, 0});
    if (::poll(pf.data(), pf.size(), -1) < 0) {
      NASH_CHECK(errno == EINTR, who, ": poll() failed: ", std::strerror(errno));
      continue;
    }
    for (std::size_t k = pf.size(); k-- > 0;) {
      if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const Running r = running[k];
      std::fill(result.begin(), result.end(), 0);
      const std::size_t got = read_all(r.fd, result.data(), result.size());
      ::close(r.fd);
      int status = 0;
      while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) {
      }
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
      if (got == result.size())
        done(r.index, result.data(), "");
      else
        done(r.index, nullptr,
             WIFSIGNALED(status) ? "worker process killed by signal " + std::to_string(WTERMSIG(status))
                                 : "worker process ended without a result");
    }
  }
}

}  // namespace apps
}  // namespace nash
