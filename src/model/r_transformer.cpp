// See r_transformer.h. Batch-first: tokens [B, T], hidden [B, T, d].
#include "model/r_transformer.h"
#include "model/precision.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace recur::model {

LocalRnnImpl::LocalRnnImpl(int64_t d, int64_t window, RnnCell cell) : window_(window), cell_(cell) {
  if (window < 1) fail("LocalRNN window must be at least 1");
  if (cell == RnnCell::kGru) gru = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(d, d).batch_first(true)));
  if (cell == RnnCell::kLstm) lstm = register_module("rnn", torch::nn::LSTM(torch::nn::LSTMOptions(d, d).batch_first(true)));
  if (cell == RnnCell::kRnn) rnn = register_module("rnn", torch::nn::RNN(torch::nn::RNNOptions(d, d).batch_first(true)));
}

torch::Tensor LocalRnnImpl::run(const torch::Tensor& in) {
  // fp32 under bf16 autocast: CUDA autocast would run cuDNN's RNN in fp16 (precision.h).
  Fp32Region fp32;
  const torch::Tensor seqs = in.scalar_type() == torch::kFloat32 ? in : in.to(torch::kFloat32);
  if (cell_ == RnnCell::kGru) return std::get<0>(gru->forward(seqs));
  if (cell_ == RnnCell::kLstm) return std::get<0>(lstm->forward(seqs));
  return std::get<0>(rnn->forward(seqs));
}

torch::Tensor LocalRnnImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), k = window_;
  // [B, k-1 + T, d] -> windows [B, T, d, k] (unfold puts the window last) -> [B*T, k, d]
  auto padded = torch::cat({torch::zeros({B, k - 1, d}, x.options()), x}, 1);
  auto windows = padded.unfold(1, k, 1).permute({0, 1, 3, 2}).reshape({B * T, k, d});
  auto out = run(windows);  // [B*T, k, d]
  return out.select(1, k - 1).reshape({B, T, d});
}

namespace {

// x + Dropout(F(LN(x))) around multi-head causal attention with biased q/k/v/out projections and
// dropout on the attention probabilities (the reference's MHPooling).
class MhaSublayerImpl : public torch::nn::Module {
 public:
  MhaSublayerImpl(int64_t d, int64_t heads, double dropout, AttentionKernel kernel) : heads_(heads), kernel_(kernel) {
    if (d % heads != 0) fail("config error: model.d_model = {} is not divisible by model.n_head = {}", d, heads);
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    q = register_module("q", torch::nn::Linear(d, d));
    k = register_module("k", torch::nn::Linear(d, d));
    v = register_module("v", torch::nn::Linear(d, d));
    out = register_module("out", torch::nn::Linear(d, d));
    attn_drop = register_module("attn_drop", torch::nn::Dropout(dropout));
    drop = register_module("drop", torch::nn::Dropout(dropout));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2), dh = d / heads_;
    auto n = norm(x);
    auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads_, dh}).transpose(1, 2); };
    auto a = causal_attention(split(q(n)), split(k(n)), split(v(n)), attn_drop, kernel_).transpose(1, 2).reshape({B, T, d});
    return x + drop(out(a));
  }

 private:
  int64_t heads_;
  AttentionKernel kernel_;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, out{nullptr};
  torch::nn::Dropout attn_drop{nullptr}, drop{nullptr};
};
TORCH_MODULE(MhaSublayer);

class LevelImpl : public torch::nn::Module {
 public:
  LevelImpl(const RTransformerOptions& o) {
    const int64_t d = o.d_model;
    rnn_norm = register_module("rnn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    local_rnn = register_module("local_rnn", LocalRnn(d, o.window, o.cell));
    attn = register_module("attn", MhaSublayer(d, o.n_head, o.dropout, o.kernel));
    ff_norm = register_module("ff_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    ff = register_module("ff", torch::nn::Sequential(torch::nn::Linear(d, 4 * d), torch::nn::ReLU(),
                                                     torch::nn::Dropout(o.dropout), torch::nn::Linear(4 * d, d)));
    drop = register_module("drop", torch::nn::Dropout(o.dropout));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x + drop(local_rnn(rnn_norm(x)));
    x = attn(x);
    return x + drop(ff->forward(ff_norm(x)));
  }
  torch::nn::LayerNorm rnn_norm{nullptr}, ff_norm{nullptr};
  LocalRnn local_rnn{nullptr};
  MhaSublayer attn{nullptr};
  torch::nn::Sequential ff{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(Level);

}  // namespace

RTransformerLm::RTransformerLm(const RTransformerOptions& o) : o_(o) {
  torch::manual_seed(static_cast<uint64_t>(o.init_seed));
  encoder = register_module("encoder", torch::nn::Embedding(o.vocab_size, o.d_model));
  levels = register_module("levels", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.n_level; ++i) levels->push_back(Level(o));
  emb_drop = register_module("emb_drop", torch::nn::Dropout(o.emb_dropout));
  decoder_bias = register_parameter("decoder_bias", torch::zeros({o.vocab_size}));
  // The tied embedding as the reference initialises it; every other layer keeps PyTorch's default.
  torch::NoGradGuard ng;
  if (o.emb_init == EmbeddingInit::kUniform) encoder->weight.uniform_(-0.1, 0.1);
  else encoder->weight.normal_(0.0, 0.01);
}

LocalRnn RTransformerLm::local_rnn(int64_t level) { return levels[level]->as<LevelImpl>()->local_rnn; }

ForwardResult RTransformerLm::forward(const torch::Tensor& tokens, const State&) {
  auto h = emb_drop(encoder(tokens));
  for (const auto& level : *levels) h = level->as<LevelImpl>()->forward(h);
  ForwardResult out;
  out.logits = linear_fp32(h, encoder->weight, decoder_bias);  // tied output
  return out;
}

}  // namespace recur::model
