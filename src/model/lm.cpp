// See lm.h. Segments are batch-first: tokens [B, T], hidden [B, T, d], memories [B, M, d].
#include "model/lm.h"
#include "model/precision.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace recur::model {

torch::Tensor linear_fp32(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  Fp32Region fp32;
  auto f = [](const torch::Tensor& t) { return t.defined() && t.scalar_type() != torch::kFloat32 ? t.to(torch::kFloat32) : t; };
  return torch::nn::functional::linear(f(x), f(weight), f(bias));
}

namespace {
// pos_emb.inv_freq (buffer, as in the reference) and, for learned absolute positions, pos_emb.weight.
class PosEmbImpl : public torch::nn::Module {
 public:
  PosEmbImpl(int64_t d_model, int64_t learned_positions) {
    inv_freq = register_buffer("inv_freq", make_inv_freq(d_model));
    if (learned_positions > 0) weight = register_parameter("weight", torch::empty({learned_positions, d_model}));
  }
  torch::Tensor inv_freq, weight;
};
TORCH_MODULE(PosEmb);
}  // namespace

torch::Tensor attention_mask(int64_t qlen, int64_t mlen, int64_t mem_len, bool same_length, const torch::Device& device) {
  int64_t klen = qlen + mlen;
  auto ones = torch::ones({qlen, klen}, torch::TensorOptions().dtype(torch::kBool).device(device));
  auto mask = torch::triu(ones, 1 + mlen);
  if (same_length && mem_len > 0) {  // without memory every query sees its causal prefix (the
                                     // reference would mask whole rows here and produce NaNs)
    int64_t mask_len = klen - mem_len;
    int64_t shift = mask_len > 0 ? qlen - mask_len : qlen;
    mask = mask | torch::tril(ones, -shift);
  }
  return mask;
}

TransformerLm::TransformerLm(LmOptions o) : options_(std::move(o)) {
  const auto& a = options_.attn;
  torch::manual_seed(static_cast<uint64_t>(options_.init_seed));
  AdaptiveOptions adaptive;
  adaptive.vocab = options_.vocab_size;
  adaptive.d_proj = a.d_model;
  adaptive.d_embed = options_.d_embed > 0 ? options_.d_embed : a.d_model;
  adaptive.cutoffs = options_.cutoffs;
  adaptive.div_val = options_.div_val;
  adaptive.tie_projs = options_.tie_projs;
  adaptive.tie_weight = options_.tie_output;
  word_emb = register_module("word_emb", AdaptiveEmbedding(adaptive));
  if (a.relative) {
    r_w_bias = register_parameter("r_w_bias", torch::empty({a.n_head, a.d_head}));
    r_r_bias = register_parameter("r_r_bias", torch::empty({a.n_head, a.d_head}));
  }
  bool learned = !a.relative && options_.pos_encoding == PosEncoding::kLearned;
  auto pos_emb = register_module("pos_emb", PosEmb(a.d_model, learned ? options_.max_len : 0));
  inv_freq = pos_emb->inv_freq;
  pos_weight = pos_emb->weight;
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.n_layer; ++i) {
    AttentionOptions layer = a;
    layer.rem = options_.rem_for_layer ? options_.rem_for_layer(i) : std::nullopt;
    if (i == options_.brt_layer) layers->push_back(BlockRecurrentLayer(layer, options_.d_inner, options_.brt));
    else layers->push_back(DecoderLayer(layer, options_.d_inner));
  }
  if (!a.relative && a.pre_ln) ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({a.d_model})));
  crit = register_module("crit", ProjectedAdaptiveLogSoftmax(adaptive, word_emb));
  drop = register_module("drop", torch::nn::Dropout(a.dropout));
  reset_parameters();
}

// The reference initialisation: weights N(0, init_std), biases 0, LayerNorm weight N(1, init_std);
// REM parameters keep their own initialisation, the block-recurrent state parameters get meliad's scales.
// model.init = bhattamishra: the formal-language code's TransformerModel, i.e. its init_weights (embedding
// and output weights U(-0.1, 0.1), output bias 0) over PyTorch's module defaults: nn.MultiheadAttention's
// packed q/k/v projection Xavier-uniform, every other Linear U(+-1/sqrt(fan_in)) for weight and bias,
// LayerNorm 1 and 0. Parameters it has no counterpart for (relative-attention biases, learned positions,
// adaptive projections) stay as in the normal scheme.
void TransformerLm::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double std = options_.init_std;
  const bool bhattamishra = options_.init == InitScheme::kBhattamishra;
  auto params = named_parameters(/*recurse=*/true);
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& item : params) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (name.find(".rem.") != std::string::npos) continue;
    bool is_ln = name.find("layer_norm") != std::string::npos || name.rfind("ln_f", 0) == 0;
    bool is_bias = ends_with(name, ".bias") || name == "crit.cluster_bias";
    bool is_proj = name.find("_projs.") != std::string::npos;  // adaptive projections: the reference's proj_init_std
    bool is_table = name.rfind("word_emb.emb_layers.", 0) == 0 || (name.rfind("crit.out_layers.", 0) == 0 && !is_bias);
    if (bhattamishra && !is_proj) {
      if (is_ln) {
        p.fill_(is_bias ? 0.0 : 1.0);
        continue;
      }
      if (is_table || (is_bias && name.rfind("crit.", 0) == 0)) {  // init_weights: output bias 0
        if (is_bias) p.zero_();
        else p.uniform_(-0.1, 0.1);
        continue;
      }
      if (ends_with(name, "qkv_net.weight")) {
        const double bound = std::sqrt(6.0 / static_cast<double>(p.size(0) + p.size(1)));  // Xavier-uniform
        p.uniform_(-bound, bound);
        continue;
      }
      // A Linear's weight [out, in], or its bias (fan_in from the weight beside it).
      const std::string weight_name = is_bias ? name.substr(0, name.size() - 5) + ".weight" : name;
      const torch::Tensor* weight = params.find(weight_name);
      if (weight != nullptr && weight->dim() == 2 && ends_with(weight_name, ".weight")) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(weight->size(1)));
        p.uniform_(-bound, bound);
        continue;
      }
    }
    if (is_bias) p.zero_();
    else if (is_proj) p.normal_(0.0, 0.01);
    else if (is_ln) p.normal_(1.0, std);
    else p.normal_(0.0, std);
  }
  if (options_.brt_layer >= 0) layers[options_.brt_layer]->as<BlockRecurrentLayerImpl>()->reset_state_parameters();
}

void TransformerLm::set_eval_settings(int64_t mem_len, bool same_length, int64_t clamp_len) {
  options_.eval_mem_len = mem_len;
  options_.eval_same_length = same_length;
  options_.eval_clamp_len = clamp_len;
}

torch::Tensor TransformerLm::output_nll(const ForwardResult& out, const torch::Tensor& target) {
  return out.logits.defined() ? LanguageModel::output_nll(out, target) : crit->nll(out.hidden, target);
}

std::vector<double> TransformerLm::rsa_gates() {
  std::vector<double> gates;
  for (const auto& layer : *layers) {
    auto* dec = layer->as<DecoderLayerImpl>();
    Attention attn = dec ? dec->dec_attn : layer->as<BlockRecurrentLayerImpl>()->self_attn;
    if (attn->has_rem()) gates.push_back(attn->rem->gate().item<double>());
  }
  return gates;
}

ForwardResult TransformerLm::forward(const torch::Tensor& tokens, const State& state) {
  const auto& a = options_.attn;
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const bool training = is_training();
  const int64_t mem_len = training || options_.eval_mem_len < 0 ? options_.mem_len : options_.eval_mem_len;
  const bool same_length = training ? options_.same_length : options_.eval_same_length;
  const int64_t clamp_len = training || options_.eval_clamp_len < 0 ? options_.clamp_len : options_.eval_clamp_len;
  const bool use_mems = a.relative && mem_len > 0;
  const int64_t L = options_.n_layer;

  std::vector<torch::Tensor> mems;
  int64_t M = 0;
  if (use_mems && !state.empty()) {
    for (int64_t i = 0; i <= L; ++i) {
      auto it = state.tensors.find("mems." + std::to_string(i));
      if (it == state.tensors.end()) fail("XL state lacks mems.{} (state from another model?)", i);
      if (it->second.size(0) != B) fail("XL state holds {} streams, the batch has {}", it->second.size(0), B);
      mems.push_back(it->second);
    }
    M = mems[0].size(1);
  }
  auto h = word_emb(tokens);
  if (use_mems && state.empty() && options_.zero_initial_memory) {
    // HuggingFace's TransfoXLModel without mems (Bhattamishra et al.'s SAN-Rel): mem_len zero hidden states
    // per layer. Their keys and values are 0, so they take attention mass by relative distance alone:
    // with same_length, query t sees mem_len - t - 1 of them, which tells positions apart.
    mems.assign(static_cast<size_t>(L + 1), torch::zeros({B, mem_len, a.d_model}, h.options()));
    M = mem_len;
  }
  const int64_t K = M + T;
  torch::Tensor pos_emb, mask;
  if (a.relative) {
    auto pos_seq = torch::arange(static_cast<double>(K - 1), -1.0, -1.0, inv_freq.options());
    if (clamp_len > 0) pos_seq = pos_seq.clamp_max(static_cast<double>(clamp_len));
    pos_emb = drop(sinusoid(pos_seq, inv_freq).to(h.dtype()));
    mask = attention_mask(T, M, mem_len, same_length, tokens.device());
  } else {
    if (options_.pos_encoding == PosEncoding::kSinusoidal) {
      h = h + sinusoid(torch::arange(static_cast<double>(T), inv_freq.options()), inv_freq).to(h.dtype());
    } else if (options_.pos_encoding == PosEncoding::kLearned) {
      if (T > options_.max_len) fail("segment of {} tokens exceeds model.max_len = {} learned positions", T, options_.max_len);
      h = h + pos_weight.slice(0, 0, T);
    }
    // undefined = the plain causal mask: the math kernel builds it, SDPA takes it as is_causal
  }
  h = drop(h);
  BrtCarry carry;
  if (options_.brt_layer >= 0) {
    auto st = state.tensors.find("brt.state");
    auto pv = state.tensors.find("brt.prev");
    if (st != state.tensors.end()) carry.state = st->second;
    if (pv != state.tensors.end()) carry.prev = pv->second;
    if (carry.state.defined() && carry.state.size(0) != B) {
      fail("block-recurrent state holds {} streams, the batch has {}", carry.state.size(0), B);
    }
  }
  std::vector<torch::Tensor> hids{h};
  for (int64_t i = 0; i < L; ++i) {
    if (i == options_.brt_layer) {
      h = layers[i]->as<BlockRecurrentLayerImpl>()->forward(h, &carry, inv_freq, r_w_bias, r_r_bias);
    } else {
      torch::Tensor mem = M > 0 ? mems[i] : torch::Tensor();
      h = layers[i]->as<DecoderLayerImpl>()->forward(h, mem, pos_emb, r_w_bias, r_r_bias, mask);
    }
    hids.push_back(h);
  }
  if (!ln_f.is_empty()) h = ln_f(h);
  h = drop(h);
  ForwardResult out;
  if (crit->clustered()) out.hidden = h;  // [B, T, V] logits would not fit (WikiText-103: 9.6 GB at 60 x 150)
  else out.logits = crit->logits(h);
  if (options_.brt_layer >= 0) {
    out.state.tensors["brt.state"] = carry.state;
    out.state.tensors["brt.prev"] = carry.prev;
  }
  if (use_mems) {
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i <= L; ++i) {
      auto cat = M > 0 ? torch::cat({mems[i], hids[i]}, /*dim=*/1) : hids[i];
      int64_t keep = std::min<int64_t>(mem_len, cat.size(1));
      out.state.tensors["mems." + std::to_string(i)] = cat.slice(1, cat.size(1) - keep).detach();
    }
  }
  return out;
}

}  // namespace recur::model
