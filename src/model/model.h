// The one model interface: forward over a segment with an explicit recurrent state in and out.
// Invariant: State tensors are batch-first ([B, ...]) so a checkpoint can store and redistribute them by stream.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace recur {
class Config;
}

namespace recur::model {

// Recurrent state carried between segments (XL memories, later BRT states). Every tensor has the
// batch (stream) dimension first; an empty state means "start of stream".
struct State {
  std::map<std::string, torch::Tensor> tensors;
  bool empty() const { return tensors.empty(); }
  State detached() const;
  // Rows [begin, end) of every tensor (for handing streams between ranks).
  State rows(int64_t begin, int64_t end) const;
};

struct ForwardResult {
  torch::Tensor logits;  // [B, T, V]; undefined where the model scores without them (adaptive softmax)
  torch::Tensor hidden;  // [B, T, d] before the output layer, set where logits are not (see output_nll)
  State state;           // the state after this segment (detached where the model carries it)
};

class LanguageModel : public torch::nn::Module {
 public:
  // tokens: [B, T] int64. `state` may be empty. Training vs evaluation follows is_training().
  virtual ForwardResult forward(const torch::Tensor& tokens, const State& state) = 0;
  virtual std::string type() const = 0;
  // Whether the model carries state across consecutive segments of a stream (ordered loader).
  virtual bool carries_state() const { return false; }
  // Evaluation-time settings (Transformer-XL: eval_mem_len, same_length, clamp_len); no-op by default.
  virtual void set_eval_settings(int64_t mem_len, bool same_length, int64_t clamp_len) {}
  // Learned RSA gates sigmoid(mu) per layer (empty for models without RSA heads).
  virtual std::vector<double> rsa_gates() { return {}; }
  // -log p(target) per position [B, T], fp32, from a forward's result: the cross-entropy of its logits
  // by default; models that leave logits undefined (adaptive softmax) score their hidden states.
  virtual torch::Tensor output_nll(const ForwardResult& out, const torch::Tensor& target);
};

// Builds the model named by model.type; `vocab_size` comes from the dataset's manifest. Throws a
// recur::Error for inconsistent settings (head counts, dilations, widths) before allocating anything.
std::shared_ptr<LanguageModel> make_model(const Config& config, int64_t vocab_size);

int64_t count_parameters(torch::nn::Module& module);

}  // namespace recur::model
