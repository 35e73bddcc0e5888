// The R-Transformer (Wang et al. 2019, seed 000): embedding -> embedding dropout -> N levels of
// [LocalRNN -> multi-head attention -> feed-forward], each sublayer x + Dropout(F(LN(x))), output
// tied to the embedding (no dropout before it, as the reference).
// Invariant: no position encoding anywhere (no position parameters, no position input): order
// enters only through the LocalRNN and the causal mask. No maximum sequence length.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/pimpl.h>

#include "model/attention.h"
#include "model/model.h"

namespace recur::model {

enum class RnnCell { kGru, kLstm, kRnn };

// The reference's two embedding initialisations: uniform(-0.1, 0.1) in its character model,
// N(0, 0.01) in its word model.
enum class EmbeddingInit { kUniform, kNormal };

struct RTransformerOptions {
  int64_t vocab_size = 256;
  int64_t d_model = 512;
  int64_t n_level = 3;
  int64_t n_head = 8;
  int64_t window = 7;  // k
  RnnCell cell = RnnCell::kGru;
  double dropout = 0.15;      // sublayer outputs, the feed-forward's hidden layer, attention probabilities
  double emb_dropout = 0.15;  // on the embedding output
  EmbeddingInit emb_init = EmbeddingInit::kUniform;
  int64_t init_seed = 1;
  AttentionKernel kernel = AttentionKernel::kAuto;  // model.attention_kernel (see attention.h)
};

// For every position t: a single-layer RNN from a zero state over [x_{t-k+1} .. x_t] (zeros before the
// start), keeping its last output. All B*T windows run as one batch of sequences of length k.
class LocalRnnImpl : public torch::nn::Module {
 public:
  LocalRnnImpl(int64_t d_model, int64_t window, RnnCell cell);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, d] -> [B, T, d]
  // The RNN over one sequence [N, L, d] from a zero state: outputs [N, L, d] (for tests).
  torch::Tensor run(const torch::Tensor& seqs);
  int64_t window() const { return window_; }

 private:
  int64_t window_;
  RnnCell cell_;
  torch::nn::GRU gru{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::RNN rnn{nullptr};
};
TORCH_MODULE(LocalRnn);

class RTransformerLm : public LanguageModel {
 public:
  explicit RTransformerLm(const RTransformerOptions& options);
  ForwardResult forward(const torch::Tensor& tokens, const State& state) override;
  std::string type() const override { return "r_transformer"; }
  LocalRnn local_rnn(int64_t level);

 private:
  RTransformerOptions o_;
  torch::nn::Embedding encoder{nullptr};
  torch::nn::ModuleList levels{nullptr};
  torch::nn::Dropout emb_drop{nullptr};
  torch::Tensor decoder_bias;
};

}  // namespace recur::model
