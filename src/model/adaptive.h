// Adaptive input and adaptive softmax (Baevski & Auli 2019; Grave et al. 2017) as the reference
// Transformer-XL builds them (AdaptiveEmbedding, ProjectedAdaptiveLogSoftmax), with its state_dict names.
// Invariant: output weights are the embedding's tables (tied), registered once, under word_emb; the
// softmax holds only what is its own (biases, cluster_weight/bias, untied projections, and with
// tie_weight = false its own output weights, out_layers.i.weight, as the reference's tie_weight=False).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace recur::model {

// The vocabulary is cut into clusters [0, c_0), [c_0, c_1), ..., [c_{n-1}, vocab): the head (shortlist)
// and n tail clusters. Cluster i's tables are d_embed / div_val^i wide (div_val = 1: one table for all).
struct AdaptiveOptions {
  int64_t vocab = 256;
  int64_t d_proj = 512;           // the model width
  int64_t d_embed = 512;          // width of the head cluster's table
  std::vector<int64_t> cutoffs;   // increasing, inside (0, vocab); empty = one cluster (a full softmax)
  int64_t div_val = 1;
  // The tail clusters' output projections are the adaptive input's (the head's stays its own): the
  // reference's WikiText-103 setting, tie_projs = [False] + [True] * n. false: none tied (its lm1b).
  bool tie_projs = true;
  // The output weights are the embedding's tables (true), or the softmax's own out_layers.i.weight of
  // the same shapes (false: an untied output layer; the biases are there either way).
  bool tie_weight = true;

  int64_t clusters() const { return static_cast<int64_t>(cutoffs.size()) + 1; }
  int64_t begin(int64_t i) const { return i == 0 ? 0 : cutoffs[i - 1]; }
  int64_t end(int64_t i) const { return i + 1 == clusters() ? vocab : cutoffs[i]; }
  int64_t width(int64_t i) const;
  // Whether cluster i has projections to and from d_proj: the reference gives every cluster one when
  // div_val > 1 (even one as wide as d_proj), and only a narrower table one when div_val = 1.
  bool projected() const { return div_val > 1 || d_embed != d_proj; }
};

// Throws a recur::Error naming the model.* key for cutoffs that do not increase inside the vocabulary,
// div_val < 1, or a cluster narrower than one unit.
void validate(const AdaptiveOptions& options);

// word_emb: emb_layers.i [size_i, width_i] (one table, emb_layers.0, when div_val = 1) and emb_projs.i
// [d_proj, width_i] where projected; output [..., d_proj] scaled by sqrt(d_proj). With div_val = 1 and
// d_embed = d_proj this is embedding(tokens) * sqrt(d).
class AdaptiveEmbeddingImpl : public torch::nn::Module {
 public:
  explicit AdaptiveEmbeddingImpl(AdaptiveOptions options);
  torch::Tensor forward(const torch::Tensor& tokens);
  // The rows of cluster i's tokens (div_val = 1: a slice of the one table) and the projection its
  // tokens use (div_val = 1: emb_projs.0); undefined where there is none.
  torch::Tensor weight(int64_t cluster = 0);
  torch::Tensor proj(int64_t cluster);
  const AdaptiveOptions& options() const { return options_; }

 private:
  AdaptiveOptions options_;
  double scale_;
  torch::nn::ModuleList emb_layers{nullptr};
  std::vector<torch::Tensor> projs_;  // registered as emb_projs.i
};
TORCH_MODULE(AdaptiveEmbedding);

// crit: out_layers.i.bias (div_val = 1: one bias over the vocabulary, out_layers.0), out_layers.i.weight
// shaped as the embedding's table i when not tied, out_projs.i
// [d_proj, width_i] where projected and not tied, cluster_weight [n, d_embed] and cluster_bias [n]
// when there are tail clusters. The head scores the shortlist and one logit per tail cluster; as in the
// reference, tail cluster i (1-based) is the head's column -i (cluster_weight row n - i).
class ProjectedAdaptiveLogSoftmaxImpl : public torch::nn::Module {
 public:
  // `embedding` provides the tied output weights and projections; it must outlive this module.
  ProjectedAdaptiveLogSoftmaxImpl(AdaptiveOptions options, AdaptiveEmbedding embedding);
  bool clustered() const { return options_.clusters() > 1; }
  // One cluster only: the logits [..., vocab] in fp32 (whatever the autocast state).
  torch::Tensor logits(const torch::Tensor& hidden);
  // -log p(target | hidden) per position, in fp32, shaped like target; hidden [..., d_proj]. Never
  // builds [positions, vocab]: the head for every position, each tail only for its own positions. The
  // tails' sizes are data-dependent, so this reads one small tensor (the cluster sizes) back to the host.
  torch::Tensor nll(const torch::Tensor& hidden, const torch::Tensor& target);

 private:
  torch::Tensor out_proj(int64_t cluster);
  torch::Tensor bias(int64_t cluster);
  torch::Tensor weight(int64_t cluster);  // the embedding's rows, or the untied out_layers' own
  // hidden [N, d_proj] -> cluster's logits [N, end - begin (+ n for the head)] in fp32.
  torch::Tensor cluster_logits(const torch::Tensor& hidden, int64_t cluster);

  AdaptiveOptions options_;
  AdaptiveEmbedding embedding_;
  torch::nn::ModuleList out_layers{nullptr};
  std::vector<torch::Tensor> projs_;  // own projections (registered as out_projs.i), undefined = none or tied
  torch::Tensor cluster_weight, cluster_bias;
};
TORCH_MODULE(ProjectedAdaptiveLogSoftmax);

}  // namespace recur::model
