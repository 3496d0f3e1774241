#include "common/files.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace skiff::files {
namespace {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR, removed at the end of the test.
struct TempDir {
  TempDir() {
    std::string t = (fs::temp_directory_path() / "skiff-files-test.XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

TEST_CASE("lock_for_process: one holder per path; freed when the holder dies, even by kill -9",
          "[files]") {
  TempDir dir;
  const std::string lock = (dir.path / "daemon.lock").string();
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  // Killed and reaped however the test ends.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  if (child == 0) {
    reaper.pid = 0;
    char ok = lock_for_process(lock, "test daemon").is_ok() ? '1' : '0';
    (void)::write(ready[1], &ok, 1);
    ::pause();  // holds the lock until killed
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 0;
  REQUIRE(::read(ready[0], &ok, 1) == 1);
  ::close(ready[0]);
  CHECK(ok == '1');

  // Held by the child: refused, naming the file and the holder's pid.
  Status st = lock_for_process(lock, "test daemon");
  CHECK(st.code() == Code::kUnavailable);
  CHECK_THAT(st.message(), Catch::Contains(lock) && Catch::Contains("another test daemon") &&
                               Catch::Contains("(pid " + std::to_string(child) + ")"));

  // The holder is killed without a chance to clean up: the lock is free, and ours.
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  reaper.pid = 0;
  REQUIRE(lock_for_process(lock, "test daemon").is_ok());
  auto text = read_file(lock);
  REQUIRE(text.is_ok());
  CHECK(*text == std::to_string(::getpid()) + "\n");
}

TEST_CASE("lock_for_process: a directory that cannot hold the file is an I/O error", "[files]") {
  Status st = lock_for_process("/nonexistent-skiff-dir/x.lock", "test daemon");
  CHECK(st.code() == Code::kIo);
  CHECK_THAT(st.message(), Catch::Contains("/nonexistent-skiff-dir/x.lock"));
}

}  // namespace
}  // namespace skiff::files
