// Model FLOPs per trained token (forward + backward), counted from the shapes, as in the usual MFU
// accounting (Kaplan et al.; PaLM appendix B; nanoGPT's estimate_mfu):
//   forward = 2 x (parameters used as matrix operands, the output layer included, embeddings excluded)
//           + per layer, per head: 2 x d_head x keys for each score product (QK^T; XL adds the
//             relative-position product) and 2 x d_head x keys for the weighted sum of values,
//   training = 3 x forward (backward = 2 x forward).
// keys = train.tgt_len + model.mem_len (every key counted, as nanoGPT does, not halved for the causal
// mask). Element-wise work (softmax, LayerNorm, REMs, gates) is not counted. With adaptive softmax the
// output layer is its head (shortlist + cluster logits, and its projection); the tails and the adaptive
// input's projections, which apply to the tokens of one cluster each, are not counted.
#pragma once

#include <cstdint>
#include <string>

namespace recur {
class Config;
}
namespace recur::model {
class LanguageModel;
}

namespace recur::train {

struct FlopCount {
  double dense_params = 0;   // parameters used as matrix operands per token (output layer included)
  double attention = 0;      // forward attention FLOPs per token, all layers
  double forward = 0;        // forward FLOPs per token
  double train = 0;          // forward + backward FLOPs per token
};

FlopCount model_flops_per_token(model::LanguageModel& model, const Config& config, int64_t vocab);

// Dense peak TFLOP/s of a GPU for a precision ("bf16", "tf32": fp32 with train.tf32 on, "fp32": plain
// FP32), from its name (H100, H200, A100); 0 when unknown.
double peak_tflops(const std::string& device_name, const std::string& precision);

}  // namespace recur::train

#include <nlohmann/json.hpp>

namespace recur::train {

// `recur model info`: the model of a config at a vocabulary size, without data or training:
// {"model", "vocab", "parameters", "modules": {top-level module: parameters}, "non_embedding_parameters"
// (without the token and position embedding tables, as in Kaplan et al.'s N), "flops_per_token"
// (model_flops_per_token(...).train, the count `recur bench step` reports)}.
nlohmann::json model_info(const Config& config, int64_t vocab);

}  // namespace recur::train
