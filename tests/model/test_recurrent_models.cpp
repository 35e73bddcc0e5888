// The other model families against naive constructions: BRT/RSA-BRT (windows and carried state), the
// R-Transformer's LocalRNN (a per-position loop), the recurrent transformer (equations (1)-(3) written
// out literally), causality of each, and no position encoding where the paper has none.
#include <gmock/gmock.h>
#include <dirent.h>
#include <gtest/gtest.h>

#include <cmath>

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

// The parameters of a block-recurrent layer that only compute the next state (relative names): the
// loss reaches them only through a later window that reads the state.
bool updates_state_only(const std::string& name) {
  for (const char* prefix : {"state_q", "state_o", "state_ff", "gate.", "ff_gate."}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

bool has_gradient(const torch::Tensor& p) { return p.grad().defined() && p.grad().abs().sum().item<double>() > 0; }

// The state changes the output (it is used), and gradient flows through it between the windows of a
// segment: with one window the state-update parameters get no gradient at all (the state leaves the
// segment detached); with two, the second window's loss alone reaches every one of them.
TEST(OtherModels, BrtStateCarriesInformationAndGradient) {
  for (const std::string gate : {"fixed", "lstm"}) {
    auto model = make_model(tiny("brt", {"model.brt_gate=" + gate, "model.brt_state_ffn=" + std::string(gate == "lstm" ? "true" : "false")}), 50);
    model->train();
    torch::manual_seed(4);
    auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
    model->forward(tokens.slice(1, 0, 4), State()).logits.sum().backward();  // one window of W = 4
    int update_params = 0;
    for (const auto& p : model->named_parameters()) {
      if (p.key().rfind("layers.0.", 0) != 0 || !updates_state_only(p.key().substr(9))) continue;
      ++update_params;
      EXPECT_FALSE(has_gradient(p.value())) << gate << ": " << p.key() << " learned from a one-window segment";
    }
    EXPECT_EQ(update_params, gate == "lstm" ? 15 : 4) << gate;  // state_q, state_q_cross, state_o, gates (+ FFN)
    model->zero_grad();
    model->forward(tokens, State()).logits.slice(1, 4).sum().backward();
    for (const auto& p : model->named_parameters()) {
      if (p.key().rfind("layers.0.", 0) == 0 && updates_state_only(p.key().substr(9))) {
        EXPECT_TRUE(has_gradient(p.value())) << gate << ": " << p.key();
      }
    }
  }
  auto model = make_model(tiny("brt"), 50);
  torch::manual_seed(4);
  auto tokens = torch::randint(50, {2, 8}, torch::kInt64);
  torch::NoGradGuard ng;
  model->eval();
  auto a = model->forward(tokens, State()).logits;
  auto other = model->forward(torch::randint(50, {2, 8}, torch::kInt64), State()).state;
  auto b = model->forward(tokens, other).logits;
  EXPECT_FALSE(torch::allclose(a, b));
}

// Naive multi-head attention, one head at a time: q [B, Tq, H*dh], k and v [B, Tk, H*dh].
torch::Tensor naive_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t H) {
  const int64_t dh = q.size(2) / H;
  std::vector<torch::Tensor> heads;
  for (int64_t j = 0; j < H; ++j) {
    auto qj = q.slice(2, j * dh, (j + 1) * dh), kj = k.slice(2, j * dh, (j + 1) * dh), vj = v.slice(2, j * dh, (j + 1) * dh);
    heads.push_back(torch::matmul(torch::softmax(torch::matmul(qj, kj.transpose(1, 2)) / std::sqrt(static_cast<double>(dh)), -1), vj));
  }
  return torch::cat(heads, 2);
}

// The state after one window, written out as meliad computes it: the states (LayerNorm, plus position
// embeddings) self-attend with their own query and cross-attend with a second query to the tokens'
// keys and values (the rows k, v of the token self-attention's qkv_net); the two outputs are projected
// by state_o and gated onto the old state (fixed: s σ(b) + y (1 − σ(b)); LSTM: forget and input gates
// computed from the attention outputs, biased +1 and −1).
TEST(OtherModels, BrtStateUpdateEqualsTheReferenceEquations) {
  for (const std::string gate : {"fixed", "lstm"}) {
    auto model = make_model(tiny("brt", {"model.brt_gate=" + gate}), 50);  // the recurrent layer is layer 0
    model->eval();
    torch::NoGradGuard no_grad;
    auto P = model->named_parameters();
    const int64_t B = 2, W = 4, d = 32, H = 4, hd = 32;
    torch::manual_seed(7);
    auto tokens = torch::randint(50, {B, W}, torch::kInt64);
    auto got = model->forward(tokens, State()).state.tensors.at("brt.state");
    auto h = torch::nn::functional::embedding(tokens, P["word_emb.emb_layers.0.weight"]) * std::sqrt(static_cast<double>(d));
    auto s0 = P["layers.0.initial_state"].unsqueeze(0).expand({B, -1, -1});
    auto sn = torch::layer_norm(s0, {d}, P["layers.0.state_layer_norm.weight"], P["layers.0.state_layer_norm.bias"]) +
              P["layers.0.state_pos"];
    auto skv = torch::matmul(sn, P["layers.0.state_kv.weight"].t());
    auto qkv = P["layers.0.self_attn.qkv_net.weight"];
    auto kt = torch::matmul(h, qkv.slice(0, hd, 2 * hd).t()), vt = torch::matmul(h, qkv.slice(0, 2 * hd, 3 * hd).t());
    auto a = torch::cat({naive_attention(torch::matmul(sn, P["layers.0.state_q.weight"].t()), skv.slice(2, 0, hd), skv.slice(2, hd), H),
                         naive_attention(torch::matmul(sn, P["layers.0.state_q_cross.weight"].t()), kt, vt, H)},
                        2);
    auto y = torch::matmul(a, P["layers.0.state_o.weight"].t());
    torch::Tensor expected;
    if (gate == "fixed") {
      auto g = torch::sigmoid(P["layers.0.gate.bias"]);
      expected = s0 * g + y * (1 - g);
    } else {
      auto f = torch::sigmoid(torch::matmul(a, P["layers.0.gate.forget.weight"].t()) + P["layers.0.gate.forget.bias"] + 1);
      auto i = torch::sigmoid(torch::matmul(a, P["layers.0.gate.input.weight"].t()) + P["layers.0.gate.input.bias"] - 1);
      expected = s0 * f + y * i;
    }
    EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6)) << gate;
  }
}

// meliad's initial scales: state N(0, 0.1), state position embeddings N(0, 1) (added after a LayerNorm),
// every gate bias 0 (not the N(0, init_std) of other weights).
TEST(OtherModels, BrtStateParametersStartAtTheReferenceScales) {
  for (const std::string gate : {"fixed", "lstm"}) {
    auto model = make_model(tiny("brt", {"model.brt_gate=" + gate, "model.brt_state_ffn=true", "model.brt_states=64"}), 50);
    auto P = model->named_parameters();
    EXPECT_NEAR(P["layers.0.initial_state"].std().item<double>(), 0.1, 0.01) << gate;
    EXPECT_NEAR(P["layers.0.state_pos"].std().item<double>(), 1.0, 0.1) << gate;
    int biases = 0;
    for (const auto& p : P) {
      if (p.key().find("gate.") == std::string::npos || p.key().find("bias") == std::string::npos) continue;
      ++biases;
      EXPECT_EQ(p.value().abs().max().item<double>(), 0.0) << p.key();
    }
    EXPECT_EQ(biases, gate == "lstm" ? 4 : 2) << gate;  // gate and ff_gate: bias, or input.bias and forget.bias
  }
}

// A BRT whose training segment is one window would never train its state update: refused at config
// time with the reason. Evaluation segments must be whole windows too (XL's eval.tgt_len of 80 is not).
TEST(OtherModels, BrtSegmentsOfOneWindowAreRefused) {
  auto error_of = [](const Config& c) -> std::string {
    try {
      make_model(c, 50);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  for (const std::string type : {"brt", "rsa_brt"}) {
    std::string one = error_of(tiny(type, {"train.tgt_len=4"}));  // W = 4
    EXPECT_THAT(one, ::testing::HasSubstr("train.tgt_len = 4 is a single window of model.brt_window = 4")) << type;
    EXPECT_THAT(one, ::testing::HasSubstr("would never train")) << type;
    EXPECT_THAT(error_of(tiny(type, {"train.tgt_len=2"})), ::testing::HasSubstr("single window")) << type;
    EXPECT_THAT(error_of(tiny(type, {"train.tgt_len=10"})), ::testing::HasSubstr("multiples of model.brt_window = 4")) << type;
    EXPECT_THAT(error_of(tiny(type, {"eval.tgt_len=6"})), ::testing::HasSubstr("eval.tgt_len = 6")) << type;
    EXPECT_EQ(error_of(tiny(type, {"eval.tgt_len=4"})), "") << type;
  }
  Config enwik8 = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/models/brt_enwik8.yaml",
                               {"data.path=/nonexistent", "model.brt_window=512"});
  EXPECT_THAT(error_of(enwik8), ::testing::HasSubstr("train.tgt_len = 512 is a single window of model.brt_window = 512"));
  Config xl_eval = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/models/brt_enwik8.yaml",
                                {"data.path=/nonexistent", "eval.tgt_len=80"});
  EXPECT_THAT(error_of(xl_eval), ::testing::HasSubstr("eval.tgt_len = 80"));
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
      auto ln = torch::layer_norm(x, {32}, params["transformer.ln_f.weight"]);  // no bias (nanoGPT bias = False)
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

// Every config file we ship under configs/models and configs/tiny (base.yaml is a shared fragment).
std::vector<std::string> shipped_configs() {
  std::vector<std::string> files;
  for (const std::string dir : {"configs/models", "configs/tiny"}) {
    std::string root = std::string(RECUR_SOURCE_DIR) + "/" + dir;
    DIR* d = ::opendir(root.c_str());
    if (d == nullptr) fail("cannot list {}", root);
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0 && name != "base.yaml") files.push_back(root + "/" + name);
    }
    ::closedir(d);
  }
  return files;
}

// Every config we ship parses and builds its model (vocabulary 256), so a typo in a paper setting is
// caught here and not hours into a cluster job.
TEST(ShippedConfigs, EveryModelConfigBuildsItsModel) {
  int built = 0;
  for (const auto& file : shipped_configs()) {
    SCOPED_TRACE(file);
    std::vector<std::string> sets = {"data.path=/nonexistent"};
    // Word-level configs cut their vocabulary into adaptive-softmax clusters; at 256 symbols, three small ones
    // (the full WikiText-103 models are built in test_table7.cpp).
    if (!Config::load(file, sets).get_int_list("model.cutoffs").empty()) sets.push_back("model.cutoffs=[64,128,192]");
    Config c = Config::load(file, sets);
    std::shared_ptr<LanguageModel> m;
    ASSERT_NO_THROW(m = make_model(c, 256));
    EXPECT_EQ(m->type(), c.get_string("model.type"));
    EXPECT_GT(count_parameters(*m), 0);
    ++built;
  }
  EXPECT_GE(built, 25);
}

// In every shipped BRT and RSA-BRT config, one training segment (train.tgt_len, with the config's window,
// states, layers and gate; only the widths made small) gives every state parameter of the recurrent layer
// a non-zero gradient: the state update learns within a segment.
TEST(ShippedConfigs, EveryBrtConfigTrainsItsStateUpdate) {
  int checked = 0;
  for (const auto& file : shipped_configs()) {
    if (file.find("brt") == std::string::npos) continue;
    SCOPED_TRACE(file);
    Config c = Config::load(file, {"data.path=/nonexistent", "model.d_model=32", "model.d_head=4", "model.d_inner=64"});
    auto model = std::dynamic_pointer_cast<TransformerLm>(make_model(c, 50));
    ASSERT_TRUE(model);
    const int64_t T = c.get_int("train.tgt_len"), W = c.get_int("model.brt_window");
    EXPECT_GE(T, 2 * W);
    model->train();
    torch::manual_seed(8);
    auto tokens = torch::randint(50, {2, T + 1}, torch::kInt64);
    auto logits = model->forward(tokens.slice(1, 0, T), State()).logits;
    torch::nn::functional::cross_entropy(logits.reshape({-1, 50}), tokens.slice(1, 1).reshape({-1})).backward();
    const std::string layer = "layers." + std::to_string(model->options().brt_layer) + ".";
    int update_params = 0;
    for (const auto& p : model->named_parameters()) {
      if (p.key().rfind(layer, 0) != 0) continue;
      const std::string name = p.key().substr(layer.size());
      if (name.rfind("state_", 0) != 0 && name != "initial_state" && name.find("gate.") == std::string::npos) continue;
      update_params += updates_state_only(name);
      EXPECT_TRUE(has_gradient(p.value())) << p.key();
    }
    EXPECT_GE(update_params, 4);
    ++checked;
  }
  EXPECT_EQ(checked, 6);  // models: brt_copy, brt_enwik8, rsa_brt_copy, rsa_brt_enwik8; tiny: brt, rsa_brt
}

// The enwik8 BRT's parameter count, component by component (docs/models.md): the XL of Table 7 (14 layers,
// d = H dh = 512, d_inner 2048, vocabulary 204: 47,880,396) with its layer 12 made block-recurrent, which
// adds q_cross (d·H dh), the wider o_net (+H dh·d), state_kv (2 d·H dh), state_q and state_q_cross
// (2 d·H dh), state_o (2 H dh·d), the initial state and the state position embeddings (2 S·d), the state
// LayerNorm (2d) and the fixed gate's bias (d). Table 7's BRT has 5,052,416 more (see docs/models.md).
// RSA-BRT adds REMs to the 13 XL layers only: 13 x 5 = 65 parameters, Table 7's difference.
TEST(ShippedConfigs, BrtEnwik8ParameterCount) {
  auto load = [](const std::string& name) {
    return make_model(Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/models/" + name, {"data.path=/nonexistent"}), 204);
  };
  const int64_t d = 512, hd = 512, S = 512;
  const int64_t xl = count_parameters(*load("xl_enwik8.yaml"));
  EXPECT_EQ(xl, 47880396);  // Table 7
  const int64_t recurrent = d * hd + hd * d + 2 * d * hd + 2 * d * hd + 2 * hd * d + 2 * S * d + 2 * d + d;
  auto brt = load("brt_enwik8.yaml");
  EXPECT_EQ(count_parameters(*brt), xl + recurrent);
  EXPECT_EQ(count_parameters(*brt), 50503372);
  EXPECT_EQ(55555788 - count_parameters(*brt), 5052416);
  auto rsa_brt = load("rsa_brt_enwik8.yaml");
  int64_t recurrent_rem = 0, layer0_rem = 0;
  for (const auto& p : rsa_brt->named_parameters()) {
    if (p.key().find(".rem.") == std::string::npos) continue;
    if (p.key().rfind("layers.11.", 0) == 0) recurrent_rem += p.value().numel();
    if (p.key().rfind("layers.0.", 0) == 0) layer0_rem += p.value().numel();
  }
  EXPECT_EQ(recurrent_rem, 0);
  EXPECT_EQ(count_parameters(*rsa_brt) - count_parameters(*brt), 13 * layer0_rem);
  EXPECT_EQ(count_parameters(*rsa_brt) - count_parameters(*brt), 55555853 - 55555788);
}

}  // namespace
}  // namespace recur::model
