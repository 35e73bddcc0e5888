// See model.h: the interface's default scoring.
// Invariant: output_nll is fp32 whatever the autocast state, like the logits it starts from.
#include "model/model.h"

#include <torch/torch.h>

#include "core/error.h"
#include "model/precision.h"

namespace recur::model {

torch::Tensor LanguageModel::output_nll(const ForwardResult& out, const torch::Tensor& target) {
  if (!out.logits.defined()) fail("internal error: model {} returned no logits and scores no hidden states", type());
  Fp32Region fp32;
  const int64_t V = out.logits.size(-1);
  namespace F = torch::nn::functional;
  return F::cross_entropy(out.logits.to(torch::kFloat32).reshape({-1, V}), target.reshape({-1}),
                          F::CrossEntropyFuncOptions().reduction(torch::kNone))
      .view(target.sizes());
}

}  // namespace recur::model
