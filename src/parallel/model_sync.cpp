// See model_sync.h.
#include "parallel/model_sync.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/hash.h"
#include "parallel/communicator.h"

namespace recur::parallel {
namespace {

int64_t fingerprint(const std::string& text) {
  Hasher h;
  h.update(text.data(), text.size());
  return static_cast<int64_t>(h.digest() >> 1);
}

}  // namespace

void check_same_model(torch::nn::Module& module, Communicator& comm) {
  std::string layout;
  for (const auto& p : module.named_parameters()) layout += p.key() + ":" + c10::str(p.value().sizes()) + ";";
  for (const auto& b : module.named_buffers()) layout += b.key() + ":" + c10::str(b.value().sizes()) + ";";
  auto mine = torch::tensor({fingerprint(layout), static_cast<int64_t>(module.parameters().size())}, torch::kInt64);
  auto all = comm.all_gather(mine);
  for (int r = 0; r < comm.world_size(); ++r) {
    if (!torch::equal(all[r], all[0])) {
      fail("rank {}: the model on rank {} differs from rank 0's ({} vs {} parameter tensors, or different names/shapes); "
           "start every rank with the same config",
           comm.rank(), r, all[r][1].item<int64_t>(), all[0][1].item<int64_t>());
    }
  }
}

void broadcast_module(torch::nn::Module& module, Communicator& comm, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) comm.broadcast(p, root);
  for (auto& b : module.buffers()) comm.broadcast(b, root);
}

bool ranks_hold_same_parameters(torch::nn::Module& module, Communicator& comm) {
  Hasher h;
  for (const auto& p : module.parameters()) {
    auto c = p.detach().contiguous().cpu();
    h.update(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  auto mine = torch::tensor({static_cast<int64_t>(h.digest() >> 1)}, torch::kInt64);
  auto all = comm.all_gather(mine);
  return torch::all(all.eq(mine)).item<bool>();
}

}  // namespace recur::parallel
