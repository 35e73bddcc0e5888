// make_model: reads the model section of a config, checks it, and builds the model it names.
// Every inconsistency is reported before any tensor is allocated.
#include <torch/torch.h>

#include <numeric>

#include "core/config.h"
#include "core/error.h"
#include "model/lm.h"
#include "model/r_transformer.h"
#include "model/recurrent_transformer.h"
#include "model/model.h"

namespace recur::model {

int64_t count_parameters(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

namespace {

RemOptions rem_options(const Config& c, const std::string& type, int64_t n_head) {
  RemOptions r;
  r.truncation = c.get_int("model.rem_truncation");
  r.mu_init = c.get_float("model.mu_init");
  r.masked = true;
  const int64_t n_rsa = c.get_int("model.n_rsa_heads");
  if (n_rsa < 1) fail("config error: model.type={} needs model.n_rsa_heads >= 1", type);
  if (n_rsa > n_head) fail("config error: model.n_rsa_heads = {} exceeds model.n_head = {}", n_rsa, n_head);
  if (type == "tl_xl" || type == "fl_xl") {
    r.kind = type == "tl_xl" ? RemKind::kToeplitz : RemKind::kFull;
    r.n_heads = n_rsa;
    const int64_t T = c.get_int("train.tgt_len"), M = c.get_int("model.mem_len");
    // TL: one weight per lag of the training window (1 .. T + M - 1) unless model.tl_lags bounds it.
    r.truncation = c.get_int("model.tl_lags") > 0 ? c.get_int("model.tl_lags") : std::max<int64_t>(1, T + M - 1);
    // FL: the T x (T + M) matrix of the training segment over [memory | segment] (paper §4.4).
    int64_t keys = c.get_int("model.fl_max_len");
    if (keys == 0) keys = T + M;
    r.max_qlen = T;
    r.max_klen = keys;
    if (r.kind == RemKind::kFull) validate(r);
    return r;
  }
  const std::string cyc = c.get_string("model.rem_cyclical");
  r.cyclical = cyc == "fixed_theta" ? CyclicalParams::kFixedTheta : cyc == "per_head" ? CyclicalParams::kPerHead
                                                                                      : CyclicalParams::kSharedPair;
  r.kind = RemKind::kParametric;
  r.counts = c.get_int_list("model.rem_types");
  if (r.counts.size() != 6) {
    fail("config error: model.rem_types needs six counts (k1..k6), got {}", r.counts.size());
  }
  int64_t sum = std::accumulate(r.counts.begin(), r.counts.end(), int64_t{0});
  if (sum != n_rsa) {
    fail("config error: model.rem_types {} sums to {} but model.n_rsa_heads = {}", fmt::join(r.counts, ","), sum, n_rsa);
  }
  r.n_heads = n_rsa;
  r.dilations = c.get_int_list("model.dilations");
  int64_t dilated = r.counts[3] + r.counts[4] + r.counts[5];
  if (static_cast<int64_t>(r.dilations.size()) != dilated) {
    fail("config error: model.rem_types has {} dilated heads (k4+k5+k6) but model.dilations lists {} values", dilated,
         r.dilations.size());
  }
  validate(r);
  return r;
}

}  // namespace

std::shared_ptr<LanguageModel> make_model(const Config& c, int64_t vocab_size) {
  const std::string type = c.get_string("model.type");
  if (c.get_int("model.vocab_size") != 0 && c.get_int("model.vocab_size") != vocab_size) {
    fail("config error: model.vocab_size = {} but the dataset's vocabulary has {} symbols", c.get_int("model.vocab_size"),
         vocab_size);
  }
  if (type == "r_transformer" || type == "recurrent_transformer" || type == "gpt") {
    if (!c.get_bool("model.tie_output") || c.get_string("model.init") != "normal") {
      fail("config error: model.type = {} has its own tied output and initialisation: model.tie_output: false and "
           "model.init: {} are for the transformer, XL and BRT families", type, c.get_string("model.init"));
    }
    if (c.get_int("model.n_rsa_heads") != 0) fail("config error: model.type = {} has no RSA heads (model.n_rsa_heads must be 0)", type);
    if (!c.get_int_list("model.cutoffs").empty() || c.get_int("model.div_val") != 1 || c.get_int("model.d_embed") != 0) {
      fail("config error: model.type = {} has one tied embedding table: model.cutoffs, model.div_val and model.d_embed "
           "(adaptive input and softmax) are for the transformer, XL and BRT families", type);
    }
    const int64_t d = c.get_int("model.d_model"), heads = c.get_int("model.n_head");
    if (d % heads != 0) fail("config error: model.d_model = {} is not divisible by model.n_head = {}", d, heads);
    if (type == "r_transformer") {
      if (c.get_string("model.pos_enc") != "none") {
        fail("config error: r_transformer has no position encoding; set model.pos_enc: none (got {})", c.get_string("model.pos_enc"));
      }
      RTransformerOptions r;
      r.vocab_size = vocab_size;
      r.d_model = d;
      r.n_level = c.get_int("model.n_layer");
      r.n_head = heads;
      r.window = c.get_int("model.local_window");
      std::string cell = c.get_string("model.rnn_type");
      r.cell = cell == "lstm" ? RnnCell::kLstm : cell == "rnn" ? RnnCell::kRnn : RnnCell::kGru;
      r.dropout = c.get_float("model.dropout");
      r.emb_dropout = c.get_float("model.emb_dropout") < 0 ? r.dropout : c.get_float("model.emb_dropout");
      r.emb_init = c.get_string("model.emb_init") == "normal" ? EmbeddingInit::kNormal : EmbeddingInit::kUniform;
      r.init_seed = c.get_int("train.seed");
      r.kernel = attention_kernel_from_string(c.get_string("model.attention_kernel"));
      return std::make_shared<RTransformerLm>(r);
    }
    std::string pos = c.get_string("model.pos_enc");
    if (pos == "sinusoidal") fail("config error: {} takes model.pos_enc learned or none (got sinusoidal)", type);
    RecurrentTransformerOptions r;
    r.recurrent = type == "recurrent_transformer";
    r.vocab_size = vocab_size;
    r.d_model = d;
    r.n_layer = c.get_int("model.n_layer");
    r.n_head = heads;
    r.window = c.get_int("model.rt_window");
    r.learned_positions = pos == "learned";
    r.max_len = c.get_int("model.max_len");
    r.dropout = c.get_float("model.dropout");
    r.init_seed = c.get_int("train.seed");
    r.kernel = attention_kernel_from_string(c.get_string("model.attention_kernel"));
    return std::make_shared<RecurrentTransformerLm>(r);
  }
  LmOptions o;
  o.type = type;
  o.vocab_size = vocab_size;
  o.n_layer = c.get_int("model.n_layer");
  o.d_inner = c.get_int("model.d_inner");
  o.init_seed = c.get_int("train.seed");
  o.init_std = c.get_float("model.init_std");
  o.init = c.get_string("model.init") == "bhattamishra" ? InitScheme::kBhattamishra : InitScheme::kNormal;
  o.tie_output = c.get_bool("model.tie_output");
  auto& a = o.attn;
  a.d_model = c.get_int("model.d_model");
  a.n_head = c.get_int("model.n_head");
  a.d_head = c.get_int("model.d_head");
  if (a.d_head == 0) {
    if (a.d_model % a.n_head != 0) {
      fail("config error: model.d_model = {} is not divisible by model.n_head = {} (or set model.d_head)", a.d_model, a.n_head);
    }
    a.d_head = a.d_model / a.n_head;
  }
  if (a.d_model % 2 != 0) fail("config error: model.d_model = {} must be even (sinusoidal embeddings)", a.d_model);
  a.dropout = c.get_float("model.dropout");
  a.dropatt = c.get_float("model.dropatt");
  a.pre_ln = c.get_bool("model.pre_ln");
  a.kernel = attention_kernel_from_string(c.get_string("model.attention_kernel"));
  a.rsa_drop_rel_pos = c.get_bool("model.rsa_drop_rel_pos");
  o.mem_len = c.get_int("model.mem_len");
  o.clamp_len = c.get_int("model.clamp_len");
  o.same_length = c.get_bool("model.same_length");
  o.zero_initial_memory = c.get_string("model.initial_memory") == "zeros";
  o.eval_mem_len = c.get_int("eval.mem_len");
  o.eval_same_length = c.get_bool("eval.same_length");
  o.eval_clamp_len = c.get_int("eval.clamp_len");
  o.max_len = c.get_int("model.max_len");
  std::string pos = c.get_string("model.pos_enc");
  o.pos_encoding = pos == "learned" ? PosEncoding::kLearned : pos == "none" ? PosEncoding::kNone : PosEncoding::kSinusoidal;
  o.cutoffs = c.get_int_list("model.cutoffs");
  o.div_val = c.get_int("model.div_val");
  o.d_embed = c.get_int("model.d_embed");
  o.tie_projs = c.get_bool("model.tie_projs");

  bool rsa = type == "rsa_xl" || type == "tl_xl" || type == "fl_xl" || type == "rsa_transformer" || type == "rsa_brt";
  if (type == "xl" || type == "rsa_xl" || type == "tl_xl" || type == "fl_xl") {
    a.relative = true;
  } else if (type == "brt" || type == "rsa_brt") {
    a.relative = true;
    int64_t layer = c.get_int("model.brt_layer");
    if (layer < 0) layer += o.n_layer;
    if (layer < 0 || layer >= o.n_layer) {
      fail("config error: model.brt_layer = {} is outside the {} layers", c.get_int("model.brt_layer"), o.n_layer);
    }
    o.brt_layer = layer;
    o.brt.window = c.get_int("model.brt_window");
    o.brt.states = c.get_int("model.brt_states");
    o.brt.lstm_gate = c.get_string("model.brt_gate") == "lstm";
    o.brt.state_ffn = c.get_bool("model.brt_state_ffn");
    // The state reaches the loss only through the later windows of its own segment (it is carried to the
    // next segment without gradient), so a one-window segment never trains the state update.
    const int64_t W = o.brt.window, T = c.get_int("train.tgt_len");
    const int64_t eval_T = c.get_int("eval.tgt_len") > 0 ? c.get_int("eval.tgt_len") : T;
    if (T <= W) {
      fail("config error: train.tgt_len = {} is a single window of model.brt_window = {}: the block-recurrent state "
           "update learns only from the later windows of the same segment (the state is carried to the next segment "
           "without gradient), so it would never train; use segments of two or more windows",
           T, W);
    }
    if (T % W != 0 || eval_T % W != 0) {
      fail("config error: train.tgt_len = {} and eval.tgt_len = {} (0 = train.tgt_len) must be multiples of "
           "model.brt_window = {}, so that training and evaluation step the block-recurrent state once per whole window",
           T, c.get_int("eval.tgt_len"), W);
    }
  } else if (type == "transformer" || type == "rsa_transformer") {
    a.relative = false;
  } else {
    fail("model.type = {} is not available in this build yet", type);
  }
  if (o.zero_initial_memory && (!a.relative || o.mem_len == 0)) {
    fail("config error: model.initial_memory = zeros gives an XL-family model model.mem_len zero hidden states to attend "
         "to; model.type = {} with model.mem_len = {} has {}",
         type, o.mem_len, a.relative ? "no memory (set model.mem_len > 0)" : "no memory (absolute positions, no mems)");
  }
  if (!rsa && c.get_int("model.n_rsa_heads") != 0) {
    fail("config error: model.n_rsa_heads = {} but model.type = {} has no RSA heads (use rsa_{})", c.get_int("model.n_rsa_heads"),
         type, type);
  }
  if (rsa) {
    RemOptions r = rem_options(c, type, a.n_head);
    // RSA-BRT: the recurrent layer keeps plain heads (Table 7: REMs in 13 of 14 layers).
    const int64_t plain = o.brt_layer;
    o.rem_for_layer = [r, plain](int64_t layer) { return layer == plain ? std::nullopt : std::optional<RemOptions>(r); };
  }
  return std::make_shared<TransformerLm>(o);
}

}  // namespace recur::model
