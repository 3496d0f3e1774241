// resolve_user: the image's `user` against /etc/passwd and /etc/group of its
// layers, as runc and containerd do (name or uid, optional :group or :gid,
// primary gid from passwd, additional gids from the groups that list the user).
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <charconv>
#include <optional>

#include "kubelet/images/internal.h"

namespace skiff::images {
namespace {

std::optional<uint32_t> parse_id(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The content of /<rel> as the merged rootfs would show it: the topmost layer
// holding it wins; a whiteout or an opaque /etc above hides lower layers.
// nullopt when absent.
std::optional<std::string> read_merged(const std::vector<std::string>& layers,
                                       const std::string& rel) {
  for (const auto& dir : layers) {
    std::string path = dir + "/" + rel;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) return std::nullopt;  // whiteout
      if (!S_ISREG(st.st_mode)) return std::nullopt;
      auto r = internal::read_file(path, 16 << 20);
      if (!r) return std::nullopt;
      return std::move(r).value();
    }
    char v[2];
    std::string etc = dir + "/" + rel.substr(0, rel.rfind('/'));
    if (::lgetxattr(etc.c_str(), "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y') {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::vector<std::vector<std::string>> records(const std::optional<std::string>& text) {
  std::vector<std::vector<std::string>> out;
  if (!text) return out;
  size_t i = 0;
  while (i < text->size()) {
    size_t nl = text->find('\n', i);
    if (nl == std::string::npos) nl = text->size();
    std::string_view line(text->data() + i, nl - i);
    i = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    size_t s = 0;
    for (;;) {
      size_t c = line.find(':', s);
      f.emplace_back(line.substr(s, c == std::string_view::npos ? line.size() - s : c - s));
      if (c == std::string_view::npos) break;
      s = c + 1;
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

Result<ResolvedUser> resolve_user(std::string_view user,
                                  const std::vector<std::string>& layer_dirs) {
  ResolvedUser out;
  if (user.empty()) return out;
  std::string_view upart = user, gpart;
  bool has_group = false;
  if (size_t c = user.find(':'); c != std::string_view::npos) {
    upart = user.substr(0, c);
    gpart = user.substr(c + 1);
    has_group = true;
  }
  auto uid_num = parse_id(upart);
  auto gid_num = has_group ? parse_id(gpart) : std::nullopt;
  bool need_passwd = !uid_num || !has_group;
  std::vector<std::vector<std::string>> passwd, group;
  if (need_passwd) passwd = records(read_merged(layer_dirs, "etc/passwd"));

  std::string name;
  bool found = false;
  for (const auto& p : passwd) {
    if (p.size() < 4) continue;
    auto pu = parse_id(p[2]);
    auto pg = parse_id(p[3]);
    if (!pu || !pg) continue;
    if ((uid_num && *pu == *uid_num) || (!uid_num && p[0] == upart)) {
      out.uid = *pu;
      out.gid = *pg;
      name = p[0];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!uid_num) {
      return Status::not_found("user \"" + std::string(upart) +
                               "\" not found in the image's /etc/passwd");
    }
    out.uid = *uid_num;
    out.gid = 0;  // a uid unknown to the image runs with gid 0, as runc does
  }
  if (has_group && (!gid_num || found)) group = records(read_merged(layer_dirs, "etc/group"));
  if (has_group) {
    if (gid_num) {
      out.gid = *gid_num;
    } else {
      bool gfound = false;
      for (const auto& g : group) {
        if (g.size() >= 3 && g[0] == gpart) {
          if (auto id = parse_id(g[2])) {
            out.gid = *id;
            gfound = true;
            break;
          }
        }
      }
      if (!gfound) {
        return Status::not_found("group \"" + std::string(gpart) +
                                 "\" not found in the image's /etc/group");
      }
    }
  } else if (found) {
    group = records(read_merged(layer_dirs, "etc/group"));
  }
  // Supplementary groups come from /etc/group membership of a named user,
  // unless the group was given explicitly (then the user asked for exactly that
  // group).
  if (found && !has_group) {
    for (const auto& g : group) {
      if (g.size() < 4) continue;
      auto id = parse_id(g[2]);
      if (!id || *id == out.gid) continue;
      std::string_view members = g[3];
      for (size_t s = 0; s <= members.size();) {
        size_t c = members.find(',', s);
        if (c == std::string_view::npos) c = members.size();
        if (members.substr(s, c - s) == name) {
          out.additional_gids.push_back(*id);
          break;
        }
        s = c + 1;
      }
    }
  }
  return out;
}

}  // namespace skiff::images
