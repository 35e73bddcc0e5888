// The recurrent state's row and gradient views (model.h); checkpoints store it by stream.
// Invariant: every tensor is batch-first, so rows(begin, end) selects streams [begin, end).
#include <torch/torch.h>

#include "model/model.h"

namespace recur::model {

State State::detached() const {
  State s;
  for (const auto& [k, v] : tensors) s.tensors[k] = v.detach();
  return s;
}

State State::rows(int64_t begin, int64_t end) const {
  State s;
  for (const auto& [k, v] : tensors) s.tensors[k] = v.slice(0, begin, end);
  return s;
}

}  // namespace recur::model
