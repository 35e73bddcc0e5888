// See recurrent_transformer.h.
#include "model/recurrent_transformer.h"
#include "model/precision.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace recur::model {

BiasFreeLayerNormImpl::BiasFreeLayerNormImpl(int64_t d) { weight = register_parameter("weight", torch::ones({d})); }

torch::Tensor BiasFreeLayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, /*bias=*/{}, /*eps=*/1e-5);
}

BlockImpl::BlockImpl(int64_t d, int64_t n_head, double dropout, AttentionKernel kernel) : n_head_(n_head), kernel_(kernel) {
  if (d % n_head != 0) fail("config error: model.d_model = {} is not divisible by model.n_head = {}", d, n_head);
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  ln_1 = register_module("ln_1", BiasFreeLayerNorm(d));
  ln_2 = register_module("ln_2", BiasFreeLayerNorm(d));
  attn = register_module("attn", std::make_shared<torch::nn::Module>());
  c_attn = attn->register_module("c_attn", linear(d, 3 * d));
  attn_proj = attn->register_module("c_proj", linear(d, d));
  mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  c_fc = mlp->register_module("c_fc", linear(d, 4 * d));
  mlp_proj = mlp->register_module("c_proj", linear(4 * d, d));
  attn_dropout = register_module("attn_dropout", torch::nn::Dropout(dropout));
  resid_dropout = register_module("resid_dropout", torch::nn::Dropout(dropout));
  mlp_dropout = register_module("mlp_dropout", torch::nn::Dropout(dropout));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), dh = d / n_head_;
  auto qkv = c_attn(ln_1(x)).view({B, L, 3, n_head_, dh});
  auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
  auto a = causal_attention(q, k, v, attn_dropout, kernel_).transpose(1, 2).reshape({B, L, d});
  auto y = x + resid_dropout(attn_proj(a));
  return y + mlp_dropout(mlp_proj(torch::gelu(c_fc(ln_2(y)))));
}

RecurrentTransformerLm::RecurrentTransformerLm(const RecurrentTransformerOptions& o) : o_(o) {
  if (o.window < 1) fail("config error: model.rt_window must be at least 1");
  torch::manual_seed(static_cast<uint64_t>(o.init_seed));
  auto transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  wte = transformer->register_module("wte", torch::nn::Embedding(o.vocab_size, o.d_model));
  if (o.learned_positions) wpe = transformer->register_module("wpe", torch::nn::Embedding(o.max_len, o.d_model));
  h = transformer->register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.n_layer; ++i) h->push_back(Block(o.d_model, o.n_head, o.dropout, o.kernel));
  ln_f = transformer->register_module("ln_f", BiasFreeLayerNorm(o.d_model));
  drop = register_module("drop", torch::nn::Dropout(o.dropout));
  // nanoGPT's initialisation: LayerNorm gains 1; embeddings and Linear weights N(0, 0.02), the residual
  // projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2 n_layer)) (GPT-2's scaled init).
  torch::NoGradGuard ng;
  for (auto& item : named_parameters()) {
    const std::string& n = item.key();
    if (n.find("ln_") != std::string::npos) continue;
    const bool proj = n.find("c_proj.weight") != std::string::npos;
    item.value().normal_(0.0, proj ? 0.02 / std::sqrt(2.0 * static_cast<double>(o.n_layer)) : 0.02);
  }
}

Block RecurrentTransformerLm::block(int64_t layer) { return Block(std::dynamic_pointer_cast<BlockImpl>(h[layer])); }

torch::Tensor RecurrentTransformerLm::recur_layer(Block& block, const torch::Tensor& x, int64_t w) {
  const int64_t B = x.size(0), N = x.size(1), d = x.size(2);
  auto chunk = [&](int64_t i) { return x.slice(1, i * w, std::min(N, (i + 1) * w)); };
  const int64_t n = (N + w - 1) / w;
  if (!torch::GradMode::is_enabled()) {
    // Inference: one output buffer and one window buffer for the whole sequence, written in place.
    auto out = torch::empty({B, N, d}, x.options());
    auto window = torch::empty({B, 2 * w, d}, x.options());
    auto hcur = block->forward(chunk(0));
    for (int64_t i = 0; i + 1 < n; ++i) {
      const int64_t a = hcur.size(1), b = chunk(i + 1).size(1);
      auto win = window.slice(1, 0, a + b);
      win.slice(1, 0, a).copy_(hcur);
      win.slice(1, a, a + b).copy_(chunk(i + 1));
      auto z = block->forward(win);
      out.slice(1, i * w, i * w + a).copy_(z.slice(1, 0, a));
      hcur = z.slice(1, a);  // z is a fresh tensor: the window buffer can be reused
    }
    out.slice(1, (n - 1) * w, N).copy_(block->forward(hcur));
    return out;
  }
  // Training: autograd keeps every step's window, so each step has its own; the outputs are joined once.
  std::vector<torch::Tensor> ys;
  ys.reserve(static_cast<size_t>(n));
  auto hcur = block->forward(chunk(0));
  for (int64_t i = 0; i + 1 < n; ++i) {
    const int64_t a = hcur.size(1);
    auto z = block->forward(torch::cat({hcur, chunk(i + 1)}, 1));
    ys.push_back(z.slice(1, 0, a));
    hcur = z.slice(1, a);
  }
  ys.push_back(block->forward(hcur));
  return torch::cat(ys, 1);
}

ForwardResult RecurrentTransformerLm::forward(const torch::Tensor& tokens, const State&) {
  const int64_t T = tokens.size(1);
  auto x = wte(tokens);
  if (!wpe.is_empty()) {
    if (T > o_.max_len) fail("segment of {} tokens exceeds model.max_len = {} learned positions", T, o_.max_len);
    x = x + wpe(torch::arange(T, tokens.options()));
  }
  x = drop(x);
  for (int64_t i = 0; i < o_.n_layer; ++i) {
    Block b = block(i);
    x = o_.recurrent ? recur_layer(b, x, o_.window) : b->forward(x);
  }
  ForwardResult out;
  out.logits = linear_fp32(ln_f(x), wte->weight);  // tied head, no bias (nanoGPT)
  return out;
}

}  // namespace recur::model
