// The attention language models against naive constructions: rel_shift, causality, XL memory,
// save -> load, and the configuration errors make_model must catch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "model/attention.h"
#include "model/lm.h"
#include "model/model.h"

namespace recur::model {
namespace {

using ::testing::HasSubstr;

Config tiny(const std::string& type, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"model.type=" + type, "model.n_layer=2", "model.n_head=4", "model.d_model=32",
                                   "model.d_inner=64", "model.dropout=0.0", "model.mem_len=8", "train.tgt_len=8"};
  if (type == "rsa_xl" || type == "rsa_transformer") {
    sets.insert(sets.end(), {"model.n_rsa_heads=3", "model.rem_types=[1,1,0,0,1,0]", "model.dilations=[2]"});
  }
  if (type == "tl_xl" || type == "fl_xl") sets.insert(sets.end(), {"model.n_rsa_heads=2", "model.rem_truncation=12"});
  if (type == "fl_xl") sets.push_back("model.fl_max_len=40");
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::from_overrides(sets);
}

const std::vector<std::string> kTypes = {"transformer", "rsa_transformer", "xl", "rsa_xl", "tl_xl", "fl_xl"};

std::string error_of(const Config& c) {
  try {
    make_model(c, 50);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RelShift, MatchesNaiveRelativeScores) {
  torch::manual_seed(0);
  const int64_t B = 2, H = 3, q = 5, M = 4, k = q + M;
  // x[b,h,i,r] is the score of query i against relative position (k-1-r).
  auto x = torch::randn({B, H, q, k}, torch::kFloat64);
  auto shifted = rel_shift(x);
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t j = 0; j <= i + M; ++j) {  // the visible band
      int64_t distance = M + i - j;
      int64_t r = k - 1 - distance;
      EXPECT_TRUE(torch::allclose(shifted.index({torch::indexing::Slice(), torch::indexing::Slice(), i, j}),
                                  x.index({torch::indexing::Slice(), torch::indexing::Slice(), i, r})))
          << "i=" << i << " j=" << j;
    }
  }
}

TEST(Models, CausalityEveryModel) {
  for (const auto& type : kTypes) {
    auto model = make_model(tiny(type), 50);
    model->eval();
    model->set_eval_settings(8, false, -1);
    torch::NoGradGuard no_grad;
    torch::manual_seed(1);
    auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
    State state;
    if (model->carries_state()) state = model->forward(torch::randint(50, {2, 8}, torch::kInt64), State()).state;
    auto base = model->forward(tokens, state).logits;
    for (int64_t t : {0, 3, 7}) {
      auto changed = tokens.clone();
      changed.index_put_({torch::indexing::Slice(), t}, (tokens.index({torch::indexing::Slice(), t}) + 1) % 50);
      auto logits = model->forward(changed, state).logits;
      if (t > 0) {
        EXPECT_TRUE(torch::allclose(logits.slice(1, 0, t), base.slice(1, 0, t), 1e-5, 1e-6)) << type << " t=" << t;
      }
      EXPECT_FALSE(torch::allclose(logits.slice(1, t, t + 1), base.slice(1, t, t + 1))) << type << " t=" << t;
    }
  }
}

TEST(Models, XlMemoryEqualsOneLongSegment) {
  for (const std::string type : {"xl", "rsa_xl", "tl_xl"}) {
    auto model = make_model(tiny(type, {"model.mem_len=24"}), 50);
    model->eval();
    model->set_eval_settings(24, false, -1);
    torch::NoGradGuard no_grad;
    torch::manual_seed(2);
    auto tokens = torch::randint(50, {3, 24}, torch::kInt64);
    auto whole = model->forward(tokens, State()).logits;
    State state;
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < 3; ++s) {
      auto out = model->forward(tokens.slice(1, 8 * s, 8 * s + 8), state);
      state = out.state;
      parts.push_back(out.logits);
    }
    EXPECT_TRUE(torch::allclose(torch::cat(parts, 1), whole, 1e-4, 1e-5)) << type;
    EXPECT_EQ(state.tensors.size(), 3u);  // L + 1 memories
    EXPECT_EQ(state.tensors.at("mems.0").size(1), 24);
  }
}

TEST(Models, SaveLoadReproducesLogits) {
  std::string path = "/tmp/recur-test-model-" + std::to_string(::getpid()) + ".pt";
  for (const auto& type : kTypes) {
    auto a = make_model(tiny(type), 50);
    auto b = make_model(tiny(type, {"train.seed=99"}), 50);
    a->eval();
    b->eval();
    torch::save(a, path);
    torch::load(b, path);
    torch::NoGradGuard no_grad;
    auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
    EXPECT_TRUE(torch::equal(a->forward(tokens, State()).logits, b->forward(tokens, State()).logits)) << type;
  }
  ::unlink(path.c_str());
}

TEST(Models, ParameterNamesFollowTheReference) {
  auto model = make_model(tiny("xl"), 50);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const char* n : {"word_emb.emb_layers.0.weight", "r_w_bias", "r_r_bias", "layers.0.dec_attn.qkv_net.weight",
                        "layers.0.dec_attn.o_net.weight", "layers.0.dec_attn.r_net.weight",
                        "layers.0.dec_attn.layer_norm.weight", "layers.0.dec_attn.layer_norm.bias",
                        "layers.1.pos_ff.CoreNet.0.weight", "layers.1.pos_ff.CoreNet.0.bias",
                        "layers.1.pos_ff.CoreNet.3.weight", "layers.1.pos_ff.CoreNet.3.bias",
                        "layers.1.pos_ff.layer_norm.weight", "crit.out_layers.0.bias"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  auto buffers = model->named_buffers();
  EXPECT_TRUE(buffers.contains("pos_emb.inv_freq"));
  auto rsa = make_model(tiny("rsa_xl"), 50);
  std::set<std::string> rsa_names;
  for (const auto& p : rsa->named_parameters()) rsa_names.insert(p.key());
  EXPECT_TRUE(rsa_names.count("layers.0.dec_attn.rem.mu"));
  EXPECT_EQ(rsa->rsa_gates().size(), 2u);
}

TEST(Models, InconsistentSettingsAreClearErrors) {
  EXPECT_THAT(error_of(tiny("rsa_xl", {"model.n_rsa_heads=2"})), HasSubstr("sums to 3"));
  EXPECT_THAT(error_of(tiny("rsa_xl", {"model.n_rsa_heads=5", "model.rem_types=[5,0,0,0,0,0]", "model.dilations=[]"})),
              HasSubstr("exceeds model.n_head"));
  EXPECT_THAT(error_of(tiny("rsa_xl", {"model.dilations=[]"})), HasSubstr("model.dilations"));
  EXPECT_THAT(error_of(tiny("xl", {"model.d_model=30"})), HasSubstr("not divisible"));
  EXPECT_THAT(error_of(tiny("xl", {"model.vocab_size=49"})), HasSubstr("vocabulary has 50"));
  EXPECT_THAT(error_of(tiny("xl", {"model.n_rsa_heads=2"})), HasSubstr("has no RSA heads"));
  EXPECT_THAT(error_of(tiny("rsa_xl", {"model.rem_types=[1,1,1]"})), HasSubstr("six counts"));
}

// model.tie_output: false gives the output layer its own weight beside the bias it always has, so the
// count grows by exactly V x d; the logits are then hidden . W^T + b with that W (checked with W = 0:
// every logit is its bias, whatever the embedding).
TEST(Models, UntiedOutputIsALinearWithBias) {
  const int64_t V = 50, d = 32;
  for (const std::string type : {"transformer", "rsa_transformer", "xl"}) {
    auto tied = make_model(tiny(type), V);
    auto untied = make_model(tiny(type, {"model.tie_output=false"}), V);
    EXPECT_EQ(count_parameters(*untied) - count_parameters(*tied), V * d) << type;
    auto params = untied->named_parameters();
    ASSERT_TRUE(params.contains("crit.out_layers.0.weight")) << type;
    EXPECT_EQ(params["crit.out_layers.0.weight"].sizes(), torch::IntArrayRef({V, d}));
    EXPECT_FALSE(tied->named_parameters().contains("crit.out_layers.0.weight"));
    {
      torch::NoGradGuard no_grad;
      params["crit.out_layers.0.weight"].zero_();
      params["crit.out_layers.0.bias"].copy_(torch::arange(V, torch::kFloat32) * 0.1);
    }
    untied->eval();
    auto tokens = torch::randint(0, V, {2, 8}, torch::kInt64);
    auto logits = untied->forward(tokens, State()).logits;
    auto expected = (torch::arange(V, torch::kFloat32) * 0.1).view({1, 1, V}).expand({2, 8, V});
    EXPECT_TRUE(torch::allclose(logits, expected)) << type;
    // Training the untied head leaves the embedding's gradient free of the output term: the output
    // weight gets its own gradient.
    untied->train();
    untied->forward(tokens, State()).logits.sum().backward();
    EXPECT_TRUE(params["crit.out_layers.0.weight"].grad().defined()) << type;
  }
  // Adaptive softmax untied: each cluster's table gets an output twin (one table with div_val 1).
  auto a_tied = make_model(tiny("xl", {"model.cutoffs=[20]", "model.div_val=2"}), V);
  auto a_untied = make_model(tiny("xl", {"model.cutoffs=[20]", "model.div_val=2", "model.tie_output=false"}), V);
  EXPECT_EQ(count_parameters(*a_untied) - count_parameters(*a_tied), 20 * 32 + 30 * 16);
  EXPECT_THAT(error_of(tiny("gpt", {"model.tie_output=false", "model.pos_enc=learned"})), HasSubstr("model.tie_output"));
  EXPECT_THAT(error_of(tiny("gpt", {"model.init=bhattamishra", "model.pos_enc=learned"})), HasSubstr("model.init"));
}

// model.init: bhattamishra against the formal-language code's TransformerModel: its init_weights
// (embedding and output weights U(-0.1, 0.1), output bias 0) over PyTorch's defaults (q/k/v Xavier-
// uniform on the packed [3d, d] projection, Linear U(+-1/sqrt(fan_in)), LayerNorm 1 and 0). Each
// range is checked both ways: nothing outside it, and the values fill it (a uniform, not a narrow normal).
TEST(Models, BhattamishraInitialisationRanges) {
  const int64_t V = 50, d = 32, inner = 64;
  auto model = make_model(tiny("rsa_transformer", {"model.init=bhattamishra", "model.tie_output=false"}), V);
  auto params = model->named_parameters();
  auto fills = [](const torch::Tensor& p, double bound, const std::string& name) {
    const double max = p.abs().max().item<double>();
    EXPECT_LE(max, bound) << name;
    EXPECT_GT(max, 0.9 * bound) << name;
    EXPECT_LT(std::abs(p.mean().item<double>()), 0.2 * bound) << name;
  };
  fills(params["word_emb.emb_layers.0.weight"], 0.1, "embedding");
  fills(params["crit.out_layers.0.weight"], 0.1, "output weight");
  EXPECT_EQ(params["crit.out_layers.0.bias"].abs().max().item<double>(), 0.0);
  fills(params["layers.0.dec_attn.qkv_net.weight"], std::sqrt(6.0 / (d + 3 * d)), "qkv (Xavier)");
  fills(params["layers.0.dec_attn.o_net.weight"], 1.0 / std::sqrt(d), "o_net");
  fills(params["layers.1.pos_ff.CoreNet.0.weight"], 1.0 / std::sqrt(d), "ff 1 weight");
  fills(params["layers.1.pos_ff.CoreNet.0.bias"], 1.0 / std::sqrt(d), "ff 1 bias");
  fills(params["layers.1.pos_ff.CoreNet.3.weight"], 1.0 / std::sqrt(inner), "ff 2 weight");
  fills(params["layers.1.pos_ff.CoreNet.3.bias"], 1.0 / std::sqrt(inner), "ff 2 bias");
  for (const char* ln : {"layers.0.dec_attn.layer_norm", "layers.1.pos_ff.layer_norm"}) {
    EXPECT_TRUE(torch::equal(params[std::string(ln) + ".weight"], torch::ones({d}))) << ln;
    EXPECT_TRUE(torch::equal(params[std::string(ln) + ".bias"], torch::zeros({d}))) << ln;
  }
  // The REM parameters keep their own initialisation: the same as under the normal scheme.
  auto normal = make_model(tiny("rsa_transformer", {"model.tie_output=false"}), V)->named_parameters();
  EXPECT_TRUE(torch::equal(params["layers.0.dec_attn.rem.eta"], normal["layers.0.dec_attn.rem.eta"]));
  // The normal scheme is unchanged: N(0, 0.02) for the embedding.
  EXPECT_LT(normal["word_emb.emb_layers.0.weight"].std().item<double>(), 0.03);
}

}  // namespace
}  // namespace recur::model

namespace recur::model {
namespace {

// XL without memory (the formal languages' "Transformer*"): same_length must not mask whole rows.
TEST(Models, XlWithoutMemoryIgnoresSameLength) {
  auto model = make_model(tiny("xl", {"model.mem_len=0"}), 50);
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
  model->set_eval_settings(0, /*same_length=*/true, -1);
  auto a = model->forward(tokens, State()).logits;
  model->set_eval_settings(0, /*same_length=*/false, -1);
  auto b = model->forward(tokens, State()).logits;
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
  EXPECT_TRUE(torch::equal(a, b));
}

// Without memory and without absolute positions, a string that starts with a run of one symbol gives
// the plain XL the same output at every position of that run: all keys and values are equal, so
// attention returns the same value whatever its weights (RSA heads' unnormalised REM sums do not). This caps the relative-only Transformer* on the formal
// languages (docs/results.md). model.initial_memory = zeros (HuggingFace's TransfoXLModel without mems)
// lets positions differ, and equals the same model handed mem_len zero memories explicitly.
TEST(Models, ZeroInitialMemoryTellsARunApartAndEqualsExplicitZeroMemories) {
  const std::vector<std::string> san_rel = {"model.mem_len=16", "model.same_length=true", "model.clamp_len=10"};
  for (const std::string type : {"xl", "rsa_xl"}) {
    torch::NoGradGuard no_grad;
    auto run = torch::full({2, 6}, 3, torch::kInt64);
    auto plain = make_model(tiny(type, {"model.mem_len=0"}), 50);
    plain->eval();
    plain->set_eval_settings(0, false, -1);
    auto p = plain->forward(run, State()).logits;
    for (int64_t t = 1; t < 6; ++t) {
      // RSA heads add P.V, an unnormalised sum over the run (lambda^k ...), which does tell positions apart
      const bool same = torch::allclose(p.select(1, t), p.select(1, 0), 1e-5, 1e-6);
      EXPECT_EQ(same, type == "xl") << type << " " << t;
    }

    auto cfg = san_rel;
    cfg.push_back("model.initial_memory=zeros");
    auto zeros = make_model(tiny(type, cfg), 50);
    auto given = make_model(tiny(type, san_rel), 50);  // same seed: same weights
    for (auto* m : {zeros.get(), given.get()}) {
      m->eval();
      m->set_eval_settings(16, true, 10);
    }
    auto z = zeros->forward(run, State()).logits;
    EXPECT_FALSE(torch::allclose(z.select(1, 1), z.select(1, 0), 1e-3, 1e-4)) << type;
    State explicit_zeros;
    for (int64_t i = 0; i <= 2; ++i) explicit_zeros.tensors["mems." + std::to_string(i)] = torch::zeros({2, 16, 32});
    EXPECT_TRUE(torch::allclose(z, given->forward(run, explicit_zeros).logits, 1e-5, 1e-6)) << type;
    auto tokens = torch::randint(50, {2, 6}, torch::kInt64);
    auto out = zeros->forward(tokens, State());
    EXPECT_TRUE(torch::allclose(out.logits, given->forward(tokens, explicit_zeros).logits, 1e-5, 1e-6)) << type;
    EXPECT_EQ(out.state.tensors.at("mems.0").size(1), 16);  // the zeros, then the segment, kept to mem_len
    // a carried state is used as it is: zeros only stand in for no state
    EXPECT_TRUE(torch::allclose(zeros->forward(tokens, out.state).logits, given->forward(tokens, out.state).logits, 1e-5, 1e-6));
    // the same in training mode
    zeros->train();
    given->train();
    EXPECT_TRUE(torch::allclose(zeros->forward(tokens, State()).logits, given->forward(tokens, explicit_zeros).logits, 1e-5, 1e-6));
  }
  EXPECT_THAT(error_of(tiny("transformer", {"model.initial_memory=zeros"})), HasSubstr("model.initial_memory = zeros"));
  EXPECT_THAT(error_of(tiny("xl", {"model.initial_memory=zeros", "model.mem_len=0"})), HasSubstr("set model.mem_len > 0"));
  EXPECT_THAT([] { tiny("xl", {"model.initial_memory=ones"}); }, ::testing::ThrowsMessage<Error>(HasSubstr("empty, zeros")));
}

}  // namespace
}  // namespace recur::model

// Seed 001's models (nanoGPT's GPT baseline and the recurrent transformer) and the R-Transformer as
// their reference code has them: parameter counts of the paper, no biases, initialisation, dropouts.
#include "model/r_transformer.h"
#include "model/recurrent_transformer.h"
#include "train/flops.h"

namespace recur::model {
namespace {

Config shipped(const std::string& name, std::vector<std::string> sets = {}) {
  sets.push_back("data.path=/nonexistent");
  return Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/models/" + name + ".yaml", sets);
}

// Table 2 of seed 001 at its settings (vocabulary 65, d 384, 6 heads, context 256): nanoGPT with
// bias = False, the learned position table included.
TEST(KausikModels, ParameterCountsAreTable2s) {
  const std::vector<std::pair<std::string, int64_t>> expected = {{"transformer_1l_gcide", 1893888},
                                                                 {"transformer_6l_gcide", 10745088},
                                                                 {"recurrent_transformer_gcide", 1893888},
                                                                 {"recurrent_transformer_nopos_gcide", 1893888 - 256 * 384}};
  for (const auto& [name, count] : expected) {
    Config c = shipped(name);
    EXPECT_EQ(train::model_info(c, 65)["parameters"].get<int64_t>(), count) << name;
    EXPECT_EQ(count_parameters(*make_model(c, 65)), count) << name;
  }
  EXPECT_EQ(make_model(shipped("transformer_1l_gcide"), 65)->type(), "gpt");
  EXPECT_EQ(make_model(shipped("transformer_6l_gcide"), 65)->type(), "gpt");
}

// nanoGPT's initialisation, and no biases anywhere (Linear or LayerNorm; the head is tied, bias-free).
TEST(KausikModels, NoBiasesAndNanoGptInitialisation) {
  for (const std::string name : {"transformer_6l_gcide", "recurrent_transformer_gcide"}) {
    auto model = make_model(shipped(name), 65);
    const double L = name == "transformer_6l_gcide" ? 6.0 : 1.0;
    for (const auto& p : model->named_parameters()) {
      const std::string& n = p.key();
      const auto& t = p.value();
      EXPECT_EQ(n.find("bias"), std::string::npos) << name << ": " << n;
      if (n.find("ln_") != std::string::npos) {
        EXPECT_TRUE(torch::equal(t, torch::ones_like(t))) << name << ": " << n;
        continue;
      }
      ASSERT_GE(t.dim(), 2) << name << ": " << n;
      const double want = n.find("c_proj.weight") != std::string::npos ? 0.02 / std::sqrt(2.0 * L) : 0.02;
      EXPECT_NEAR(t.std().item<double>(), want, 0.05 * want) << name << ": " << n;
      EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.05 * want) << name << ": " << n;
    }
  }
}

// The GPT baseline equals nanoGPT's forward written out position by position: learned positions added
// to the (unscaled) token embedding; per block x + c_proj(causal attention(ln_1 x)), then
// x + c_proj(GELU(c_fc(ln_2 x))), with bias-free LayerNorms; ln_f; the tied head without a bias.
TEST(KausikModels, GptEqualsNaiveNanoGpt) {
  auto model = make_model(Config::from_overrides({"model.type=gpt", "model.n_layer=2", "model.n_head=4", "model.d_model=16",
                                                  "model.dropout=0.0", "model.pos_enc=learned", "model.max_len=8"}),
                          11);
  model->eval();
  torch::NoGradGuard no_grad;
  auto P = model->named_parameters();
  const int64_t B = 2, T = 7, d = 16, H = 4, dh = 4;
  auto tokens = torch::randint(11, {B, T}, torch::kInt64);
  auto ln = [](const torch::Tensor& x, const torch::Tensor& w) {
    auto mean = x.mean(-1, true), var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / (var + 1e-5).sqrt() * w;
  };
  auto x = P["transformer.wte.weight"].index({tokens}) + P["transformer.wpe.weight"].slice(0, 0, T);
  for (int64_t l = 0; l < 2; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    auto qkv = torch::matmul(ln(x, P[h + "ln_1.weight"]), P[h + "attn.c_attn.weight"].t());
    auto a = torch::zeros({B, T, d});
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t head = 0; head < H; ++head) {
        for (int64_t t = 0; t < T; ++t) {
          auto q = qkv[b][t].slice(0, head * dh, (head + 1) * dh);
          std::vector<torch::Tensor> scores, values;
          for (int64_t j = 0; j <= t; ++j) {
            scores.push_back((q * qkv[b][j].slice(0, d + head * dh, d + (head + 1) * dh)).sum() / std::sqrt(double(dh)));
            values.push_back(qkv[b][j].slice(0, 2 * d + head * dh, 2 * d + (head + 1) * dh));
          }
          auto p = torch::softmax(torch::stack(scores), 0);
          a[b][t].slice(0, head * dh, (head + 1) * dh).copy_((p.unsqueeze(1) * torch::stack(values)).sum(0));
        }
      }
    }
    x = x + torch::matmul(a, P[h + "attn.c_proj.weight"].t());
    auto u = torch::matmul(ln(x, P[h + "ln_2.weight"]), P[h + "mlp.c_fc.weight"].t());
    x = x + torch::matmul(0.5 * u * (1 + torch::erf(u / std::sqrt(2.0))), P[h + "mlp.c_proj.weight"].t());
  }
  auto expected = torch::matmul(ln(x, P["transformer.ln_f.weight"]), P["transformer.wte.weight"].t());
  EXPECT_TRUE(torch::allclose(model->forward(tokens, State()).logits, expected, 1e-4, 1e-5));
  // A longer segment than the learned positions is refused.
  EXPECT_THROW(model->forward(torch::zeros({1, 9}, torch::kInt64), State()), Error);
}

// The dropouts of each reference: every one is a module with its rate, so the list is the structure.
std::map<std::string, double> dropout_rates(torch::nn::Module& m) {
  std::map<std::string, double> out;
  for (const auto& item : m.named_modules()) {
    if (auto* d = dynamic_cast<torch::nn::DropoutImpl*>(item.value().get())) out[item.key()] = d->options.p();
  }
  return out;
}

TEST(KausikModels, DropoutOnEmbeddingAttentionAndResiduals) {
  auto gpt = make_model(Config::from_overrides({"model.type=gpt", "model.n_layer=1", "model.n_head=2", "model.d_model=8",
                                                "model.dropout=0.2", "model.pos_enc=learned", "model.max_len=8"}),
                        11);
  const std::map<std::string, double> want = {{"drop", 0.2},
                                              {"transformer.h.0.attn_dropout", 0.2},
                                              {"transformer.h.0.resid_dropout", 0.2},
                                              {"transformer.h.0.mlp_dropout", 0.2}};
  EXPECT_EQ(dropout_rates(*gpt), want);
}

// The reference's MHPooling drops attention probabilities; nothing is dropped before the tied decoder;
// the embedding has its own rate (the word model's 0.15 under a dropout of 0.35).
TEST(RTransformer, DropoutsAreTheReferences) {
  auto word = make_model(shipped("r_transformer_word"), 50);
  std::map<std::string, double> want = {{"emb_drop", 0.15}};
  for (const std::string l : {"0", "1", "2"}) {
    for (const std::string m : {".drop", ".attn.drop", ".attn.attn_drop", ".ff.2"}) want["levels." + l + m] = 0.35;
  }
  EXPECT_EQ(dropout_rates(*word), want);
  auto chr = make_model(shipped("r_transformer_char"), 50);
  for (auto& [name, rate] : want) rate = 0.15;
  EXPECT_EQ(dropout_rates(*chr), want);
  // model.emb_dropout < 0 (the default) takes model.dropout, as the reference's character model.
  auto dflt = make_model(shipped("r_transformer_char", {"model.emb_dropout=-1", "model.dropout=0.3"}), 50);
  EXPECT_EQ(dropout_rates(*dflt).at("emb_drop"), 0.3);
  // With dropout everywhere but on the embedding and no dropout before the decoder, a training-mode
  // forward of a model whose sublayers are all dropped entirely is the embedding through the decoder.
  auto all = make_model(shipped("r_transformer_char", {"model.d_model=16", "model.n_head=2", "model.dropout=1.0",
                                                       "model.emb_dropout=0.0"}),
                        50);
  all->train();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(50, {2, 5}, torch::kInt64);
  auto P = all->named_parameters();
  auto expected = torch::matmul(P["encoder.weight"].index({tokens}), P["encoder.weight"].t()) + P["decoder_bias"];
  EXPECT_TRUE(torch::allclose(all->forward(tokens, State()).logits, expected, 1e-5, 1e-6));
}

TEST(RTransformer, EmbeddingInitialisationIsTheReferences) {
  auto chr = make_model(shipped("r_transformer_char"), 50);
  auto e = chr->named_parameters()["encoder.weight"];
  EXPECT_LE(e.abs().max().item<double>(), 0.1);
  EXPECT_NEAR(e.std().item<double>(), 0.1 / std::sqrt(3.0), 0.005);  // uniform(-0.1, 0.1)
  EXPECT_TRUE(torch::equal(chr->named_parameters()["decoder_bias"], torch::zeros({50})));
  auto word = make_model(shipped("r_transformer_word"), 1000);
  auto w = word->named_parameters()["encoder.weight"];
  EXPECT_NEAR(w.std().item<double>(), 0.01, 0.0005);  // N(0, 0.01), the word model's
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.0005);
}

// The word setting of the reference's language_word/experiment.py, and both settings' protocol.
TEST(RTransformer, ShippedSettingsAreTheReferences) {
  Config w = shipped("r_transformer_word");
  EXPECT_EQ(w.get_float("model.dropout"), 0.35);
  EXPECT_EQ(w.get_float("model.emb_dropout"), 0.15);
  EXPECT_EQ(w.get_float("train.clip"), 0.35);
  EXPECT_EQ(w.get_int("train.tgt_len"), 80);
  EXPECT_EQ(w.get_int("train.loss_last"), 40);
  EXPECT_EQ(w.get_int("eval.score_last"), 40);
  EXPECT_EQ(w.get_int("eval.tgt_len"), 0);  // = train.tgt_len
  EXPECT_EQ(w.get_string("model.rnn_type"), "lstm");
  EXPECT_EQ(w.get_int("model.local_window"), 9);
  Config c = shipped("r_transformer_char");
  EXPECT_EQ(c.get_int("train.tgt_len"), 400);
  EXPECT_EQ(c.get_int("train.loss_last"), 320);
  EXPECT_EQ(c.get_int("eval.score_last"), 320);
  EXPECT_EQ(c.get_int("eval.tgt_len"), 0);
  EXPECT_EQ(c.get_float("train.clip"), 0.15);
}

}  // namespace
}  // namespace recur::model
