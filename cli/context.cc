#include "cli/context.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "proto/client/kubeconfig.h"
#include "proto/client/yaml.h"

namespace skiff::cli {

namespace fs = std::filesystem;

bool Context::connect() {
  client::KubeConfig kc;
  std::string path = client::find_kubeconfig(flags.kubeconfig);
  if (!path.empty()) {
    auto loaded = client::load_kubeconfig(path, flags.context);
    if (!loaded) {
      // An explicit --server does not need a kubeconfig at all.
      if (flags.server.empty()) {
        *err << "error: " << loaded.status().message() << "\n";
        return false;
      }
    } else {
      kc = std::move(*loaded);
    }
  } else if (flags.server.empty()) {
    *err << "error: no configuration: no --server and no kubeconfig (looked at --kubeconfig, "
            "$KUBECONFIG, ~/.kube/config and "
         << client::kAdminKubeconfigPath << ")\n";
    return false;
  }
  if (!flags.server.empty()) kc.server = flags.server;
  if (!flags.token.empty()) kc.token = flags.token;
  if (flags.insecure_skip_tls_verify) {
    kc.insecure_skip_tls_verify = true;
    kc.ca_pem.clear();
  }
  if (!flags.certificate_authority.empty()) {
    std::ifstream f(flags.certificate_authority);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) {
      *err << "error: read --certificate-authority " << flags.certificate_authority << "\n";
      return false;
    }
    kc.ca_pem = ss.str();
  }
  auto cfg = client::ClientConfig::from_kubeconfig(kc);
  cfg.user_agent = "skiffctl/0.1";
  cfg.max_idle_connections = 2;
  if (flags.request_timeout_s > 0) {
    cfg.request_timeout = std::chrono::seconds(flags.request_timeout_s);
  }
  auto rc = client::RestClient::create(std::move(cfg));
  if (!rc) {
    *err << "error: " << rc.status().message() << "\n";
    return false;
  }
  rest = std::shared_ptr<client::RestClient>(std::move(*rc));
  api = std::make_unique<client::ApiClient>(rest);
  if (!flags.namespace_.empty()) {
    namespace_ = flags.namespace_;
    namespace_explicit = true;
  } else if (!kc.namespace_.empty()) {
    namespace_ = kc.namespace_;
  }
  return true;
}

const proto::ResourceType* Context::resolve(const std::string& name) {
  const auto* t = proto::Registry::builtin().resolve(name);
  if (!t) *err << "error: the server doesn't have a resource type \"" << name << "\"\n";
  return t;
}

void Context::print_error(const client::Response& r, const std::string& doing) {
  client::ApiError e = client::api_error(r);
  if (e.code == 401) {
    *err << "error: You must be logged in to the server (Unauthorized)\n";
    return;
  }
  if (e.code == 422 && !e.causes.empty() && !e.details_kind.empty()) {
    *err << "The " << e.details_kind << " \"" << e.details_name << "\" is invalid: ";
    auto cause_text = [](const client::ApiError::Cause& c) {
      return c.field.empty() ? c.message : c.field + ": " + c.message;
    };
    if (e.causes.size() == 1) {
      *err << cause_text(e.causes[0]) << "\n";
    } else {
      *err << "\n";
      for (const auto& c : e.causes) *err << "* " << cause_text(c) << "\n";
    }
    return;
  }
  *err << "Error from server (" << e.reason << "): " << doing << e.message << "\n";
}

void Context::print_error(const Status& s) {
  if (s.code() == Code::kUnavailable || s.code() == Code::kTimeout) {
    *err << "Unable to connect to the server: " << s.message() << "\n";
  } else {
    *err << "error: " << s.message() << "\n";
  }
}

std::string Context::namespace_for(const proto::ResourceType& t, const json& obj) const {
  if (!t.namespaced) return "";
  if (obj.contains("metadata") && obj["metadata"].is_object()) {
    std::string ns = obj["metadata"].value("namespace", "");
    if (!ns.empty()) return ns;
  }
  return namespace_;
}

namespace {

Status add_documents(const std::string& text, const std::string& source,
                     std::vector<Manifest>& out) {
  auto docs = client::parse_yaml_documents(text);
  if (!docs) return docs.status().with_context("error parsing " + source);
  for (auto& d : *docs) {
    if (!d.is_object()) {
      return Status::invalid("error parsing " + source + ": a document is not an object");
    }
    std::string kind = d.value("kind", "");
    if (kind.ends_with("List") && d.contains("items") && d["items"].is_array()) {
      for (auto& item : d["items"]) out.push_back({source, std::move(item)});
    } else {
      out.push_back({source, std::move(d)});
    }
  }
  return Status::ok();
}

Result<std::string> slurp(std::istream& in, const std::string& name) {
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io("read " + name);
  return ss.str();
}

}  // namespace

Result<std::vector<Manifest>> read_manifests(const std::vector<std::string>& paths,
                                             std::istream& in) {
  std::vector<Manifest> out;
  for (const auto& p : paths) {
    if (p == "-") {
      auto text = slurp(in, "stdin");
      if (!text) return text.status();
      SKIFF_RETURN_IF_ERROR(add_documents(*text, "STDIN", out));
      continue;
    }
    std::error_code ec;
    std::vector<std::string> files;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::directory_iterator(p, ec)) {
        auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
          files.push_back(e.path().string());
        }
      }
      std::sort(files.begin(), files.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      return Status::not_found("the path \"" + p + "\" does not exist");
    }
    for (const auto& f : files) {
      std::ifstream file(f, std::ios::binary);
      if (!file) return Status::io("open " + f);
      auto text = slurp(file, f);
      if (!text) return text.status();
      SKIFF_RETURN_IF_ERROR(add_documents(*text, f, out));
    }
  }
  return out;
}

}  // namespace skiff::cli
