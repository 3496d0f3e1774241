#include "netagent/nft/masquerade.h"

namespace skiff::nft {

Status sync_masquerade(std::string_view) {
  return Status::internal("nft sync_masquerade: not implemented yet");
}

Status delete_skiff_table() {
  return Status::internal("nft delete_skiff_table: not implemented yet");
}

}  // namespace skiff::nft
