// The attention language models against naive constructions: rel_shift, causality, XL memory,
// save -> load, and the configuration errors make_model must catch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

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

TEST(Models, XlStateSavedAndRestoredContinuesIdentically) {
  std::string path = "/tmp/recur-test-state-" + std::to_string(::getpid()) + ".pt";
  auto model = make_model(tiny("rsa_xl"), 50);
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(50, {2, 16}, torch::kInt64);
  auto first = model->forward(tokens.slice(1, 0, 8), State());
  first.state.save(path);
  State restored = State::load(path);
  EXPECT_EQ(restored.tensors.size(), first.state.tensors.size());
  auto a = model->forward(tokens.slice(1, 8, 16), first.state).logits;
  auto b = model->forward(tokens.slice(1, 8, 16), restored).logits;
  EXPECT_TRUE(torch::equal(a, b));
  ::unlink(path.c_str());
  EXPECT_THROW(State::load(path), Error);
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

}  // namespace
}  // namespace recur::model
