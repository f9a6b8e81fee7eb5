// Crash safety of `nash fmnist`: a training run killed with SIGKILL at moments chosen from its observed progress
// (anywhere inside a step, and while a checkpoint is being written) always leaves a checkpoint that loads, no
// temporary file that a resume could mistake for it, and a resume that reproduces bit for bit the weights and
// optimizer state of an uninterrupted run. SIGTERM, sent twice a few milliseconds apart as `timeout` does, saves a
// checkpoint and exits 130. The runs are the app's tiny test configuration (width 4, batch 8, a checkpoint every
// step) in forked children; the parent watches the checkpoint file to decide when to kill.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "apps/fmnist.h"
#include "apps/fmnist_fixture.h"
#include "apps/idx_fixture.h"
#include "nash/io/safetensors.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace nash;
using apps::FmnistConfig;

namespace {

constexpr int64_t kSteps = 12;
using Clock = std::chrono::steady_clock;

fs::path temp_dir(const std::string& name) { return nash_test::temp_dir("test_kill", name); }

// 40 training images of the IDX stand-in; the runs use the first 20 (2 batches an epoch: 12 steps cross 6 epochs,
// so a kill can fall anywhere in the loader's order). Removed at exit by the test process (children leave through
// _exit and run no destructors).
struct DataDir {
  fs::path path = temp_dir("data");
  DataDir() { nash_test::write_split(path, "train", 40, 5); }
  ~DataDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
const fs::path& data_dir() {
  static const DataDir d;
  return d.path;
}

// The tiny run every test kills: no FID, no plots, a metrics row and a checkpoint after every step.
FmnistConfig tiny(const fs::path& out) {
  FmnistConfig c = nash_test::tiny_fmnist_config(nash::apps::FmnistArch::DCGAN, data_dir().string(), out.string(), kSteps);
  c.limit = 20;
  c.plots = false;
  c.checkpoint_every = 1;
  return c;
}

// The same run as `nash fmnist` flags (the subcommand installs the signal handlers).
std::vector<std::string> tiny_flags(const fs::path& out) {
  return {"nash", "fmnist", "--steps", std::to_string(kSteps), "--width", "4", "--batch", "8", "--z-dim", "8",
          "--limit", "20", "--device", "cpu", "--data", data_dir().string(), "--out", out.string(), "--fid-net", "",
          "--quiet", "--plots=false", "--log-every", "1", "--sample-every", "1000", "--checkpoint-every", "1",
          "--threads", "1"};
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Every floating-point tensor of a checkpoint, by name, as doubles (float32 values convert exactly).
std::map<std::string, std::vector<double>> checkpoint_values(const fs::path& p) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& kv : io::load_safetensors(p.string()).tensors) out[kv.first] = kv.second.contiguous().to_vector<double>();
  return out;
}

// metrics.csv's rows by step, without the timing column (the last one).
std::map<int64_t, std::string> metrics_rows(const fs::path& p) {
  std::map<int64_t, std::string> rows;
  std::istringstream s(read_file(p));
  std::string line;
  std::getline(s, line);  // header
  while (std::getline(s, line)) {
    // Every column but step_seconds (the 11th, a timing).
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (cells.size() > 10) cells.erase(cells.begin() + 10);
    std::string row;
    for (const std::string& c : cells) row += c + ",";
    rows[std::stoll(cells.at(0))] = row;
  }
  return rows;
}

// The uninterrupted run every resumed one must match, trained once per process.
struct Reference {
  std::map<std::string, std::vector<double>> tensors;
  std::map<int64_t, std::string> rows;
};
const Reference& reference() {
  static const Reference r = [] {
    const fs::path dir = temp_dir("reference");
    apps::train_fmnist(tiny(dir));
    Reference ref{checkpoint_values(dir / "checkpoint.safetensors"), metrics_rows(dir / "metrics.csv")};
    fs::remove_all(dir);
    return ref;
  }();
  return r;
}

// A child process running `body` with its stdout and stderr in `log`. It leaves through _exit with body's value (an
// exception: 99), so it runs none of the parent's atexit handlers or test teardown.
class Child {
 public:
  Child(const std::function<int()>& body, const fs::path& log) {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int rc = 98;
      try {
        rc = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        rc = 99;
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {  // a failed assertion left it running
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Whether it has ended (reaps it).
  bool ended() {
    if (!reaped_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  int wait() {
    if (!reaped_ && ::waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
    return status_;
  }
  // SIGSTOP, and back once it has stopped (false: it ended first).
  bool stop() {
    if (::kill(pid_, SIGSTOP) != 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WUNTRACED) != pid_) return false;
    if (WIFSTOPPED(st)) return true;
    status_ = st;
    reaped_ = true;
    return false;
  }
  void cont() { ::kill(pid_, SIGCONT); }
  int status() const { return status_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

void pause_us(long us) {
  struct timespec ts{0, us * 1000};
  ::nanosleep(&ts, nullptr);
}

// The child's progress as its checkpoint file shows it: the file is replaced by a rename after every step, so it is
// re-read (a complete file, never half of one) whenever its inode, size or time changed, or 20 ms have passed (a
// reused inode with an unchanged coarse timestamp).
class Progress {
 public:
  explicit Progress(fs::path ckpt) : path_(std::move(ckpt)) {}
  int64_t step() {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) return step_;
    const Clock::time_point now = Clock::now();
    if (st.st_ino != ino_ || st.st_size != size_ || st.st_mtim.tv_nsec != mtime_ns_ || st.st_mtim.tv_sec != mtime_s_ ||
        now - read_at_ > std::chrono::milliseconds(20)) {
      ino_ = st.st_ino;
      size_ = st.st_size;
      mtime_s_ = st.st_mtim.tv_sec;
      mtime_ns_ = st.st_mtim.tv_nsec;
      read_at_ = now;
      const int64_t s = std::stoll(io::load_safetensors(path_.string()).metadata.at("step"));
      if (s != step_) {
        if (step_ >= 0) step_seconds_ = std::chrono::duration<double>(now - changed_at_).count() / double(s - step_);
        changed_at_ = now;
        step_ = s;
      }
    }
    return step_;
  }
  double step_seconds() const { return step_seconds_; }

 private:
  fs::path path_;
  ino_t ino_ = 0;
  off_t size_ = -1;
  time_t mtime_s_ = 0;
  long mtime_ns_ = -1;
  int64_t step_ = -1;
  double step_seconds_ = 0.02;
  Clock::time_point read_at_{}, changed_at_{};
};

// Polls until the child's checkpoint is at `step` or later; false when the child ended first or 30 s passed.
bool wait_for_step(Child& child, Progress& progress, int64_t step) {
  const Clock::time_point t0 = Clock::now();
  while (progress.step() < step) {
    if (child.ended() || Clock::now() - t0 > std::chrono::seconds(30)) return false;
    pause_us(100);
  }
  return true;
}

// The files in dir (and samples/) whose names mark them as temporary.
std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().filename().string());
  return out;
}

struct Outcome {
  int64_t step = -1;        // of the checkpoint the kill left
  int64_t lost_rows = 0;    // metrics rows the kill lost (behind the checkpoint)
  std::size_t stale = 0;    // the killed process's temporary files left behind
};

// What a killed run left in dir, checked, then resumed to kSteps and compared with the uninterrupted run.
Outcome check_and_resume(const fs::path& dir, pid_t killed, int64_t min_step) {
  Outcome out;
  const fs::path ck = dir / "checkpoint.safetensors";
  // The checkpoint loads, is a complete fmnist checkpoint and is at least as far as the parent saw it.
  int64_t step = -1;
  EXPECT_NO_THROW({
    const io::SafetensorsFile f = io::load_safetensors(ck.string());
    step = std::stoll(f.metadata.at("step"));
    apps::fmnist_config_from_checkpoint(ck.string());
  }) << "the checkpoint left by the killed run does not load";
  EXPECT_GE(step, min_step);
  EXPECT_LE(step, kSteps);
  out.step = step;
  if (step < 0) return out;
  // The only temporary files are the killed writer's own (named with its pid, never read by anyone): a resume reads
  // checkpoint.safetensors and nothing else, and writes its temporary files under its own pid.
  const std::string killed_suffix = ".tmp." + std::to_string(killed);
  out.stale = temp_files(dir).size();
  for (const std::string& t : temp_files(dir))
    EXPECT_TRUE(t.size() > killed_suffix.size() && t.compare(t.size() - killed_suffix.size(), std::string::npos,
                                                              killed_suffix) == 0)
        << t << " is not a temporary file of the killed process " << killed;
  // metrics.csv as the kill left it: its last rows may be past the checkpoint (killed between the two writes).
  const std::map<int64_t, std::string> before = metrics_rows(dir / "metrics.csv");
  const int64_t last_row = before.empty() ? 0 : before.rbegin()->first;

  FmnistConfig c = tiny(dir);
  c.resume = ck.string();
  const apps::FmnistResult r = apps::train_fmnist(c);
  EXPECT_EQ(r.start_step, step);
  EXPECT_EQ(r.steps_done, kSteps);
  const auto got = checkpoint_values(ck);
  const Reference& ref = reference();
  EXPECT_EQ(got.size(), ref.tensors.size());
  for (const auto& kv : ref.tensors) {
    auto it = got.find(kv.first);
    if (it == got.end()) {
      ADD_FAILURE() << "the resumed checkpoint lacks " << kv.first;
      continue;
    }
    EXPECT_EQ(it->second, kv.second) << kv.first << " differs from the uninterrupted run (resumed at step " << step
                                     << ")";  // bit for bit
  }
  // Every metrics row equals the uninterrupted run's: the logs are written before each checkpoint, so a kill can
  // leave rows past the checkpoint (the resume replaces them) but never lose one.
  const std::map<int64_t, std::string> rows = metrics_rows(dir / "metrics.csv");
  for (const auto& kv : ref.rows) {
    auto it = rows.find(kv.first);
    if (it == rows.end()) {
      ADD_FAILURE() << "metrics.csv lost the row of step " << kv.first << " (checkpoint at " << step
                    << ", rows up to " << last_row << " before the resume)";
      ++out.lost_rows;
    } else {
      EXPECT_EQ(it->second, kv.second) << "metrics row of step " << kv.first;
    }
  }
  // The resumed run removed the killed writer's temporary files and left none of its own.
  for (const std::string& t : temp_files(dir)) ADD_FAILURE() << "temporary file left behind: " << t;
  return out;
}

void report(const char* test, int trial, const std::string& kill, const Outcome& o) {
  std::printf("[kill] %s %d: %s; checkpoint at step %lld, resumed to the end; %lld metrics row(s) lost, %zu stale "
              "temporary file(s)\n",
              test, trial, kill.c_str(), static_cast<long long>(o.step), static_cast<long long>(o.lost_rows), o.stale);
}

}  // namespace

// SIGKILL at a random moment of a random step: after the parent sees the checkpoint of step k, it waits a random
// fraction of a measured step (the kill lands in the forward/backward, the optimizer, the checkpoint or the
// metrics write) and kills. Seeded, so a failure names a reproducible schedule.
TEST(KillResume, SigkillAtRandomMomentsLeavesACheckpointThatResumesExactly) {
  reference();
  std::mt19937 rng(20261128);
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t k = std::uniform_int_distribution<int64_t>(1, 9)(rng);
    const double fraction = std::uniform_real_distribution<double>(0.0, 1.5)(rng);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": after step " + std::to_string(k) + ", " +
                 std::to_string(fraction) + " of a step later");
    const fs::path dir = temp_dir("random");
    Child child([&] { return apps::train_fmnist(tiny(dir)).steps_done == kSteps ? 0 : 1; }, dir.parent_path() /
                    (dir.filename().string() + ".log"));
    Progress progress(dir / "checkpoint.safetensors");
    ASSERT_TRUE(wait_for_step(child, progress, k))
        << "the child ended (status " << child.status() << ") or stalled before step " << k << ": "
        << read_file(dir.parent_path() / (dir.filename().string() + ".log"));
    const int64_t seen = progress.step();  // k or later: the parent may have looked late
    const Clock::time_point until =
        Clock::now() + std::chrono::microseconds(static_cast<int64_t>(fraction * progress.step_seconds() * 1e6));
    while (Clock::now() < until && !child.ended()) {
    }
    ::kill(child.pid(), SIGKILL);
    const int st = child.wait();
    // Killed (or, when the delay outlasted the run, finished cleanly: then the checks below still hold).
    EXPECT_TRUE((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) || (WIFEXITED(st) && WEXITSTATUS(st) == 0)) << st;
    const Outcome o = check_and_resume(dir, child.pid(), k);
    report("random", trial,
           (WIFSIGNALED(st) ? "SIGKILL " : "finished before SIGKILL ") + std::to_string(fraction) +
               " of a step after the parent saw step " + std::to_string(seen),
           o);
    fs::remove_all(dir);
    fs::remove(dir.parent_path() / (dir.filename().string() + ".log"));
  }
}

// SIGKILL while the checkpoint's temporary file exists: the parent watches for it, freezes the child with SIGSTOP
// (so the moment is certain, not a race) and kills it when the file is still there. The previous checkpoint must be
// intact and the half-written one must not be taken for it.
TEST(KillResume, SigkillWhileACheckpointIsBeingWrittenKeepsThePreviousOne) {
  reference();
  std::mt19937 rng(1128);
  int mid_write = 0;
  for (int trial = 0; trial < 3; ++trial) {
    const int64_t k = std::uniform_int_distribution<int64_t>(1, 8)(rng);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": the write after step " + std::to_string(k));
    const fs::path dir = temp_dir("midwrite");
    const fs::path log = dir.parent_path() / (dir.filename().string() + ".log");
    Child child([&] { return apps::train_fmnist(tiny(dir)).steps_done == kSteps ? 0 : 1; }, log);
    Progress progress(dir / "checkpoint.safetensors");
    ASSERT_TRUE(wait_for_step(child, progress, k)) << "status " << child.status() << ": " << read_file(log);
    const fs::path tmp = dir / ("checkpoint.safetensors.tmp." + std::to_string(child.pid()));
    bool caught = false;
    const Clock::time_point t0 = Clock::now();
    while (!caught && !child.ended() && Clock::now() - t0 < std::chrono::seconds(20)) {
      if (::access(tmp.c_str(), F_OK) != 0) {
        ::sched_yield();
        continue;
      }
      if (!child.stop()) break;
      caught = ::access(tmp.c_str(), F_OK) == 0;  // still mid-write now that it cannot move
      if (!caught) child.cont();
    }
    const int64_t step_at_kill = progress.step();
    ::kill(child.pid(), SIGKILL);
    const int st = child.wait();
    EXPECT_TRUE((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) || (WIFEXITED(st) && WEXITSTATUS(st) == 0)) << st;
    if (caught) {
      ++mid_write;
      EXPECT_TRUE(fs::exists(tmp)) << "the half-written checkpoint vanished";
    }
    const Outcome o = check_and_resume(dir, child.pid(), step_at_kill);
    if (caught) EXPECT_LT(o.step, kSteps) << "killed mid-write, yet the checkpoint is the final one";
    report("mid-write", trial,
           std::string(caught ? "SIGKILL while checkpoint.safetensors.tmp existed" : "SIGKILL (no write caught)") +
               ", after step " + std::to_string(k),
           o);
    fs::remove_all(dir);
    fs::remove(log);
  }
  // Where writes are too fast to catch (a RAM file system without fsync cost), the kills above still checked the
  // resume; say so rather than fail on timing.
  if (mid_write == 0) std::printf("[kill] no kill landed inside a checkpoint write on this file system\n");
  RecordProperty("kills_mid_write", mid_write);
}

// SIGTERM as `timeout` sends it (the process, then its group: twice within milliseconds): one clean stop with a
// checkpoint and exit code 130; the resumed run matches the uninterrupted one, metrics included.
TEST(KillResume, SigtermTwiceSavesACheckpointAndExits130) {
  reference();
  const fs::path dir = temp_dir("sigterm");
  const fs::path log = dir.parent_path() / (dir.filename().string() + ".log");
  const std::vector<std::string> flags = tiny_flags(dir);
  Child child(
      [&] {
        std::vector<const char*> argv;
        for (const std::string& a : flags) argv.push_back(a.c_str());
        return apps::run_fmnist(static_cast<int>(argv.size()), argv.data(), 2);
      },
      log);
  Progress progress(dir / "checkpoint.safetensors");
  ASSERT_TRUE(wait_for_step(child, progress, 3)) << "status " << child.status() << ": " << read_file(log);
  ::kill(child.pid(), SIGTERM);
  pause_us(2000);
  ::kill(child.pid(), SIGTERM);  // the repeat within a second is the same request, not a forced exit
  const int st = child.wait();
  ASSERT_TRUE(WIFEXITED(st)) << "ended by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0) << ": " << read_file(log);
  EXPECT_EQ(WEXITSTATUS(st), 130) << read_file(log);
  EXPECT_NE(read_file(log).find("stopped at step"), std::string::npos) << read_file(log);
  EXPECT_TRUE(temp_files(dir).empty()) << "a clean stop leaves no temporary file";
  const int64_t step = std::stoll(io::load_safetensors((dir / "checkpoint.safetensors").string()).metadata.at("step"));
  EXPECT_GE(step, 3);
  EXPECT_LT(step, kSteps);
  EXPECT_EQ(metrics_rows(dir / "metrics.csv").rbegin()->first, step) << "metrics.csv ends at the checkpoint";
  check_and_resume(dir, child.pid(), step);
  EXPECT_EQ(metrics_rows(dir / "metrics.csv"), reference().rows);
  fs::remove_all(dir);
  fs::remove(log);
}

// The logs are written before each checkpoint, so a kill between the two leaves metrics.csv with rows past the
// checkpoint. Reproduced without timing: an interrupted run's metrics.csv with made-up rows after its checkpoint's
// step; the resumed run must drop them and write the real ones.
TEST(KillResume, RowsPastTheCheckpointAreReplacedOnResume) {
  const fs::path dir = temp_dir("gap");
  FmnistConfig c = tiny(dir);
  c.interrupt_after = 5;
  apps::train_fmnist(c);
  std::ofstream(dir / "metrics.csv", std::ios::binary | std::ios::app) << "6,9,9,9,9,9,9,9,9,0,1,9\n7,9,9,9,9,9,9,9,9,0,1,9\n";
  c.interrupt_after = 0;
  c.resume = (dir / "checkpoint.safetensors").string();
  apps::train_fmnist(c);
  EXPECT_EQ(metrics_rows(dir / "metrics.csv"), reference().rows);
  fs::remove_all(dir);
}
