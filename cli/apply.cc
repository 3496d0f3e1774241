#include <iostream>

#include "cli/commands.h"
#include "cli/printers.h"
#include "proto/patch.h"

namespace skiff::cli {
namespace {

constexpr const char* kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";

std::string meta_of(const json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  return obj["metadata"].value(key, "");
}

// The manifest as kubectl's apply sends it: namespace filled in, the previous last-applied
// annotation dropped, then the new one set to the compact JSON of that (with its
// "annotations":{} kept) plus "\n".
json with_last_applied(json manifest, const std::string& ns) {
  json& md = manifest["metadata"];
  if (!md.is_object()) md = json::object();
  if (!ns.empty()) md["namespace"] = ns;
  if (!md.contains("annotations") || !md["annotations"].is_object()) {
    md["annotations"] = json::object();
  }
  md["annotations"].erase(kLastApplied);
  std::string applied = go_json(manifest) + "\n";
  md["annotations"][kLastApplied] = applied;
  return manifest;
}

bool is_empty_patch(const json& p) { return p.is_null() || (p.is_object() && p.empty()); }

}  // namespace

int run_apply(Context& ctx, const ApplyOptions& o) {
  if (o.files.empty()) {
    *ctx.err << "error: must specify one of -f and -k\n";
    return 1;
  }
  auto manifests = read_manifests(o.files, *ctx.in);
  if (!manifests) {
    *ctx.err << "error: " << manifests.status().message() << "\n";
    return 1;
  }
  if (manifests->empty()) {
    *ctx.err << "error: no objects passed to " << (o.create_only ? "create" : "apply") << "\n";
    return 1;
  }
  int rc = 0;
  for (auto& m : *manifests) {
    const json& obj = m.object;
    std::string api_version = obj.value("apiVersion", "");
    std::string kind = obj.value("kind", "");
    const auto* t = proto::Registry::builtin().by_kind(api_version, kind);
    if (!t) {
      *ctx.err << "error: unable to recognize \"" << m.source << "\": no matches for kind \""
               << kind << "\" in version \"" << api_version << "\"\n";
      rc = 1;
      continue;
    }
    std::string name = meta_of(obj, "name");
    std::string obj_ns = meta_of(obj, "namespace");
    if (t->namespaced && ctx.namespace_explicit && !obj_ns.empty() && obj_ns != ctx.namespace_) {
      *ctx.err << "error: the namespace from the provided object \"" << obj_ns
               << "\" does not match the namespace \"" << ctx.namespace_
               << "\". You must pass '--namespace=" << obj_ns << "' to perform this operation.\n";
      rc = 1;
      continue;
    }
    std::string ns = ctx.namespace_for(*t, obj);
    std::string label = kind_prefix(*t) + "/" + name;

    if (o.create_only) {
      json body = obj;
      if (!ns.empty()) body["metadata"]["namespace"] = ns;
      auto r =
          ctx.rest->request("POST", client::resource_path(*t, ns),
                            {{"fieldManager", "kubectl-create"}}, body.dump(), "application/json");
      if (!r) {
        ctx.print_error(r.status());
        return 1;
      }
      if (!r->ok()) {
        ctx.print_error(*r, "error when creating \"" + m.source + "\": ");
        rc = 1;
        continue;
      }
      json created = json::parse(r->body, nullptr, false);
      if (name.empty() && created.is_object())
        label = kind_prefix(*t) + "/" + meta_of(created, "name");
      *ctx.out << label << " created\n";
      continue;
    }

    if (name.empty()) {
      *ctx.err << "error: error when retrieving current configuration of \"" << m.source
               << "\": resource name may not be empty\n";
      rc = 1;
      continue;
    }
    json modified = with_last_applied(obj, ns);
    std::string path = client::resource_path(*t, ns, name);
    auto live_r = ctx.rest->request("GET", path);
    if (!live_r) {
      ctx.print_error(live_r.status());
      return 1;
    }
    if (live_r->status == 404) {
      auto r = ctx.rest->request("POST", client::resource_path(*t, ns),
                                 {{"fieldManager", "kubectl-client-side-apply"}}, modified.dump(),
                                 "application/json");
      if (!r) {
        ctx.print_error(r.status());
        return 1;
      }
      if (!r->ok()) {
        ctx.print_error(*r, "error when creating \"" + m.source + "\": ");
        rc = 1;
        continue;
      }
      *ctx.out << label << " created\n";
      continue;
    }
    if (!live_r->ok()) {
      ctx.print_error(*live_r,
                      "error when retrieving current configuration of \"" + m.source + "\": ");
      rc = 1;
      continue;
    }
    json live = json::parse(live_r->body, nullptr, false);
    if (!live.is_object()) {
      *ctx.err << "error: the server's answer to GET " << path << " is not a JSON object\n";
      rc = 1;
      continue;
    }
    json original;  // null: no last-applied, so nothing is deleted
    const json& annotations = live["metadata"].value("annotations", json::object());
    if (annotations.is_object() && annotations.contains(kLastApplied) &&
        annotations[kLastApplied].is_string()) {
      original = json::parse(annotations[kLastApplied].get<std::string>(), nullptr, false);
      if (original.is_discarded()) original = nullptr;
    } else {
      *ctx.err << "Warning: resource " << t->plural << "/" << name << " is missing the "
               << kLastApplied
               << " annotation which is required by skiffctl apply. skiffctl apply should only "
                  "be used on resources created declaratively by either skiffctl create "
                  "--save-config or skiffctl apply. The missing annotation will be patched "
                  "automatically.\n";
    }
    static const proto::Schema kNoSchema;
    auto patch =
        proto::create_three_way_strategic_patch(original.is_null() ? json::object() : original,
                                                modified, live, t->schema ? *t->schema : kNoSchema);
    if (!patch) {
      *ctx.err << "error: error when computing the patch for \"" << m.source
               << "\": " << patch.status().message() << "\n";
      rc = 1;
      continue;
    }
    if (is_empty_patch(*patch)) {
      *ctx.out << label << " unchanged\n";
      continue;
    }
    auto r = ctx.rest->request("PATCH", path, {{"fieldManager", "kubectl-client-side-apply"}},
                               patch->dump(), "application/strategic-merge-patch+json");
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (!r->ok()) {
      ctx.print_error(*r, "error when applying patch:\n" + patch->dump() + "\nto:\n" +
                              "Resource: \"" + t->api_version() + ", Resource=" + t->plural +
                              "\", Name: \"" + name + "\", Namespace: \"" + ns + "\"\nfor: \"" +
                              m.source + "\": ");
      rc = 1;
      continue;
    }
    *ctx.out << label << " configured\n";
  }
  return rc;
}

}  // namespace skiff::cli
