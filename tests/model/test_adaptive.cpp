// Adaptive input and adaptive softmax (model/adaptive.h) against the full softmax, a per-token product
// of head and tail probabilities, and the reference's parameter names (Table 7's WikiText-103 counts:
// test_table7.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "model/adaptive.h"
#include "model/model.h"

namespace recur::model {
namespace {

namespace F = torch::nn::functional;
using ::testing::HasSubstr;

// An adaptive input and the softmax tied to it, every parameter random (biases and cluster logits too,
// so that no term of the comparison is trivially zero).
struct Adaptive {
  explicit Adaptive(AdaptiveOptions o) : options(o), emb(o), crit(o, emb) {
    torch::NoGradGuard no_grad;
    torch::manual_seed(11);
    for (auto& p : emb->parameters()) p.normal_(0.0, 0.5);
    for (auto& p : crit->parameters()) p.normal_(0.0, 0.5);
  }
  std::map<std::string, torch::Tensor> params() {
    std::map<std::string, torch::Tensor> m;
    for (const auto& p : emb->named_parameters()) m["word_emb." + p.key()] = p.value();
    for (const auto& p : crit->named_parameters()) m["crit." + p.key()] = p.value();
    return m;
  }
  AdaptiveOptions options;
  AdaptiveEmbedding emb;
  ProjectedAdaptiveLogSoftmax crit;
};

AdaptiveOptions options(int64_t div_val, bool tie_projs, int64_t d_embed = 12) {
  AdaptiveOptions o;
  o.vocab = 30;
  o.d_proj = 12;
  o.d_embed = d_embed;
  o.cutoffs = {10, 18, 25};
  o.div_val = div_val;
  o.tie_projs = tie_projs;
  return o;
}

// The full [N, vocab] log-distribution written out from the parameters by their reference names, as
// ProjectedAdaptiveLogSoftmax.forward defines it: shortlist words from the head; a word of tail
// cluster i from the head's column -i plus the tail's log-softmax.
torch::Tensor full_log_probs(Adaptive& a, const torch::Tensor& hidden) {
  auto p = a.params();
  const auto& o = a.options;
  const int64_t n = static_cast<int64_t>(o.cutoffs.size()), H = o.cutoffs[0] + n;
  const bool projected = o.div_val > 1 || o.d_embed != o.d_proj;
  auto weight = [&](int64_t i) {
    if (o.div_val > 1) return p.at("word_emb.emb_layers." + std::to_string(i) + ".weight");
    return p.at("word_emb.emb_layers.0.weight").slice(0, o.begin(i), o.end(i));
  };
  auto bias = [&](int64_t i) {
    if (o.div_val > 1) return p.at("crit.out_layers." + std::to_string(i) + ".bias");
    return p.at("crit.out_layers.0.bias").slice(0, o.begin(i), o.end(i));
  };
  auto project = [&](const torch::Tensor& h, int64_t i) {
    if (!projected) return h;
    std::string own = "crit.out_projs." + std::to_string(i);
    std::string tied = "word_emb.emb_projs." + std::to_string(o.div_val == 1 ? 0 : i);
    return torch::matmul(h, i > 0 && o.tie_projs ? p.at(tied) : p.at(own));
  };
  auto head = torch::log_softmax(torch::matmul(project(hidden, 0), torch::cat({weight(0), p.at("crit.cluster_weight")}).t()) +
                                     torch::cat({bias(0), p.at("crit.cluster_bias")}),
                                 1);
  std::vector<torch::Tensor> parts{head.slice(1, 0, o.cutoffs[0])};
  for (int64_t i = 1; i <= n; ++i) {
    auto tail = torch::log_softmax(torch::matmul(project(hidden, i), weight(i).t()) + bias(i), 1);
    parts.push_back(head.slice(1, H - i, H - i + 1) + tail);
  }
  return torch::cat(parts, 1);
}

TEST(AdaptiveSoftmax, OneClusterIsTheFullSoftmax) {
  for (int64_t d_embed : {12, 8}) {  // 8: the output goes through out_projs.0
    AdaptiveOptions o = options(1, true, d_embed);
    o.cutoffs.clear();
    Adaptive a(o);
    auto hidden = torch::randn({2, 5, 12});
    auto target = torch::randint(30, {2, 5}, torch::kInt64);
    auto h = d_embed == 12 ? hidden : torch::matmul(hidden, a.params().at("crit.out_projs.0"));
    auto logits = F::linear(h, a.emb->weight(), a.params().at("crit.out_layers.0.bias"));
    auto ce = F::cross_entropy(logits.reshape({-1, 30}), target.reshape({-1}), F::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto nll = a.crit->nll(hidden, target);
    EXPECT_EQ(nll.sizes(), target.sizes());
    EXPECT_EQ(nll.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(nll.reshape({-1}), ce, 1e-5, 1e-6)) << d_embed;
    EXPECT_TRUE(torch::allclose(a.crit->logits(hidden), logits, 1e-5, 1e-6)) << d_embed;
  }
}

TEST(AdaptiveSoftmax, ClustersAreHeadTimesTailProbabilities) {
  for (int64_t div_val : {1, 2}) {
    for (bool tie : {true, false}) {
      Adaptive a(options(div_val, tie));
      EXPECT_THROW(a.crit->logits(torch::randn({1, 12})), Error);
      // Targets in every cluster, at both ends of each.
      auto target = torch::tensor({0, 9, 10, 17, 18, 24, 25, 29, 3, 21}, torch::kInt64);
      auto hidden = torch::randn({target.size(0), 12});
      auto nll = a.crit->nll(hidden, target);
      // Per token, in double: p(w) = p_head(w) for the shortlist, p_head(cluster column) p_tail(w) after it.
      auto p = a.params();
      const auto& o = a.options;
      auto d = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64); };
      auto softmax = [](const torch::Tensor& s) { return (s - s.max()).exp() / (s - s.max()).exp().sum(); };
      for (int64_t r = 0; r < target.size(0); ++r) {
        const int64_t w = target[r].item<int64_t>();
        int64_t cluster = 0;
        while (cluster < 3 && w >= o.cutoffs[cluster]) ++cluster;
        auto proj = [&](int64_t i) -> torch::Tensor {
          if (div_val == 1) return torch::eye(12, torch::kFloat64);
          if (i > 0 && tie) return d(p.at("word_emb.emb_projs." + std::to_string(i)));
          return d(p.at("crit.out_projs." + std::to_string(i)));
        };
        auto table = [&](int64_t i) {
          if (div_val == 1) return d(p.at("word_emb.emb_layers.0.weight")).slice(0, o.begin(i), o.end(i));
          return d(p.at("word_emb.emb_layers." + std::to_string(i) + ".weight"));
        };
        auto bias = [&](int64_t i) {
          if (div_val == 1) return d(p.at("crit.out_layers.0.bias")).slice(0, o.begin(i), o.end(i));
          return d(p.at("crit.out_layers." + std::to_string(i) + ".bias"));
        };
        auto h = d(hidden[r]);
        auto head_scores = torch::cat({torch::mv(table(0), torch::mv(proj(0).t(), h)) + bias(0),
                                       torch::mv(d(p.at("crit.cluster_weight")), torch::mv(proj(0).t(), h)) + d(p.at("crit.cluster_bias"))});
        auto head = softmax(head_scores);
        double prob = 0;
        if (cluster == 0) {
          prob = head[w].item<double>();
        } else {
          auto tail = softmax(torch::mv(table(cluster), torch::mv(proj(cluster).t(), h)) + bias(cluster));
          prob = head[head.size(0) - cluster].item<double>() * tail[w - o.begin(cluster)].item<double>();
        }
        EXPECT_NEAR(nll[r].item<double>(), -std::log(prob), 2e-5) << "div_val " << div_val << " tie " << tie << " word " << w;
      }
    }
  }
}

TEST(AdaptiveSoftmax, DistributionSumsToOne) {
  Adaptive a(options(2, true));
  auto hidden = torch::randn({1, 12}).expand({30, 12});
  auto every_word = torch::arange(30, torch::kInt64);
  EXPECT_NEAR(a.crit->nll(hidden, every_word).neg().exp().sum().item<double>(), 1.0, 1e-5);
}

TEST(AdaptiveSoftmax, GradientsEqualTheFullSoftmaxFormulation) {
  for (int64_t div_val : {1, 2}) {
    for (bool tie : {true, false}) {
      Adaptive a(options(div_val, tie, div_val == 1 ? 8 : 12));
      // No target in the last cluster: its parameters still get a (zero) gradient, so every rank of a
      // data-parallel run reduces the same set of gradients.
      auto target = torch::tensor({{0, 9, 10, 17}, {18, 24, 3, 12}}, torch::kInt64);
      auto weight = torch::rand({2, 4});
      auto hidden = torch::randn({2, 4, 12}, torch::requires_grad());
      (a.crit->nll(hidden, target) * weight).sum().backward();
      std::map<std::string, torch::Tensor> grads;  // undefined: a parameter the softmax does not use
      for (auto& [name, t] : a.params()) {
        grads[name] = t.grad().defined() ? t.grad().clone() : torch::Tensor();
        t.mutable_grad() = torch::Tensor();
      }
      auto hidden_grad = hidden.grad().clone();
      hidden.mutable_grad() = torch::Tensor();
      auto naive = -full_log_probs(a, hidden.reshape({-1, 12})).gather(1, target.reshape({-1, 1})).squeeze(1);
      (naive * weight.reshape({-1})).sum().backward();
      const std::string where = "div_val " + std::to_string(div_val) + " tie " + std::to_string(tie);
      EXPECT_TRUE(torch::allclose(hidden_grad, hidden.grad(), 1e-4, 1e-6)) << where;
      for (auto& [name, t] : a.params()) {
        ASSERT_EQ(grads[name].defined(), t.grad().defined()) << where << " " << name;
        if (t.grad().defined()) EXPECT_TRUE(torch::allclose(grads[name], t.grad(), 1e-4, 1e-6)) << where << " " << name;
      }
      if (div_val == 2) {
        ASSERT_TRUE(grads["crit.out_layers.3.bias"].defined());
        EXPECT_EQ(grads["crit.out_layers.3.bias"].abs().sum().item<double>(), 0.0);
      }
    }
  }
}

TEST(AdaptiveEmbedding, DivValOneIsTheScaledTable) {
  AdaptiveOptions o = options(1, true);
  Adaptive a(o);
  std::set<std::string> names;
  for (const auto& p : a.emb->named_parameters()) names.insert(p.key());
  EXPECT_EQ(names, std::set<std::string>{"emb_layers.0.weight"});
  auto tokens = torch::randint(30, {3, 7}, torch::kInt64);
  auto table = a.params().at("word_emb.emb_layers.0.weight");
  EXPECT_TRUE(torch::equal(a.emb->forward(tokens), F::embedding(tokens, table) * std::sqrt(12.0)));
}

TEST(AdaptiveEmbedding, DivValClustersHaveNarrowerTablesAndProjections) {
  AdaptiveOptions o = options(2, true, 16);
  Adaptive a(o);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : a.emb->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  std::map<std::string, std::vector<int64_t>> expected = {
      {"emb_layers.0.weight", {10, 16}}, {"emb_layers.1.weight", {8, 8}}, {"emb_layers.2.weight", {7, 4}},
      {"emb_layers.3.weight", {5, 2}},   {"emb_projs.0", {12, 16}},       {"emb_projs.1", {12, 8}},
      {"emb_projs.2", {12, 4}},          {"emb_projs.3", {12, 2}}};
  EXPECT_EQ(shapes, expected);
  auto tokens = torch::tensor({{0, 9, 10, 17}, {18, 24, 25, 29}}, torch::kInt64);
  auto out = a.emb->forward(tokens);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 4, 12}));
  auto p = a.params();
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < 4; ++t) {
      const int64_t w = tokens[r][t].item<int64_t>();
      int64_t i = 0;
      while (i < 3 && w >= o.cutoffs[i]) ++i;
      auto row = p.at("word_emb.emb_layers." + std::to_string(i) + ".weight")[w - o.begin(i)];
      auto want = torch::mv(p.at("word_emb.emb_projs." + std::to_string(i)), row) * std::sqrt(12.0);
      EXPECT_TRUE(torch::allclose(out[r][t], want, 1e-5, 1e-6)) << "word " << w;
    }
  }
}

TEST(AdaptiveOptions, InvalidSettingsAreClearErrors) {
  auto error_of = [](AdaptiveOptions o) {
    try {
      validate(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  AdaptiveOptions o = options(1, true);
  EXPECT_EQ(error_of(o), "");
  o.cutoffs = {10, 10};
  EXPECT_THAT(error_of(o), HasSubstr("model.cutoffs"));
  o.cutoffs = {10, 30};
  EXPECT_THAT(error_of(o), HasSubstr("inside the vocabulary (0, 30)"));
  o = options(8, true);
  EXPECT_THAT(error_of(o), HasSubstr("model.div_val = 8"));
}

// Parameter names of whole models, as in the reference's state_dict: tied weights are registered once
// (under word_emb), so the softmax shows only its biases, cluster logits and untied projections.
std::set<std::string> names_of(const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"model.type=xl", "model.n_layer=1", "model.n_head=2", "model.d_model=16",
                                  "model.d_inner=32", "model.mem_len=4", "train.tgt_len=4"};
  all.insert(all.end(), sets.begin(), sets.end());
  auto model = make_model(Config::from_overrides(all), 30);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) {
    if (p.key().rfind("word_emb.", 0) == 0 || p.key().rfind("crit.", 0) == 0) names.insert(p.key());
  }
  return names;
}

TEST(AdaptiveModels, ParameterNamesFollowTheReference) {
  using Names = std::set<std::string>;
  EXPECT_EQ(names_of({}), (Names{"word_emb.emb_layers.0.weight", "crit.out_layers.0.bias"}));
  EXPECT_EQ(names_of({"model.cutoffs=[10,18,25]"}),
            (Names{"word_emb.emb_layers.0.weight", "crit.out_layers.0.bias", "crit.cluster_weight", "crit.cluster_bias"}));
  EXPECT_EQ(names_of({"model.cutoffs=[10,18]", "model.d_embed=8"}),
            (Names{"word_emb.emb_layers.0.weight", "word_emb.emb_projs.0", "crit.out_layers.0.bias", "crit.out_projs.0",
                   "crit.cluster_weight", "crit.cluster_bias"}));
  EXPECT_EQ(names_of({"model.cutoffs=[10,18]", "model.div_val=2"}),
            (Names{"word_emb.emb_layers.0.weight", "word_emb.emb_layers.1.weight", "word_emb.emb_layers.2.weight",
                   "word_emb.emb_projs.0", "word_emb.emb_projs.1", "word_emb.emb_projs.2", "crit.out_layers.0.bias",
                   "crit.out_layers.1.bias", "crit.out_layers.2.bias", "crit.out_projs.0", "crit.cluster_weight",
                   "crit.cluster_bias"}));
  auto untied = names_of({"model.cutoffs=[10,18]", "model.div_val=2", "model.tie_projs=false"});
  EXPECT_TRUE(untied.count("crit.out_projs.1") && untied.count("crit.out_projs.2"));
}

TEST(AdaptiveModels, ClusteredModelsReturnHiddenStatesAndScoreThem) {
  auto model = make_model(Config::from_overrides({"model.type=rsa_xl", "model.n_layer=2", "model.n_head=4",
                                                  "model.d_model=16", "model.d_inner=32", "model.mem_len=4",
                                                  "train.tgt_len=4", "model.n_rsa_heads=2",
                                                  "model.rem_types=[2,0,0,0,0,0]", "model.cutoffs=[10,18,25]"}),
                          30);
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(30, {3, 4}, torch::kInt64);
  auto out = model->forward(tokens, State());
  EXPECT_FALSE(out.logits.defined());
  EXPECT_EQ(out.hidden.sizes(), (std::vector<int64_t>{3, 4, 16}));
  auto nll = model->output_nll(out, tokens);
  EXPECT_EQ(nll.sizes(), tokens.sizes());
  EXPECT_EQ(nll.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(nll).all().item<bool>());
  EXPECT_GT(nll.min().item<double>(), 0.0);
  // Models without clusters: output_nll is the cross-entropy of the logits.
  auto plain = make_model(Config::from_overrides({"model.type=xl", "model.n_layer=1", "model.d_model=16", "model.n_head=2",
                                                  "model.d_inner=32", "train.tgt_len=4", "model.mem_len=4"}),
                          30);
  plain->eval();
  auto p = plain->forward(tokens, State());
  auto ce = F::cross_entropy(p.logits.reshape({-1, 30}), tokens.reshape({-1}), F::CrossEntropyFuncOptions().reduction(torch::kNone));
  EXPECT_TRUE(torch::allclose(plain->output_nll(p, tokens).reshape({-1}), ce));
}

TEST(AdaptiveModels, OtherFamiliesRejectAdaptiveSettings) {
  for (const std::string type : {"r_transformer", "recurrent_transformer"}) {
    std::string error;
    try {
      make_model(Config::from_overrides({"model.type=" + type, "model.pos_enc=none", "model.cutoffs=[10]"}), 30);
    } catch (const Error& e) {
      error = e.what();
    }
    EXPECT_THAT(error, HasSubstr("model.cutoffs")) << type;
  }
}

}  // namespace
}  // namespace recur::model
