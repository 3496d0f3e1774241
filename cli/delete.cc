#include <iostream>

#include "cli/commands.h"
#include "cli/printers.h"

namespace skiff::cli {
namespace {

struct Victim {
  const proto::ResourceType* type;
  std::string ns;
  std::string name;
  std::string source;  // manifest file for -f ("" otherwise)
};

}  // namespace

int run_delete(Context& ctx, const DeleteOptions& o) {
  std::vector<Victim> victims;
  int rc = 0;
  if (!o.files.empty()) {
    if (!o.args.empty()) {
      *ctx.err << "error: resource(s) were provided, but no name was specified\n";
      return 1;
    }
    auto manifests = read_manifests(o.files, *ctx.in);
    if (!manifests) {
      *ctx.err << "error: " << manifests.status().message() << "\n";
      return 1;
    }
    for (const auto& m : *manifests) {
      std::string av = m.object.value("apiVersion", ""), kind = m.object.value("kind", "");
      const auto* t = proto::Registry::builtin().by_kind(av, kind);
      if (!t) {
        *ctx.err << "error: unable to recognize \"" << m.source << "\": no matches for kind \""
                 << kind << "\" in version \"" << av << "\"\n";
        rc = 1;
        continue;
      }
      std::string name =
          m.object.contains("metadata") ? m.object["metadata"].value("name", "") : "";
      victims.push_back({t, ctx.namespace_for(*t, m.object), name, m.source});
    }
  } else {
    if (o.args.empty()) {
      *ctx.err << "error: You must provide one or more resources by argument or filename.\n";
      return 1;
    }
    std::vector<std::pair<const proto::ResourceType*, std::string>> named;
    std::vector<const proto::ResourceType*> types;
    if (o.args[0].find('/') != std::string::npos) {
      for (const auto& a : o.args) {
        size_t slash = a.find('/');
        if (slash == std::string::npos) {
          *ctx.err << "error: there is no need to specify a resource type as a separate "
                      "argument when passing arguments in resource/name form\n";
          return 1;
        }
        const auto* t = ctx.resolve(a.substr(0, slash));
        if (!t) return 1;
        named.emplace_back(t, a.substr(slash + 1));
      }
    } else {
      std::string list = o.args[0];
      size_t pos = 0;
      while (pos <= list.size()) {
        size_t comma = list.find(',', pos);
        std::string n =
            list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!n.empty()) {
          const auto* t = ctx.resolve(n);
          if (!t) return 1;
          types.push_back(t);
        }
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
      for (size_t i = 1; i < o.args.size(); ++i) {
        for (const auto* t : types) named.emplace_back(t, o.args[i]);
      }
    }
    bool by_selection = !o.selector.empty() || o.all;
    if (named.empty() && !by_selection) {
      *ctx.err << "error: resource(s) were provided, but no name was specified\n";
      return 1;
    }
    if (!named.empty() && by_selection) {
      *ctx.err << "error: name cannot be provided when a selector or --all is specified\n";
      return 1;
    }
    for (const auto& [t, n] : named) {
      victims.push_back({t, t->namespaced ? ctx.namespace_ : "", n, ""});
    }
    if (by_selection) {
      bool found = false;
      for (const auto* t : types) {
        client::ListOptions lo;
        lo.label_selector = o.selector;
        auto list = ctx.api->list(*t, ctx.flags.all_namespaces ? "" : ctx.namespace_, lo);
        if (!list) {
          ctx.print_error(list.status());
          return 1;
        }
        for (const auto& it : (*list)["items"]) {
          const json& md = it["metadata"];
          victims.push_back({t, md.value("namespace", ""), md.value("name", ""), ""});
          found = true;
        }
      }
      if (!found) {
        *ctx.err << "No resources found\n";
        return rc;
      }
    }
  }
  for (const auto& v : victims) {
    auto r = ctx.rest->request("DELETE", client::resource_path(*v.type, v.ns, v.name), {},
                               R"({"propagationPolicy":"Background"})", "application/json");
    if (!r) {
      ctx.print_error(r.status());
      return 1;
    }
    if (!r->ok()) {
      if (r->status == 404 && o.ignore_not_found) continue;
      ctx.print_error(*r, v.source.empty() ? "" : "error when deleting \"" + v.source + "\": ");
      rc = 1;
      continue;
    }
    *ctx.out << kind_prefix(*v.type) << " \"" << v.name << "\" deleted\n";
  }
  return rc;
}

int run_version(Context& ctx, bool client_only) {
  *ctx.out << "Client Version: " << kClientVersion << "\n";
  if (client_only) return 0;
  auto r = ctx.rest->request("GET", "/version");
  if (!r) {
    ctx.print_error(r.status());
    return 1;
  }
  if (!r->ok()) {
    ctx.print_error(*r);
    return 1;
  }
  json v = json::parse(r->body, nullptr, false);
  *ctx.out << "Server Version: " << (v.is_object() ? v.value("gitVersion", "unknown") : "unknown")
           << "\n";
  return 0;
}

}  // namespace skiff::cli
