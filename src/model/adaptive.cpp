// See adaptive.h. Positions are flattened to rows: hidden [N, d_proj], targets [N].
#include "model/adaptive.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "model/precision.h"

namespace recur::model {
namespace {

// A module that holds an output bias, so the parameter is named out_layers.i.bias (its weight is the
// embedding's table), and, untied, its own weight [n, width] (out_layers.i.weight).
class BiasImpl : public torch::nn::Module {
 public:
  BiasImpl(int64_t n, int64_t untied_width) {
    if (untied_width > 0) weight = register_parameter("weight", torch::empty({n, untied_width}));
    bias = register_parameter("bias", torch::zeros({n}));
  }
  torch::Tensor weight, bias;
};
TORCH_MODULE(Bias);

int64_t power(int64_t base, int64_t exponent) {
  int64_t r = 1;
  for (int64_t k = 0; k < exponent; ++k) r *= base;
  return r;
}

}  // namespace

int64_t AdaptiveOptions::width(int64_t i) const { return div_val == 1 ? d_embed : d_embed / power(div_val, i); }

void validate(const AdaptiveOptions& o) {
  if (o.vocab < 1 || o.d_proj < 1 || o.d_embed < 1) {
    fail("adaptive embedding needs vocab, d_proj and d_embed >= 1, got {}, {}, {}", o.vocab, o.d_proj, o.d_embed);
  }
  if (o.div_val < 1) fail("config error: model.div_val must be at least 1, got {}", o.div_val);
  int64_t prev = 0;
  for (int64_t c : o.cutoffs) {
    if (c <= prev || c >= o.vocab) {
      fail("config error: model.cutoffs [{}] must increase strictly inside the vocabulary (0, {})", fmt::join(o.cutoffs, ", "),
           o.vocab);
    }
    prev = c;
  }
  for (int64_t i = 0; i < o.clusters(); ++i) {
    if (o.div_val > 1 && (o.d_embed / power(o.div_val, i)) < 1) {
      fail("config error: model.div_val = {} leaves cluster {} of {} with width {} / {}^{} < 1", o.div_val, i, o.clusters(),
           o.d_embed, o.div_val, i);
    }
  }
}

// --- adaptive input -------------------------------------------------------------------------------

AdaptiveEmbeddingImpl::AdaptiveEmbeddingImpl(AdaptiveOptions o) : options_(std::move(o)) {
  validate(options_);
  scale_ = std::sqrt(static_cast<double>(options_.d_proj));
  emb_layers = register_module("emb_layers", torch::nn::ModuleList());
  const int64_t tables = options_.div_val == 1 ? 1 : options_.clusters();
  std::shared_ptr<torch::nn::Module> projs;
  if (options_.projected()) projs = register_module("emb_projs", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < tables; ++i) {
    const int64_t rows = tables == 1 ? options_.vocab : options_.end(i) - options_.begin(i);
    emb_layers->push_back(torch::nn::Embedding(rows, options_.width(i)));
    if (projs) projs_.push_back(projs->register_parameter(std::to_string(i), torch::empty({options_.d_proj, options_.width(i)})));
  }
}

torch::Tensor AdaptiveEmbeddingImpl::weight(int64_t i) {
  if (options_.div_val > 1) return emb_layers[i]->as<torch::nn::Embedding>()->weight;
  auto table = emb_layers[0]->as<torch::nn::Embedding>()->weight;
  return options_.clusters() == 1 ? table : table.slice(0, options_.begin(i), options_.end(i));
}

torch::Tensor AdaptiveEmbeddingImpl::proj(int64_t i) {
  if (projs_.empty()) return {};
  return projs_[options_.div_val == 1 ? 0 : i];
}

torch::Tensor AdaptiveEmbeddingImpl::forward(const torch::Tensor& tokens) {
  namespace F = torch::nn::functional;
  if (options_.div_val == 1) {
    auto e = emb_layers[0]->as<torch::nn::Embedding>()->forward(tokens);
    if (!projs_.empty()) e = F::linear(e, projs_[0]);
    return e * scale_;
  }
  // Every cluster's table is looked up for every token (its index clamped into range) and the rows of
  // other clusters are zeroed: no data-dependent shapes, so no read back to the host, and every table
  // takes part in every step (the same parameters get gradients on every rank).
  torch::Tensor sum;
  for (int64_t i = 0; i < options_.clusters(); ++i) {
    const int64_t lo = options_.begin(i), hi = options_.end(i);
    auto outside = (tokens.lt(lo) | tokens.ge(hi)).unsqueeze(-1);
    auto e = emb_layers[i]->as<torch::nn::Embedding>()->forward((tokens - lo).clamp(0, hi - lo - 1));
    e = F::linear(e, projs_[i]).masked_fill(outside, 0.0);
    sum = sum.defined() ? sum + e : e;
  }
  return sum * scale_;
}

// --- adaptive softmax -----------------------------------------------------------------------------

ProjectedAdaptiveLogSoftmaxImpl::ProjectedAdaptiveLogSoftmaxImpl(AdaptiveOptions o, AdaptiveEmbedding embedding)
    : options_(std::move(o)), embedding_(std::move(embedding)) {
  validate(options_);
  const int64_t n = options_.clusters() - 1;
  if (n > 0) {
    cluster_weight = register_parameter("cluster_weight", torch::empty({n, options_.d_embed}));
    cluster_bias = register_parameter("cluster_bias", torch::zeros({n}));
  }
  out_layers = register_module("out_layers", torch::nn::ModuleList());
  if (options_.div_val == 1) {
    out_layers->push_back(Bias(options_.vocab, options_.tie_weight ? 0 : options_.width(0)));
  } else {
    for (int64_t i = 0; i <= n; ++i) {
      out_layers->push_back(Bias(options_.end(i) - options_.begin(i), options_.tie_weight ? 0 : options_.width(i)));
    }
  }
  projs_.resize(static_cast<size_t>(n + 1));
  if (!options_.projected()) return;
  auto projs = register_module("out_projs", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i <= n; ++i) {
    if (i > 0 && options_.tie_projs) continue;  // the embedding's (see proj())
    projs_[i] = projs->register_parameter(std::to_string(i), torch::empty({options_.d_proj, options_.width(i)}));
  }
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::out_proj(int64_t i) {
  return projs_[i].defined() ? projs_[i] : embedding_->proj(i);
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::bias(int64_t i) {
  if (options_.div_val > 1) return out_layers[i]->as<BiasImpl>()->bias;
  auto b = out_layers[0]->as<BiasImpl>()->bias;
  return clustered() ? b.slice(0, options_.begin(i), options_.end(i)) : b;
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::weight(int64_t i) {
  if (options_.tie_weight) return embedding_->weight(i);
  if (options_.div_val > 1) return out_layers[i]->as<BiasImpl>()->weight;
  auto w = out_layers[0]->as<BiasImpl>()->weight;
  return clustered() ? w.slice(0, options_.begin(i), options_.end(i)) : w;
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::cluster_logits(const torch::Tensor& hidden, int64_t i) {
  auto weight = this->weight(i);
  auto b = bias(i);
  if (i == 0 && clustered()) {
    weight = torch::cat({weight, cluster_weight}, 0);
    b = torch::cat({b, cluster_bias}, 0);
  }
  // The projection maps d_proj to the cluster's width: hidden @ proj, proj [d_proj, width].
  auto proj = out_proj(i);
  auto h = proj.defined() ? linear_fp32(hidden, proj.t()) : hidden;
  return linear_fp32(h, weight, b);
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::logits(const torch::Tensor& hidden) {
  if (clustered()) fail("internal error: adaptive softmax with {} clusters has no single logit matrix", options_.clusters());
  return cluster_logits(hidden, 0);
}

torch::Tensor ProjectedAdaptiveLogSoftmaxImpl::nll(const torch::Tensor& hidden_in, const torch::Tensor& target) {
  Fp32Region fp32;
  auto hidden = hidden_in.reshape({-1, options_.d_proj});
  auto y = target.reshape({-1});
  if (hidden.size(0) != y.size(0)) {
    fail("internal error: adaptive softmax got {} hidden rows for {} targets", hidden.size(0), y.size(0));
  }
  auto gather = [](const torch::Tensor& logprob, const torch::Tensor& column) {
    return logprob.gather(1, column.unsqueeze(1)).squeeze(1);
  };
  if (!clustered()) return -gather(torch::log_softmax(cluster_logits(hidden, 0), 1), y).view(target.sizes());

  const int64_t n = options_.clusters() - 1, head_size = options_.cutoffs[0] + n;
  auto cluster = torch::zeros_like(y);  // cluster index of each target
  for (int64_t c : options_.cutoffs) cluster = cluster + y.ge(c).to(y.scalar_type());
  // Head: a shortlist token's own column; a tail token's cluster column -i, i.e. head_size - i.
  auto column = torch::where(cluster.eq(0), y, head_size - cluster);
  auto logprob = gather(torch::log_softmax(cluster_logits(hidden, 0), 1), column);

  // Tails: positions sorted by cluster, sliced by the cluster sizes (the one read back to the host).
  // An empty cluster still runs (on zero rows), so its parameters get a (zero) gradient on every rank.
  auto order = std::get<1>(torch::sort(cluster, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto sizes = torch::bincount(cluster, {}, n + 1).to(torch::kCPU);
  const int64_t* count = sizes.data_ptr<int64_t>();
  std::vector<torch::Tensor> rows, tail;
  int64_t start = count[0];
  for (int64_t i = 1; i <= n; ++i) {
    auto r = order.slice(0, start, start + count[i]);
    start += count[i];
    auto logits = cluster_logits(hidden.index_select(0, r), i);
    tail.push_back(gather(torch::log_softmax(logits, 1), y.index_select(0, r) - options_.begin(i)));
    rows.push_back(r);
  }
  auto tail_logprob = torch::zeros_like(logprob).index_copy(0, torch::cat(rows), torch::cat(tail));
  return -(logprob + tail_logprob).view(target.sizes());
}

}  // namespace recur::model
