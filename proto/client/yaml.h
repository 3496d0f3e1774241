// YAML <-> JSON for manifests, kubeconfigs and `-o yaml` output.
//
// Parsing follows the YAML 1.2 core schema the way Kubernetes' sigs.k8s.io/yaml does it: plain
// scalars become null, booleans, integers or floats when they look like one, quoted scalars are
// always strings. Emitting produces the block style kubectl prints (sorted keys, sequences not
// indented under their key, `|` blocks for multi-line strings, quotes only where needed).
// Pure functions; thread-safe.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace skiff::client {

// Parses every document of a (possibly multi-document, `---` separated) YAML stream; empty
// documents are skipped. JSON is valid YAML, so JSON input works too.
// On failure: Invalid with the line and column of the problem.
[[nodiscard]] Result<std::vector<nlohmann::json>> parse_yaml_documents(std::string_view text);

// One value in kubectl's YAML style, ending with a newline.
std::string to_yaml(const nlohmann::json& value);

}  // namespace skiff::client
