// skiff-image: a small front end to the image store, for tests and debugging.
//   skiff-image --root DIR import FILE...
//   skiff-image --root DIR pull REF [--insecure-registry H:P]... [--ca-file F]
//   [--user U:P]
//                                   [--timeout S]
//   skiff-image --root DIR list | inspect REF | layers REF | rm REF | user REF
//   USER
// Prints one line per image (id, tags) or JSON for inspect; errors on stderr,
// exit 1.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kubelet/images/image_store.h"

using namespace skiff;
using namespace skiff::images;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: skiff-image --root DIR (import FILE... | "
               "import-dir DIR | pull REF "
               "[--insecure-registry H:P] [--ca-file F] [--user U:P] "
               "[--timeout S] | list | "
               "inspect REF | layers REF | rm REF | user REF USER)\n");
  return 2;
}

int fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
  return 1;
}

void print(const ImageRecord& r) {
  std::printf("%s", r.id.c_str());
  for (const auto& t : r.repo_tags) std::printf(" %s", t.c_str());
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string root;
  PullOptions opts;
  std::vector<std::string> pos;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : std::string(); };
    if (a == "--root") {
      root = next();
    } else if (a == "--insecure-registry") {
      opts.insecure_registries.push_back(next());
    } else if (a == "--ca-file") {
      opts.ca_file = next();
    } else if (a == "--user") {
      std::string up = next();
      size_t c = up.find(':');
      opts.username = up.substr(0, c);
      if (c != std::string::npos) opts.password = up.substr(c + 1);
    } else if (a == "--timeout") {
      opts.timeout_seconds = std::atoi(next().c_str());
    } else {
      pos.push_back(a);
    }
  }
  if (root.empty() || pos.empty()) return usage();
  auto store = ImageStore::open(root);
  if (!store) return fail(store.status());
  ImageStore& s = **store;
  const std::string& cmd = pos[0];
  if (cmd == "import" && pos.size() >= 2) {
    for (size_t i = 1; i < pos.size(); ++i) {
      auto r = s.import_file(pos[i]);
      if (!r) return fail(r.status());
      for (const auto& rec : *r) print(rec);
    }
    return 0;
  }
  if (cmd == "import-dir" && pos.size() == 2) {
    Status st = s.import_dir(pos[1]);
    return st ? 0 : fail(st);
  }
  if (cmd == "pull" && pos.size() == 2) {
    opts.progress = [](const PullProgress& p) { std::fprintf(stderr, "%s\n", p.message.c_str()); };
    auto r = s.pull(pos[1], opts);
    if (!r) return fail(r.status());
    print(*r);
    return 0;
  }
  if (cmd == "list") {
    for (const auto& r : s.list()) print(r);
    return 0;
  }
  if ((cmd == "inspect" || cmd == "layers" || cmd == "rm" || cmd == "user") && pos.size() >= 2) {
    if (cmd == "rm") {
      Status st = s.remove(pos[1]);
      return st ? 0 : fail(st);
    }
    auto r = s.find(pos[1]);
    if (!r) return fail(Status::not_found("image \"" + pos[1] + "\" not found"));
    if (cmd == "inspect") {
      nlohmann::json j = {{"id", r->id},
                          {"repo_tags", r->repo_tags},
                          {"repo_digests", r->repo_digests},
                          {"diff_ids", r->diff_ids},
                          {"size", r->size},
                          {"entrypoint", r->config.entrypoint},
                          {"cmd", r->config.cmd},
                          {"env", r->config.env},
                          {"working_dir", r->config.working_dir},
                          {"user", r->config.user},
                          {"labels", r->config.labels}};
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    auto dirs = s.layer_dirs(*r);
    if (!dirs) return fail(dirs.status());
    if (cmd == "layers") {
      for (const auto& d : *dirs) std::printf("%s\n", d.c_str());
      return 0;
    }
    if (pos.size() != 3) return usage();
    auto u = resolve_user(pos[2], *dirs);
    if (!u) return fail(u.status());
    std::printf("uid=%u gid=%u", u->uid, u->gid);
    for (auto g : u->additional_gids) std::printf(" %u", g);
    std::printf("\n");
    return 0;
  }
  return usage();
}
