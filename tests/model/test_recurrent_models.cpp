// The other model families against naive constructions: BRT/RSA-BRT (windows and carried state), the
// R-Transformer's LocalRNN (a per-position loop), the recurrent transformer (equations (1)-(3) written
// out literally), causality of each, and no position encoding where the paper has none.
#include <gmock/gmock.h>
#include <dirent.h>
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "model/lm.h"
#include "model/model.h"
#include "model/r_transformer.h"
#include "model/recurrent_transformer.h"

namespace recur::model {
namespace {

using torch::indexing::Slice;

Config tiny(const std::string& type, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"model.type=" + type, "model.n_layer=3", "model.n_head=4", "model.d_model=32",
                                   "model.d_inner=64", "model.dropout=0.0", "model.mem_len=8", "train.tgt_len=8",
                                   "model.brt_window=4", "model.brt_states=3", "model.local_window=3"};
  if (type == "rsa_brt") sets.insert(sets.end(), {"model.n_rsa_heads=2", "model.rem_types=[1,0,0,0,1,0]", "model.dilations=[2]"});
  if (type == "r_transformer" || type == "recurrent_transformer") sets.insert(sets.end(), {"model.pos_enc=none", "model.mem_len=0"});
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::from_overrides(sets);
}

const std::vector<std::string> kTypes = {"brt", "rsa_brt", "r_transformer", "recurrent_transformer"};

TEST(OtherModels, CausalityEveryModel) {
  for (const auto& type : kTypes) {
    for (const std::string gate : {"fixed", "lstm"}) {
      if (gate == "lstm" && type.find("brt") == std::string::npos) continue;
      auto model = make_model(tiny(type, {"model.brt_gate=" + gate, "model.brt_state_ffn=" + std::string(gate == "lstm" ? "true" : "false")}), 50);
      model->eval();
      torch::NoGradGuard no_grad;
      torch::manual_seed(1);
      auto tokens = torch::randint(50, {2, 11}, torch::kInt64);  // windows of 4: 4 + 4 + 3
      State state;
      if (model->carries_state()) state = model->forward(torch::randint(50, {2, 8}, torch::kInt64), State()).state;
      auto base = model->forward(tokens, state).logits;
      for (int64_t t : {0, 3, 4, 9, 10}) {
        auto changed = tokens.clone();
        changed.index_put_({Slice(), t}, (tokens.index({Slice(), t}) + 1) % 50);
        auto logits = model->forward(changed, state).logits;
        if (t > 0) EXPECT_TRUE(torch::allclose(logits.slice(1, 0, t), base.slice(1, 0, t), 1e-5, 1e-6)) << type << " " << gate << " t=" << t;
        EXPECT_FALSE(torch::allclose(logits.slice(1, t, t + 1), base.slice(1, t, t + 1))) << type << " " << gate << " t=" << t;
      }
    }
  }
}

// One segment of 2W tokens, and two segments of W with the state carried (block-recurrent state, the
// previous window, XL memories of W), give the same logits.
TEST(OtherModels, BrtTwoSegmentsWithCarriedStateEqualOneSegment) {
  for (const std::string type : {"brt", "rsa_brt"}) {
    for (const std::string gate : {"fixed", "lstm"}) {
      auto model = make_model(tiny(type, {"model.brt_gate=" + gate, "model.mem_len=4"}), 50);
      model->eval();
      model->set_eval_settings(4, false, -1);
      torch::NoGradGuard no_grad;
      torch::manual_seed(3);
      auto tokens = torch::randint(50, {3, 8}, torch::kInt64);  // 2W, W = 4
      auto whole = model->forward(tokens, State());
      auto first = model->forward(tokens.slice(1, 0, 4), State());
      auto second = model->forward(tokens.slice(1, 4, 8), first.state);
      EXPECT_TRUE(torch::allclose(torch::cat({first.logits, second.logits}, 1), whole.logits, 1e-5, 1e-5)) << type << " " << gate;
      EXPECT_TRUE(torch::allclose(second.state.tensors.at("brt.state"), whole.state.tensors.at("brt.state"), 1e-5, 1e-5));
      EXPECT_EQ(whole.state.tensors.at("brt.state").sizes(), (std::vector<int64_t>{3, 3, 32}));
      EXPECT_FALSE(whole.state.tensors.at("brt.state").requires_grad());
    }
  }
}

// The state changes the output (it is used), and gradient flows through it between the windows of a segment.
TEST(OtherModels, BrtStateCarriesInformationAndGradient) {
  auto model = make_model(tiny("brt"), 50);
  model->train();
  torch::manual_seed(4);
  auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
  auto out = model->forward(tokens, State());
  // The second window's loss reaches the states' cross-attention parameters only through the state
  // updated by the first window.
  out.logits.slice(1, 4).sum().backward();
  bool state_grad = false;
  for (const auto& p : model->named_parameters()) {
    if (p.key().find("gate_bias") != std::string::npos || p.key().find("state_o") != std::string::npos) {
      state_grad = state_grad || (p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0);
    }
  }
  EXPECT_TRUE(state_grad);
  torch::NoGradGuard ng;
  model->eval();
  auto a = model->forward(tokens, State()).logits;
  auto other = model->forward(torch::randint(50, {2, 8}, torch::kInt64), State()).state;
  auto b = model->forward(tokens, other).logits;
  EXPECT_FALSE(torch::allclose(a, b));
}

// LocalRNN = for each position, the same RNN run from zero over its window of k (zeros before the start).
TEST(OtherModels, LocalRnnEqualsPerPositionLoop) {
  for (auto cell : {RnnCell::kGru, RnnCell::kLstm, RnnCell::kRnn}) {
    torch::manual_seed(5);
    const int64_t B = 2, T = 9, d = 6, k = 4;
    LocalRnn rnn(d, k, cell);
    auto x = torch::randn({B, T, d});
    auto fast = rnn->forward(x);
    for (int64_t t = 0; t < T; ++t) {
      auto window = torch::zeros({B, k, d});
      for (int64_t j = 0; j < k; ++j) {
        int64_t src = t - k + 1 + j;
        if (src >= 0) window.index_put_({Slice(), j}, x.index({Slice(), src}));
      }
      auto naive = rnn->run(window).index({Slice(), k - 1});
      EXPECT_TRUE(torch::allclose(fast.index({Slice(), t}), naive, 1e-5, 1e-6)) << "cell " << static_cast<int>(cell) << " t=" << t;
    }
  }
}

// Equations (1)-(3), step by step: h_1 = T(x_1); (y_i, h_{i+1}) = T([h_i, x_{i+1}]); y_N = T(h_N).
torch::Tensor literal_layer(Block& T, const torch::Tensor& x, int64_t w) {
  const int64_t N = x.size(1);
  std::vector<torch::Tensor> chunks;
  for (int64_t s = 0; s < N; s += w) chunks.push_back(x.slice(1, s, std::min(N, s + w)));
  torch::Tensor h = T->forward(chunks[0]);  // (1)
  std::vector<torch::Tensor> y;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    auto out = T->forward(torch::cat({h, chunks[i + 1]}, 1));  // (2)
    y.push_back(out.slice(1, 0, h.size(1)));
    h = out.slice(1, h.size(1));
  }
  y.push_back(T->forward(h));  // (3)
  return torch::cat(y, 1);
}

TEST(OtherModels, RecurrentTransformerEqualsEquations) {
  for (int64_t w : {1, 2, 3}) {
    for (bool grad : {true, false}) {
      auto model = std::dynamic_pointer_cast<RecurrentTransformerLm>(
          make_model(tiny("recurrent_transformer", {"model.n_layer=2", "model.rt_window=" + std::to_string(w)}), 50));
      ASSERT_TRUE(model);
      model->eval();
      torch::AutoGradMode mode(grad);
      torch::manual_seed(6);
      auto tokens = torch::randint(50, {2, 7}, torch::kInt64);  // 7 is not a multiple of 2 or 3
      auto params = model->named_parameters();
      auto x = torch::nn::functional::embedding(tokens, params["transformer.wte.weight"]);
      for (int64_t l = 0; l < 2; ++l) {
        Block b = model->block(l);
        x = literal_layer(b, x, w);
      }
      auto ln = torch::layer_norm(x, {32}, params["transformer.ln_f.weight"], params["transformer.ln_f.bias"]);
      auto expected = torch::matmul(ln, params["transformer.wte.weight"].t());
      auto got = model->forward(tokens, State()).logits;
      EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6)) << "w=" << w << " grad=" << grad;
      if (grad) {  // full backpropagation through the recurrence reaches the first token's embedding
        got.index({Slice(), 6}).sum().backward();
        EXPECT_GT(params["transformer.wte.weight"].grad().index({tokens.index({0, 0})}).abs().sum().item<double>(), 0.0);
      }
    }
  }
}

// Models the papers give no position encoding have no position parameters or buffers; the only
// input is the tokens (and for the recurrent transformer, the learned embedding appears only on request).
TEST(OtherModels, NoPositionEncodingWhereThePaperHasNone) {
  for (const std::string type : {"r_transformer", "recurrent_transformer"}) {
    auto model = make_model(tiny(type), 50);
    for (const auto& p : model->named_parameters()) {
      EXPECT_EQ(p.key().find("pos"), std::string::npos) << type << ": " << p.key();
      EXPECT_EQ(p.key().find("wpe"), std::string::npos) << type << ": " << p.key();
    }
    EXPECT_EQ(model->named_buffers().size(), 0u) << type << " has buffers (a position table?)";
  }
  auto with = make_model(tiny("recurrent_transformer", {"model.pos_enc=learned", "model.max_len=16"}), 50);
  EXPECT_TRUE(with->named_parameters().contains("transformer.wpe.weight"));
  // R-Transformer refuses a position encoding, and has no maximum length: 3,000 positions run.
  try {
    make_model(tiny("r_transformer", {"model.pos_enc=sinusoidal"}), 50);
    ADD_FAILURE() << "r_transformer accepted a position encoding";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("no position encoding"));
  }
  auto rt = make_model(tiny("r_transformer"), 50);
  rt->eval();
  torch::NoGradGuard ng;
  EXPECT_EQ(rt->forward(torch::randint(50, {1, 3000}, torch::kInt64), State()).logits.size(1), 3000);
}

TEST(OtherModels, BadSettingsAreClearErrors) {
  auto error_of = [](const Config& c) -> std::string {
    try {
      make_model(c, 50);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_THAT(error_of(tiny("brt", {"model.brt_layer=5"})), ::testing::HasSubstr("model.brt_layer"));
  EXPECT_THAT(error_of(tiny("brt", {"model.n_rsa_heads=2"})), ::testing::HasSubstr("rsa_brt"));
  EXPECT_THAT(error_of(tiny("recurrent_transformer", {"model.pos_enc=sinusoidal"})), ::testing::HasSubstr("learned or none"));
  EXPECT_THAT(error_of(tiny("r_transformer", {"model.n_head=5"})), ::testing::HasSubstr("divisible"));
  // the paper's default: the third layer from the top
  auto m = std::dynamic_pointer_cast<TransformerLm>(make_model(tiny("brt", {"model.n_layer=14", "model.brt_layer=-3"}), 50));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->options().brt_layer, 11);
}

}  // namespace
}  // namespace recur::model

namespace recur::model {
namespace {

// Every config we ship parses and builds its model (vocabulary 256), so a typo in a paper setting is
// caught here and not hours into a cluster job.
TEST(ShippedConfigs, EveryModelConfigBuildsItsModel) {
  int built = 0;
  for (const std::string dir : {"configs/models", "configs/tiny"}) {
    std::string root = std::string(RECUR_SOURCE_DIR) + "/" + dir;
    DIR* d = ::opendir(root.c_str());
    ASSERT_NE(d, nullptr) << root;
    std::vector<std::string> files;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0 && name != "base.yaml") files.push_back(root + "/" + name);
    }
    ::closedir(d);
    for (const auto& file : files) {
      SCOPED_TRACE(file);
      Config c = Config::load(file, {"data.path=/nonexistent"});
      std::shared_ptr<LanguageModel> m;
      ASSERT_NO_THROW(m = make_model(c, 256));
      EXPECT_EQ(m->type(), c.get_string("model.type"));
      EXPECT_GT(count_parameters(*m), 0);
      ++built;
    }
  }
  EXPECT_GE(built, 25);
}

}  // namespace
}  // namespace recur::model
