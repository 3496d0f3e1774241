// Manifest and index parsing shared by import (OCI layouts) and pull
// (registries).
#include <nlohmann/json.hpp>

#include "kubelet/images/internal.h"

namespace skiff::images::internal {

using nlohmann::json;

const char* host_architecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#elif defined(__riscv)
  return "riscv64";
#else
  return "unknown";
#endif
}

namespace {

bool layer_type_ok(std::string_view t) {
  return t == "application/vnd.oci.image.layer.v1.tar" ||
         t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         t == "application/vnd.docker.image.rootfs.diff.tar" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

Result<Descriptor> descriptor(const json& j, const std::string& what, const char* field) {
  if (!j.is_object()) return Status::invalid(what + ": " + field + " is not an object");
  Descriptor d;
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) d.media_type = *it;
  auto dg = j.find("digest");
  if (dg == j.end() || !dg->is_string())
    return Status::invalid(what + ": " + field + " has no digest");
  d.digest = *dg;
  if (!valid_digest(d.digest)) {
    return Status::invalid(what + ": " + field + " has an unsupported digest \"" + d.digest + "\"");
  }
  if (auto it = j.find("size"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return Status::invalid(what + ": " + field + " has a bad size");
    }
    d.size = it->get<int64_t>();
  }
  if (auto it = j.find("annotations"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
    }
  }
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    d.os = p->value("os", "");
    d.architecture = p->value("architecture", "");
    d.variant = p->value("variant", "");
  }
  return d;
}

}  // namespace

Result<Manifest> parse_manifest(std::string_view body, std::string_view content_type,
                                const std::string& what) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::string head(body.substr(0, 60));
    for (char& c : head) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return Status::invalid(
        what + ": not a JSON manifest" +
        (content_type.empty() ? "" : " (Content-Type " + std::string(content_type) + ")") + ": \"" +
        head + (body.size() > 60 ? "...\"" : "\""));
  }
  Manifest m;
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) m.media_type = *it;
  if (m.media_type.empty()) {
    std::string_view ct = content_type.substr(0, content_type.find(';'));
    m.media_type = std::string(ct);
  }
  if (m.media_type.empty()) {
    // OCI allows omitting mediaType; the shape tells.
    m.media_type = std::string(j.contains("manifests") ? kOciIndex : kOciManifest);
  }
  if (int v = j.value("schemaVersion", 0);
      v == 1 || m.media_type.starts_with("application/vnd.docker.distribution.manifest.v1")) {
    return Status::invalid(what + ": Docker schema 1 manifests are not supported");
  }
  if (m.media_type == kOciIndex || m.media_type == kDockerList) {
    m.is_index = true;
    auto ms = j.find("manifests");
    if (ms == j.end() || !ms->is_array()) return Status::invalid(what + ": index has no manifests");
    for (const auto& e : *ms) {
      auto d = descriptor(e, what, "manifests[]");
      if (!d) return d.status();
      m.manifests.push_back(std::move(*d));
    }
    return m;
  }
  if (m.media_type != kOciManifest && m.media_type != kDockerManifest) {
    return Status::invalid(what + ": unsupported manifest media type \"" + m.media_type + "\"");
  }
  auto cfg = j.find("config");
  if (cfg == j.end()) return Status::invalid(what + ": manifest has no config");
  auto c = descriptor(*cfg, what, "config");
  if (!c) return c.status();
  m.config = std::move(*c);
  auto ls = j.find("layers");
  if (ls == j.end() || !ls->is_array()) return Status::invalid(what + ": manifest has no layers");
  for (const auto& e : *ls) {
    auto d = descriptor(e, what, "layers[]");
    if (!d) return d.status();
    if (!layer_type_ok(d->media_type)) {
      return Status::invalid(what + ": layer " + d->digest + " has unsupported media type \"" +
                             d->media_type + "\"");
    }
    m.layers.push_back(std::move(*d));
  }
  return m;
}

Result<Descriptor> pick_platform(const Manifest& index, const std::string& what) {
  const std::string arch = host_architecture();
  const Descriptor* best = nullptr;
  std::string seen;
  for (const auto& d : index.manifests) {
    seen += (seen.empty() ? "" : ", ") + d.os + "/" + d.architecture;
    // Attestation manifests (buildx) carry platform unknown/unknown.
    if (d.os != "linux" || d.architecture != arch) continue;
    if (!best) best = &d;
  }
  if (!best && index.manifests.size() == 1 && index.manifests[0].os.empty()) {
    best = &index.manifests[0];  // an index without platforms (OCI layouts
                                 // often): the only one
  }
  if (!best) {
    return Status::not_found(what + ": no linux/" + arch + " image in the index (it has: " +
                             (seen.empty() ? "nothing" : seen) + ")");
  }
  return *best;
}

}  // namespace skiff::images::internal
